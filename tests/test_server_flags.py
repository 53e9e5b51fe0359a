"""The server as an operator starts it: every flag and DELTACLOUD_* variable refused, when
it makes no sense, with one line naming the flag and its rule (exit status 2, argparse's),
a start that cannot succeed ended with one line saying why (exit status 1), never a
traceback, never a credential echoed; unix sockets; and the docs naming only flags the
server takes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
SERVER = [sys.executable, "-m", "deltacloud.server.main"]


def run_server(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run deltacloud-server (on a free loopback port and a data directory of its own unless
    ``args`` say otherwise), in ``tmp_path``, for a server expected not to start."""
    defaults = []
    if "--listen" not in args:
        defaults += ["--listen", "127.0.0.1:0"]
    if "--data-dir" not in args:
        defaults += ["--data-dir", str(tmp_path / "data")]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DELTACLOUD_")}
    try:
        return subprocess.run(
            [*SERVER, *defaults, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env={**environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the server started (it should have refused):\n{exc.stderr!r}")


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        # Refused after 28 lines of usage.
        (["--workers", "0"], "--workers must be a positive number (got 0)"),
        # gRPC's "Failed to bind ... set GRPC_VERBOSITY=debug", after a line of its own.
        (["--listen", ":50099"], "--listen ':50099': expected HOST:PORT with a host"),
        (["--listen", "::1:0"], "--listen '::1:0': an IPv6 address goes in brackets"),
        (["--listen", "127.0.0.1:\u0663"], "expected HOST:PORT, the port 0 to 65535"),
        # Served on an abstract socket of gRPC's choosing, which nobody could reach.
        (["--listen", "unix:"], "--listen 'unix:': expected unix:PATH"),
        # Served, with the journal and keys in the working directory.
        (["--data-dir", ""], "argument --data-dir: expected a path, not an empty string"),
        # "serving", then a traceback (Path("") is ".", whose name is empty).
        (["--port-file", ""], "argument --port-file: expected a path"),
        (["--port-file", "/"], "--port-file /: is a directory"),
        (["--page-token-key", ""], "argument --page-token-key: expected a path"),
        (["--tls-cert", "", "--tls-key", ""], "argument --tls-cert: expected a path"),
        # The port file said 1.
        (
            ["--listen", "unix:{tmp}/dc.sock", "--port-file", "{tmp}/port"],
            "--port-file needs a HOST:PORT --listen",
        ),
        # "deltacloud-server: value too large to convert to int", naming nothing.
        (["--max-message-bytes", "2147483648"], "--max-message-bytes must be 1 to 2147483647"),
        (["--keepalive-time", "1e12"], "--keepalive-time must be 0.001 to 2147483 seconds"),
        # Rounded to 0 ms.
        (["--keepalive-min-client-interval", "0.0001"], "must be 0.001 to 2147483 seconds"),
        # "cannot serve metrics ...: address already in use", as if another process held it.
        (
            ["--listen", "127.0.0.1:47555", "--metrics-listen", "127.0.0.1:47555"],
            "--metrics-listen '127.0.0.1:47555' is the address of --listen",
        ),
        # Taken as port 3.
        (["--metrics-listen", "127.0.0.1:\u0663"], "--metrics-listen '127.0.0.1:\u0663': expected"),
        # Served, the option given to no driver.
        (["--driver-option", ".=x"], "driver option '.': expected DRIVER.KEY=VALUE"),
        (["--driver-option", "mock.=x"], "driver option 'mock.': expected DRIVER.KEY=VALUE"),
    ],
)
def test_a_flag_that_makes_no_sense_is_refused_in_one_line_naming_it(
    tmp_path: Path, flags: list[str], complaint: str
) -> None:
    args = [flag.replace("{tmp}", str(tmp_path)) for flag in flags]
    result = run_server(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert line.startswith("deltacloud-server: error: "), line
    assert complaint in line
    assert [p.name for p in tmp_path.iterdir()] in ([], ["data"])  # nothing written here


def test_an_environment_value_is_refused_as_its_flag(tmp_path: Path) -> None:
    result = run_server(tmp_path, env={"DELTACLOUD_KEEPALIVE_TIME": "1e12"})
    assert result.returncode == 2
    assert "--keepalive-time must be 0.001 to 2147483 seconds" in one_line(result)


def test_a_refusal_never_echoes_a_credential(tmp_path: Path) -> None:
    secret = "Sup3r-Secret-of-alice"
    # A user list split at a stray space: the second half was quoted whole.
    result = run_server(tmp_path, env={"DELTACLOUD_DRIVER_OPTIONS": f"mock.users= alice:{secret}"})
    assert result.returncode == 2
    line = one_line(result)
    assert "expected DRIVER.KEY=VALUE" in line and secret not in line, line
    # A driver refusing an option quotes it: user:password@ in an endpoint URL was printed.
    url = f"ftp://user:{secret}@127.0.0.1:9"
    result = run_server(tmp_path, "--driver-option", f"ec2.endpoint_url={url}")
    assert result.returncode == 1
    line = one_line(result)
    assert "ec2.endpoint_url must be an http:// or https:// URL" in line and secret not in line
    # An http URL with user:password@ was taken, and botocore would send it on.
    url = f"http://user:{secret}@127.0.0.1:9"
    result = run_server(tmp_path, "--driver-option", f"ec2.endpoint_url={url}")
    assert result.returncode == 1
    line = one_line(result)
    assert "ec2.endpoint_url must not carry user:password@" in line and secret not in line


# ---- start-up failures: exit status 1, one line "deltacloud-server: ..." ----------------


def _pem_files(folder: Path) -> dict[str, Path]:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    files = {"cert": folder / "cert.pem", "key": folder / "key.pem", "ca": folder / "ca.pem"}
    issued.cert_chain_pems[0].write_to_path(str(files["cert"]))
    issued.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    return files


def _data_dir_is_a_file(tmp: Path) -> tuple[list[str], str]:
    (tmp / "file").write_text("x")
    # Said "[Errno 17] File exists: '...'".
    return ["--data-dir", str(tmp / "file")], f"--data-dir {tmp / 'file'}: not a directory"


def _lock_is_a_directory(tmp: Path) -> tuple[list[str], str]:
    (tmp / "d" / "server.lock").mkdir(parents=True)
    return ["--data-dir", str(tmp / "d")], f"--data-dir {tmp / 'd'}: Is a directory"


def _journal_is_not_a_database(tmp: Path) -> tuple[list[str], str]:
    (tmp / "d").mkdir()
    (tmp / "d" / "events.sqlite3").write_bytes(b"SQLite format 3\0" + b"x" * 4096)
    # Said "file is not a database", and no more.
    return ["--data-dir", str(tmp / "d")], f"--data-dir {tmp / 'd'}: events.sqlite3: file is not"


def _certificate_missing(tmp: Path) -> tuple[list[str], str]:
    files = _pem_files(tmp)
    missing = tmp / "missing.pem"
    # Said "[Errno 2] No such file or directory: '...'".
    flags = ["--tls-cert", str(missing), "--tls-key", str(files["key"])]
    return flags, f"--tls-cert {missing}: No such file or directory"


def _certificate_and_key_swapped(tmp: Path) -> tuple[list[str], str]:
    files = _pem_files(tmp)
    # Said "... are not a usable PEM certificate and its key: [SSL] PEM lib (_ssl.c:3905)".
    flags = ["--tls-cert", str(files["key"]), "--tls-key", str(files["cert"])]
    return flags, f"--tls-cert {files['key']} holds no PEM certificate"


def _client_ca_is_a_key(tmp: Path) -> tuple[list[str], str]:
    files = _pem_files(tmp)
    # Blamed the certificate and key: "... NO_CERTIFICATE_OR_CRL_FOUND".
    flags = ["--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])]
    flags += ["--tls-client-ca", str(files["key"])]
    return flags, f"--tls-client-ca {files['key']} holds no PEM CA certificate"


def _socket_directory_missing(tmp: Path) -> tuple[list[str], str]:
    path = tmp / "nowhere" / "dc.sock"
    return ["--listen", f"unix:{path}"], f"(--listen): {path.parent} is not a directory"


def _socket_path_is_a_file(tmp: Path) -> tuple[list[str], str]:
    (tmp / "dc.sock").write_text("x")
    return ["--listen", f"unix:{tmp / 'dc.sock'}"], "dc.sock exists and is not a socket"


@pytest.mark.parametrize(
    "setup",
    [
        _data_dir_is_a_file,
        _lock_is_a_directory,
        _journal_is_not_a_database,
        _certificate_missing,
        _certificate_and_key_swapped,
        _client_ca_is_a_key,
        _socket_directory_missing,
        _socket_path_is_a_file,
    ],
)
def test_a_start_that_cannot_succeed_ends_in_one_line_naming_the_flag(
    tmp_path: Path, setup: Callable[[Path], tuple[list[str], str]]
) -> None:
    flags, complaint = setup(tmp_path)
    result = run_server(tmp_path, *flags)
    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert line.startswith("deltacloud-server: ") and complaint in line, line


# ---- unix sockets -------------------------------------------------------------------------


def _serving_on(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with grpc.insecure_channel(f"unix:{path}") as channel:
                check = health_pb2_grpc.HealthStub(channel).Check  # type: ignore[attr-defined]
                answer = check(health_pb2.HealthCheckRequest(), timeout=2)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
                return
        except grpc.RpcError:
            assert time.monotonic() < deadline, f"nothing serves on {path}"
            time.sleep(0.1)


def _unix_server(tmp_path: Path, path: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SERVER, "--listen", f"unix:{path}", "--data-dir", str(tmp_path / name)],
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_unix_socket_another_server_listens_on_is_not_taken_from_it(tmp_path: Path) -> None:
    """gRPC unlinks a unix socket's file and binds anew: a second server on the path of a
    running one said "serving" and took every new client from it, and when it stopped, the
    first one was left serving nobody. It is refused; a socket left by a server that died
    is taken over, as before. The `serving` line names the socket (it said "unix:1")."""
    path = tmp_path / "dc.sock"
    first = _unix_server(tmp_path, path, "first")
    try:
        _serving_on(path)
        result = run_server(tmp_path, "--listen", f"unix:{path}", "--data-dir", str(tmp_path / "b"))
        assert result.returncode == 1, result.stderr
        assert one_line(result) == (
            f"deltacloud-server: cannot listen on unix:{path} (--listen): "
            f"{path} is in use: another process listens on it"
        )
        _serving_on(path, timeout=2)  # still the first server's
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert path.exists()
        third = _unix_server(tmp_path, path, "third")
        try:
            _serving_on(path)
            third.send_signal(signal.SIGTERM)
            _, err = third.communicate(timeout=15)
            assert third.returncode == 0, err
        finally:
            third.kill()
        serving = [json.loads(x) for x in err.splitlines() if '"message": "serving"' in x]
        assert [line["listen"] for line in serving] == [f"unix:{path}"]
    finally:
        first.kill()
        first.communicate(timeout=10)


# ---- the docs ---------------------------------------------------------------------------


def test_the_docs_name_every_flag_the_server_takes_and_no_other() -> None:
    """README's table lists every flag of --help with its variable; the table and
    docs/operations.md name no flag the server does not take."""
    result = subprocess.run([*SERVER, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    flags = set(re.findall(r"^  (--[a-z-]+)", result.stdout, re.MULTILINE)) - {"--help"}
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Server configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `--")]
    in_table = {flag for row in rows for flag in re.findall(r"--[a-z-]+", row.split("|")[1])}
    assert flags - {"--version"} == in_table
    lists = {"--driver-option": "DRIVER_OPTIONS", "--driver-class": "DRIVER_CLASSES"}
    for row in rows:
        flag_cell, env_cell = row.split("|")[1:3]
        for flag in re.findall(r"--[a-z-]+", flag_cell):
            name = lists.get(flag) or flag[2:].upper().replace("-", "_")
            wildcards = re.findall(r"DELTACLOUD_([A-Z_]*)\*", env_cell)
            suffixes = re.findall(r"\.\.\.(_[A-Z_]+)", env_cell)
            assert (
                f"`DELTACLOUD_{name}`" in env_cell
                or any(name.startswith(w) for w in wildcards)
                or any(name.endswith(x) for x in suffixes)
            ), f"{flag}: DELTACLOUD_{name} not in {env_cell!r}"
    operations = (ROOT / "docs" / "operations.md").read_text()
    # (README's other sections are the CLI's: its --json.)
    named = set(re.findall(r"`(--[a-z][a-z-]*)", table + operations))
    assert named <= flags, f"documented, not taken: {sorted(named - flags)}"
