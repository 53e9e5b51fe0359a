"""TLS and mutual TLS, with certificates made by the test (trustme): encrypted calls work,
plaintext is refused when TLS is configured, and mTLS refuses clients without a
certificate signed by the configured CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme
from conftest import Api, ServerProcess

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
