"""TLS and mutual TLS, with certificates made by the test (trustme): encrypted calls work,
plaintext is refused when TLS is configured, and mTLS refuses clients without a
certificate signed by the configured CA."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme
from conftest import Api, ServerProcess
from scrape import metrics_address

from deltacloud.v1 import realm_pb2
from support import MD


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("certs")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {
        "cert": folder / "server.pem",
        "key": folder / "server.key",
        "ca": folder / "ca.pem",
    }
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    return paths


def _start(tmp_path: Path, files: dict[str, Path], ca: trustme.CA, mutual: bool) -> ServerProcess:
    args = ["--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])]
    client = None
    if mutual:
        args += ["--tls-client-ca", str(files["ca"])]
        issued = ca.issue_cert("health-check@example.test")
        client = (issued.private_key_pem.bytes(), issued.cert_chain_pems[0].bytes())
    server = ServerProcess(
        tmp_path, extra_args=args, tls_ca=files["ca"].read_bytes(), tls_client=client
    )
    return server.start()


@pytest.fixture
def tls_server(
    tmp_path: Path, server_files: dict[str, Path], ca: trustme.CA
) -> Iterator[ServerProcess]:
    server = _start(tmp_path, server_files, ca, mutual=False)
    yield server
    server.kill()


@pytest.fixture
def mtls_server(
    tmp_path: Path, server_files: dict[str, Path], ca: trustme.CA
) -> Iterator[ServerProcess]:
    server = _start(tmp_path, server_files, ca, mutual=True)
    yield server
    server.kill()


def _list_realms(channel: grpc.Channel) -> list[str]:
    answer = Api(channel).realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=MD, timeout=5)
    return [r.id for r in answer.realms]


def _refusal(channel: grpc.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        _list_realms(channel)
    return caught.value.code()


def test_tls_calls_work_with_the_servers_ca(
    tls_server: ServerProcess, server_files: dict[str, Path]
) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=server_files["ca"].read_bytes())
    with grpc.secure_channel(tls_server.target, creds) as channel:
        assert _list_realms(channel) == ["eu", "us"]


def test_plaintext_is_refused_when_tls_is_configured(tls_server: ServerProcess) -> None:
    with grpc.insecure_channel(tls_server.target) as channel:
        assert _refusal(channel) == grpc.StatusCode.UNAVAILABLE
    # The refused handshake is not a line of its own in the server's log: gRPC core's
    # INFO line about it broke the log's one JSON object per line.
    time.sleep(0.2)
    lines = [line for line in tls_server.log().splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines), lines


def test_a_client_not_trusting_the_servers_ca_is_refused(tls_server: ServerProcess) -> None:
    stranger = trustme.CA()
    creds = grpc.ssl_channel_credentials(root_certificates=stranger.cert_pem.bytes())
    with grpc.secure_channel(tls_server.target, creds) as channel:
        assert _refusal(channel) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_accepts_a_client_certificate_from_the_ca(
    mtls_server: ServerProcess, ca: trustme.CA, server_files: dict[str, Path]
) -> None:
    client = ca.issue_cert("client@example.test")
    creds = grpc.ssl_channel_credentials(
        root_certificates=server_files["ca"].read_bytes(),
        private_key=client.private_key_pem.bytes(),
        certificate_chain=client.cert_chain_pems[0].bytes(),
    )
    with grpc.secure_channel(mtls_server.target, creds) as channel:
        assert _list_realms(channel) == ["eu", "us"]


def test_mutual_tls_refuses_a_client_without_certificate(
    mtls_server: ServerProcess, server_files: dict[str, Path]
) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=server_files["ca"].read_bytes())
    with grpc.secure_channel(mtls_server.target, creds) as channel:
        assert _refusal(channel) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_refuses_a_certificate_from_another_ca(
    mtls_server: ServerProcess, server_files: dict[str, Path]
) -> None:
    other = trustme.CA().issue_cert("intruder@example.test")
    creds = grpc.ssl_channel_credentials(
        root_certificates=server_files["ca"].read_bytes(),
        private_key=other.private_key_pem.bytes(),
        certificate_chain=other.cert_chain_pems[0].bytes(),
    )
    with grpc.secure_channel(mtls_server.target, creds) as channel:
        assert _refusal(channel) == grpc.StatusCode.UNAVAILABLE


def _write_atomically(path: Path, data: bytes) -> None:
    """As a secret or certificate manager renews a file: write aside, rename over."""
    aside = path.with_suffix(".new")
    aside.write_bytes(data)
    aside.replace(path)


def _renewable_server(tmp_path: Path, ca: trustme.CA) -> tuple[ServerProcess, dict[str, Path]]:
    """A TLS server on a certificate of ``ca`` in files a test may renew."""
    files = {"cert": tmp_path / "server.pem", "key": tmp_path / "server.key"}
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(files["cert"]))
    issued.private_key_pem.write_to_path(str(files["key"]))
    server = ServerProcess(
        tmp_path / "data",
        extra_args=["--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])],
        tls_ca=ca.cert_pem.bytes(),
    ).start()
    return server, files


def test_a_renewed_certificate_is_served_to_new_connections_without_restart(
    tmp_path: Path,
) -> None:
    """The certificate and key are replaced (by another CA's, so a client can tell which it
    gets): once the files have settled, new connections get the new certificate; a
    connection open before keeps working; the log says so and holds no key material."""
    old_ca, new_ca = trustme.CA(), trustme.CA()
    server, files = _renewable_server(tmp_path, old_ca)

    def channel(ca: trustme.CA) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
        return grpc.secure_channel(server.target, creds)

    try:
        with channel(old_ca) as before:
            assert _list_realms(before) == ["eu", "us"]
            new = new_ca.issue_cert("127.0.0.1")
            # Half renewed (the new certificate, the old key): never served.
            _write_atomically(files["cert"], new.cert_chain_pems[0].bytes())
            deadline = time.monotonic() + 10
            while "not a usable certificate and key" not in server.log():
                # A handshake notices the change; one after it settled tries it, refuses it.
                with channel(old_ca) as during:
                    assert _list_realms(during) == ["eu", "us"]
                assert time.monotonic() < deadline, "the half-renewed files were not checked"
                time.sleep(0.3)
            with channel(old_ca) as during:
                assert _list_realms(during) == ["eu", "us"]
            _write_atomically(files["key"], new.private_key_pem.bytes())
            deadline = time.monotonic() + 10
            while True:  # a handshake starts the settling; one after it gets the new one
                with channel(new_ca) as after:
                    try:
                        assert _list_realms(after) == ["eu", "us"]
                        break
                    except grpc.RpcError:
                        assert time.monotonic() < deadline, "the new certificate never came"
                        time.sleep(0.3)
            with channel(old_ca) as stale:
                assert _refusal(stale) == grpc.StatusCode.UNAVAILABLE
            assert _list_realms(before) == ["eu", "us"]  # its connection predates the change
        log = server.log()
        assert log.count("TLS certificate reloaded") == 1
        assert log.count("not a usable certificate and key") == 1
        assert "PRIVATE KEY" not in log
    finally:
        server.kill()


def test_a_renewal_that_settled_a_while_ago_is_served_to_the_first_new_connection(
    tmp_path: Path,
) -> None:
    """Settled is judged by the files' own times: the first connection after a renewal made
    while nobody connected gets the new certificate (it got the old, possibly expired, one:
    the settling began when a handshake first noticed the change)."""
    old_ca, new_ca = trustme.CA(), trustme.CA()
    server, files = _renewable_server(tmp_path, old_ca)
    try:
        new = new_ca.issue_cert("127.0.0.1")
        _write_atomically(files["key"], new.private_key_pem.bytes())
        _write_atomically(files["cert"], new.cert_chain_pems[0].bytes())
        time.sleep(1.5)
        creds = grpc.ssl_channel_credentials(root_certificates=new_ca.cert_pem.bytes())
        with grpc.secure_channel(server.target, creds) as first:
            assert _list_realms(first) == ["eu", "us"]
    finally:
        server.kill()


def test_a_key_that_is_not_the_certificates_stops_the_server_at_start(tmp_path: Path) -> None:
    cert, other = trustme.CA().issue_cert("127.0.0.1"), trustme.CA().issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    other.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    server = ServerProcess(
        tmp_path / "data",
        extra_args=[
            "--tls-cert",
            str(tmp_path / "server.pem"),
            "--tls-key",
            str(tmp_path / "server.key"),
        ],
    )
    with pytest.raises(RuntimeError):
        server.start(timeout=15)
    lines = server.log().strip().splitlines()
    assert lines[-1].startswith("deltacloud-server: --tls-cert")
    assert "not a usable PEM certificate and its key" in lines[-1]
    assert "PRIVATE KEY" not in server.log()


TYPESCRIPT_CLIENT = Path(__file__).resolve().parent.parent / "clients" / "typescript"
#: Lists realms through the TypeScript client's connect() with the `tls` option: the CA,
#: and the client's key and certificate when given.
_TS_CALL = """
import fs from 'node:fs';
import { connect } from './index.js';
const read = (name) => (process.env[name] ? fs.readFileSync(process.env[name]) : undefined);
const tls = { ca: read('CA'), key: read('KEY'), cert: read('CERT') };
const dc = connect(process.env.TARGET, { username: 'mockuser', password: 'mockpassword', tls });
try {
  const { realms } = await dc.realms.listRealms({}, { timeoutMs: 10000 });
  console.log(`realms ${realms.length}`);
} catch (error) {
  console.log(`refused ${error.code}`);
}
"""


def _typescript_call(server: ServerProcess, **files: Path) -> str:
    env = {"PATH": os.environ["PATH"], "TARGET": f"localhost:{server.port}"}
    env.update({name: str(path) for name, path in files.items()})
    result = subprocess.run(
        ["node", "--input-type=module", "-e", _TS_CALL],
        cwd=TYPESCRIPT_CLIENT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_the_typescript_client_speaks_mutual_tls(
    mtls_server: ServerProcess, server_files: dict[str, Path], ca: trustme.CA, tmp_path: Path
) -> None:
    issued = ca.issue_cert("ts-client@example.test")
    key, cert = tmp_path / "client.key", tmp_path / "client.pem"
    issued.private_key_pem.write_to_path(str(key))
    issued.cert_chain_pems[0].write_to_path(str(cert))
    assert _typescript_call(mtls_server, CA=server_files["ca"], KEY=key, CERT=cert).startswith(
        "realms "
    )
    # Without a client certificate the server refuses the handshake (Connect reports the
    # stream cancelled).
    assert _typescript_call(mtls_server, CA=server_files["ca"]).startswith("refused ")


def _scrape_tls(address: str, ca: trustme.CA, client: trustme.LeafCert | None) -> str:
    context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    if client is not None:
        client.private_key_and_cert_chain_pem.write_to_path(str(_CLIENT_PEM))
        context.load_cert_chain(str(_CLIENT_PEM))
    request = urllib.request.urlopen(f"https://{address}/metrics", timeout=10, context=context)
    with request as response:
        assert response.status == 200
        return str(response.read().decode())


_CLIENT_PEM = Path(tempfile.mkdtemp()) / "scraper.pem"


def test_metrics_over_mutual_tls_need_a_client_certificate_from_the_ca(
    tmp_path: Path, server_files: dict[str, Path], ca: trustme.CA
) -> None:
    """--metrics-scheme https serves /metrics with the server's certificate, and with
    --tls-client-ca only to scrapers presenting a certificate of that CA; plain HTTP gets
    no answer."""
    args = [
        *("--tls-cert", str(server_files["cert"]), "--tls-key", str(server_files["key"])),
        *("--tls-client-ca", str(server_files["ca"])),
        *("--metrics-listen", "127.0.0.1:0", "--metrics-scheme", "https"),
    ]
    issued = ca.issue_cert("health-check@example.test")
    client = (issued.private_key_pem.bytes(), issued.cert_chain_pems[0].bytes())
    server = ServerProcess(
        tmp_path, extra_args=args, tls_ca=server_files["ca"].read_bytes(), tls_client=client
    ).start()
    try:
        address = metrics_address(server)
        text = _scrape_tls(address, ca, ca.issue_cert("prometheus@example.test"))
        assert "grpc_server_started_total" in text
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            _scrape_tls(address, ca, None)
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            _scrape_tls(address, trustme.CA(), trustme.CA().issue_cert("stranger@example.test"))
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read()
        assert "PRIVATE KEY" not in server.log()
    finally:
        server.kill()


def test_metrics_over_https_need_the_servers_certificate(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path, extra_args=["--metrics-listen", "127.0.0.1:0", "--metrics-scheme", "https"]
    )
    with pytest.raises(RuntimeError):
        server.start(timeout=15)
    assert "--metrics-scheme https needs --tls-cert and --tls-key" in server.log()
    other = ServerProcess(tmp_path / "ftp", extra_args=["--metrics-scheme", "ftp"])
    with pytest.raises(RuntimeError):
        other.start(timeout=15)
    assert "'ftp': http or https" in other.log()


def test_metrics_over_https_follow_a_renewed_certificate(tmp_path: Path) -> None:
    """The metrics endpoint's certificate is renewed as the gRPC port's is: once the new
    files have settled, new scrapes get it (a scraper trusting only the old CA is refused)."""
    old_ca, new_ca = trustme.CA(), trustme.CA()
    files = {"cert": tmp_path / "server.pem", "key": tmp_path / "server.key"}
    old = old_ca.issue_cert("127.0.0.1")
    old.cert_chain_pems[0].write_to_path(str(files["cert"]))
    old.private_key_pem.write_to_path(str(files["key"]))
    args = ["--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])]
    args += ["--metrics-listen", "127.0.0.1:0", "--metrics-scheme", "https"]
    server = ServerProcess(tmp_path / "data", extra_args=args, tls_ca=old_ca.cert_pem.bytes())
    server.start()
    try:
        address = metrics_address(server)
        assert "grpc_server_started_total" in _scrape_tls(address, old_ca, None)
        new = new_ca.issue_cert("127.0.0.1")
        _write_atomically(files["key"], new.private_key_pem.bytes())
        _write_atomically(files["cert"], new.cert_chain_pems[0].bytes())
        deadline = time.monotonic() + 10
        while True:  # a handshake starts the settling; one after it gets the new one
            try:
                assert "grpc_server_started_total" in _scrape_tls(address, new_ca, None)
                break
            except (ssl.SSLError, urllib.error.URLError):
                assert time.monotonic() < deadline, "the new certificate never came"
                time.sleep(0.3)
        with pytest.raises((ssl.SSLError, urllib.error.URLError)):
            _scrape_tls(address, old_ca, None)
    finally:
        server.kill()
