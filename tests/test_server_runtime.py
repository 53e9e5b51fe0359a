"""The server process: configuration by flags and environment, health, graceful shutdown,
limits, worker pool, and logs that never hold credentials."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import Api, ServerProcess
from grpc_health.v1 import health_pb2
from test_server_flags import run_server

from deltacloud.server.app import addresses_in_use
from deltacloud.v1 import (
    bucket_pb2,
    common_pb2,
    instance_pb2,
    instance_pb2_grpc,
    key_pb2,
    realm_pb2,
)
from support import MD, basic, failure, metadata


def _run(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_environment_variables_configure_the_server(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    server = ServerProcess(
        tmp_path,
        default_args=False,
        env={
            "DELTACLOUD_LISTEN": "127.0.0.1:0",
            "DELTACLOUD_DATA_DIR": str(tmp_path / "data"),
            "DELTACLOUD_PORT_FILE": str(port_file),
            "DELTACLOUD_DRIVER": "mock",
            "DELTACLOUD_DRIVER_OPTIONS": "mock.users=carol:carol-pw mock.pending_delay=0.1",
        },
    )
    for _ in _run(server):
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            realms = api.realms.ListRealms(
                realm_pb2.ListRealmsRequest(), metadata=metadata("carol", "carol-pw")
            )
            assert [r.id for r in realms.realms] == ["eu", "us"]
            keys = api.keys.ListKeys(
                key_pb2.ListKeysRequest(), metadata=metadata("carol", "carol-pw")
            )
            assert list(keys.keys) == []  # carol owns nothing; mockuser's key is hidden
        assert (tmp_path / "data" / "mock" / "mock.sqlite3").is_file()
        assert (tmp_path / "data" / "page-token.key").stat().st_mode & 0o777 == 0o600


def test_flags_override_environment_variables(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path,
        env={"DELTACLOUD_DRIVER": "no-such-driver"},
        extra_args=["--driver", "mock"],
    )
    for _ in _run(server):
        with grpc.insecure_channel(server.target) as channel:
            _, call = Api(channel).realms.ListRealms.with_call(
                realm_pb2.ListRealmsRequest(), metadata=MD
            )
            assert ("x-deltacloud-driver", "mock") in call.trailing_metadata()


def test_unknown_default_driver_fails_at_start_with_one_clear_line(tmp_path: Path) -> None:
    result = run_server(tmp_path, "--driver", "nimbus")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("deltacloud-server: unknown driver 'nimbus'; known drivers: ")
    assert "mock" in lines[0].split("known drivers: ")[1].split(", ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["mock.pending_delay=soon"], "'pending_delay' must be a number of seconds"),
        (["ec2.multipart_threshold=big"], "ec2.multipart_threshold must be a size"),
        (["ec2.multipart_concurrency=0"], "ec2.multipart_concurrency must be at least 1"),
        (["nimbus.region=x"], "unknown driver 'nimbus'"),
        # A typo left the default silently in force (with ec2, AWS's own endpoint).
        (["mock.pending_dely=0.5"], "unknown driver option mock.pending_dely; mock reads"),
        (["ec2.endpoint_ur=http://127.0.0.1:1"], "unknown driver option ec2.endpoint_ur"),
        # Accepted, then every call failed INTERNAL.
        (["ec2.endpoint_url=notaurl"], "ec2.endpoint_url must be an http:// or https:// URL"),
        (["ec2.endpoint_url.eu-west-1=http://[::1"], "ec2.endpoint_url.eu-west-1 must be an"),
        # A typo meant off; too small a part was raised to 5MiB without a word.
        (["ec2.provider_endpoints=allw"], "ec2.provider_endpoints must be one of 1, true"),
        (["ec2.multipart_part_size=1MiB"], "ec2.multipart_part_size must be at least 5MiB"),
    ],
)
def test_malformed_driver_options_fail_at_start_with_one_clear_line(
    tmp_path: Path, options: list[str], complaint: str
) -> None:
    """Options are checked when the server starts (the default driver and every driver
    given options are built then), not at a client's first call."""
    flags = [arg for option in options for arg in ("--driver-option", option)]
    result = run_server(tmp_path, *flags)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deltacloud-server: "), result.stderr
    assert complaint in lines[0]


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        # A traceback (logging refused the level after the flags were read).
        (["--log-level", "VERBOSE"], "--log-level: 'VERBOSE': one of DEBUG"),
        # Wrapped by gRPC: it listened on 34463.
        (["--listen", "127.0.0.1:99999"], "--listen '127.0.0.1:99999': expected HOST:PORT"),
        # NaN passed "must be positive": kept answers were never found, polls stalled.
        (["--request-id-retention", "nan"], "--request-id-retention must be a positive number"),
        (["--watch-poll-interval", "inf"], "--watch-poll-interval must be a positive number"),
        (["--shutdown-grace", "-1"], "--shutdown-grace must be a number of seconds >= 0"),
        # Taken: an idle watch then got about 426 progress messages a second.
        (["--watch-progress-interval", "0.0001"], "'0.0001': 0.1 to 300 seconds"),
        (["--watch-progress-interval", "nan"], "'nan': 0.1 to 300 seconds"),
        # Found after the server listened: "serving", then a traceback.
        (["--port-file", "/nonexistent-dir/port"], "--port-file /nonexistent-dir/port:"),
    ],
)
def test_nonsense_flags_are_refused_at_start_with_one_line(
    tmp_path: Path, flags: list[str], complaint: str
) -> None:
    result = run_server(tmp_path, *flags)
    assert result.returncode == 2, result.stderr
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


def test_a_log_level_from_the_environment_is_checked_too(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deltacloud.server.main", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "DELTACLOUD_LOG_LEVEL": "warnings"},
    )
    assert result.returncode == 2 and "'warnings': one of DEBUG" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("size", [0, 8])
def test_a_scope_key_too_short_to_be_one_stops_the_start(tmp_path: Path, size: int) -> None:
    """With an empty key (a crash while it was first written), the journal's scope names
    were plain hashes of the credentials, open to guessing; it is refused, as a short
    page-token key is."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "scope.key").write_bytes(b"k" * size)
    result = run_server(tmp_path, "--data-dir", str(tmp_path))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "scope.key (scope key) holds" in lines[0], result.stderr


def test_keys_are_made_whole_and_private(tmp_path: Path) -> None:
    from deltacloud.server import keyfiles

    key = keyfiles.load_or_create(tmp_path / "new.key", "a key")
    assert len(key) == 32 and (tmp_path / "new.key").read_bytes() == key
    assert (tmp_path / "new.key").stat().st_mode & 0o777 == 0o600
    assert keyfiles.load_or_create(tmp_path / "new.key", "a key") == key
    assert [p.name for p in tmp_path.iterdir()] == ["new.key"]  # nothing left aside


def test_a_new_data_directory_is_private(tmp_path: Path) -> None:
    """The data directory holds users' data (the mock's blobs and instances, the kept
    answers of creates); made by the server, it was readable by every local user (0755,
    files 0644). Now new directories are 0700, the mock's own directory too."""
    data_dir = tmp_path / "made" / "here"
    mock_dir = tmp_path / "mock-elsewhere"
    # The kit makes its own directory (for the port file and log); the server makes these.
    extra = ["--data-dir", str(data_dir), "--driver-option", f"mock.data_dir={mock_dir}"]
    server = ServerProcess(tmp_path / "kit", extra_args=extra)
    for _ in _run(server):
        with grpc.insecure_channel(server.target) as channel:
            Api(channel).buckets.ListBuckets(bucket_pb2.ListBucketsRequest(), metadata=MD)
        for directory in (data_dir, mock_dir, mock_dir / "blobs", mock_dir / "tmp"):
            assert directory.stat().st_mode & 0o777 == 0o700, directory


def test_bad_flag_value_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deltacloud.server.main", "--driver-option", "nodot=1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "expected DRIVER.KEY=VALUE" in result.stderr


def test_version_names_the_server_and_what_it_runs_on() -> None:
    from importlib.metadata import version

    from google.protobuf import __version__ as protobuf_version

    result = subprocess.run(
        [sys.executable, "-m", "deltacloud.server.main", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith(f"deltacloud-server {version('deltacloud-grpc')} (")
    assert f"grpcio {grpc.__version__}" in line
    assert f"protobuf {protobuf_version}" in line


def test_the_serving_line_says_the_version(server: ServerProcess) -> None:
    from importlib.metadata import version

    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    serving = [line for line in lines if line.get("message") == "serving"]
    assert len(serving) == 1, lines
    assert serving[0]["version"] == version("deltacloud-grpc")


def test_health_reports_every_service_serving(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.target) as channel:
        api = Api(channel)
        for name in ["", "deltacloud.v1.InstanceService", "deltacloud.v1.BucketService"]:
            answer = api.health.Check(health_pb2.HealthCheckRequest(service=name))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_shuts_down_gracefully_and_exits_zero(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGHUP (a closing terminal) ended the process at once (-1), with no grace."""
    server = ServerProcess(tmp_path).start()
    try:
        assert server.process is not None
        server.process.send_signal(sig)
        assert server.process.wait(15) == 0
        log = server.log()
        assert '"message": "shutting down"' in log
        assert '"message": "stopped"' in log
    finally:
        server.kill()


def test_sighup_ignored_as_under_nohup_stays_ignored(tmp_path: Path) -> None:
    """A server started with SIGHUP ignored (nohup) keeps serving when the terminal closes;
    SIGHUP stops it gracefully only where it would otherwise have ended it."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # inherited by the server
    try:
        server = ServerProcess(tmp_path).start()
    finally:
        signal.signal(signal.SIGHUP, previous)
    try:
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert server.process.poll() is None
        with grpc.insecure_channel(server.target) as channel:
            answer = Api(channel).health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert '"message": "shutting down"' not in server.log()
    finally:
        server.kill()


def _hanging_call(channel: grpc.Channel) -> tuple[threading.Thread, dict[str, object]]:
    """A call to the mock's ``hang`` realm (its worker blocks for 30 s, no deadline) from a
    thread, on its worker once this returns; its status code lands in the dict."""
    outcome: dict[str, object] = {}

    def hang() -> None:
        try:
            Api(channel).realms.GetRealm(realm_pb2.GetRealmRequest(id="hang"), metadata=MD)
        except grpc.RpcError as error:
            outcome["code"] = error.code()

    caller = threading.Thread(target=hang)
    caller.start()
    time.sleep(0.5)
    return caller, outcome


def test_a_second_signal_ends_the_grace_period_at_once(tmp_path: Path) -> None:
    """The second SIGTERM or SIGINT (an operator's second Ctrl-C) was ignored: the server
    waited out the whole grace period for a call that would not finish. Now it answers the
    calls still running UNAVAILABLE at once and exits 0, saying so."""
    server = ServerProcess(tmp_path, extra_args=["--shutdown-grace", "30"]).start()
    try:
        channel = grpc.insecure_channel(server.target)
        caller, outcome = _hanging_call(channel)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1)
        assert server.process.poll() is None, "the first signal gives the grace period"
        again = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(10) == 0
        assert time.monotonic() - again < 5
        caller.join(5)
        channel.close()
        assert outcome.get("code") == grpc.StatusCode.UNAVAILABLE
        records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        messages = [r["message"] for r in records]
        assert "second signal: ending the grace period now" in messages
        assert messages[-1] == "stopped"
    finally:
        server.kill()


#: A driver whose building takes 3 s, saying when it begins: a start that takes a while.
SLOW_DRIVER = """
import time
from pathlib import Path
from deltacloud.drivers.mock import MockDriver

class SlowDriver(MockDriver):
    name = "slow"

    def __init__(self, *args, **kwargs):
        Path(__file__).with_name("building").touch()
        time.sleep(3)
        super().__init__(*args, **kwargs)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_start_ends_it_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    """The handlers were installed once the server served: a SIGTERM during the start
    killed the process (exit -15, no log), and a SIGINT after the gRPC server was made
    went on to serve without a graceful stop (gRPC's traceback at exit). Now the start is
    abandoned, and the process says so and exits 0."""
    (tmp_path / "slowdriver.py").write_text(SLOW_DRIVER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "deltacloud.server.main", "--listen", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data"), "--driver-class", "slowdriver:SlowDriver",
         "--driver", "slow"],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "building").exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the driver was never built"
            time.sleep(0.02)
        process.send_signal(sig)
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    records = [json.loads(line) for line in err.splitlines()]
    assert [(r["message"], r.get("during_start")) for r in records] == [("stopped", True)]


def test_the_port_file_is_there_only_while_the_server_serves(tmp_path: Path) -> None:
    """A port file left by the last run (its port gone) was there from the start on, so a
    script waiting for it went to a dead port; and a stopped server left its own behind."""
    (tmp_path / "slowdriver.py").write_text(SLOW_DRIVER)
    port_file = tmp_path / "port"
    port_file.write_text("1\n")  # the last run's
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "deltacloud.server.main", "--listen", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data"), "--driver-class", "slowdriver:SlowDriver",
         "--driver", "slow", "--port-file", str(port_file)],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "building").exists():  # starting, not serving
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        assert not port_file.exists(), "the last run's port file, while starting"
        while not port_file.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        port = int(port_file.read_text())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = Api(channel).health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert not port_file.exists(), "left behind by the stopped server"
    finally:
        process.kill()


def test_a_client_watching_health_does_not_hold_the_shutdown(tmp_path: Path) -> None:
    """A health Watch stream (gRPC's client-side health checking keeps one on every
    connection) is told NOT_SERVING and then ends UNAVAILABLE: it never finished by itself,
    so with nothing else in flight the server took the whole grace period to stop."""
    server = ServerProcess(tmp_path, extra_args=["--shutdown-grace", "30"]).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            watch = Api(channel).health.Watch(health_pb2.HealthCheckRequest(service=""))
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            assert server.process is not None
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.RpcError) as ended:
                next(watch)
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            assert server.process.wait(10) == 0
            assert time.monotonic() - signalled < 5, "the health watch held the shutdown"
    finally:
        server.kill()


def test_debug_logs_are_the_servers_lines_not_grpcs_noise(tmp_path: Path) -> None:
    """--log-level DEBUG adds one `call` line per RPC (docs/operations.md); it also let
    through gRPC's "[_cygrpc] Loaded running loop", two per call and some seventy at start,
    and asyncio's "Using selector"."""
    server = ServerProcess(tmp_path, extra_args=["--log-level", "DEBUG"]).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            for _ in range(3):
                Api(channel).realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=MD)
        assert server.stop() == 0
    finally:
        server.kill()
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    calls = [r for r in records if r["message"] == "call" and r["method"] == "ListRealms"]
    assert len(calls) == 3
    foreign = [
        r for r in records if r["level"] == "DEBUG" and r["logger"].split(".")[0] != "deltacloud"
    ]
    assert foreign == [], foreign[:3]


def test_a_per_scope_limit_not_under_its_pool_is_warned_of_at_start(tmp_path: Path) -> None:
    """--workers 4 alone left --calls-per-scope at 16: one user's stalled cloud could take
    every worker, which the limit exists to prevent, without a word."""
    server = ServerProcess(tmp_path, extra_args=["--workers", "4", "--upload-workers", "8"])
    for _ in _run(server):
        records = [json.loads(x) for x in server.log().splitlines() if x.startswith("{")]
        warned = [r["message"] for r in records if r["level"] == "WARNING"]
        assert warned == [
            "--calls-per-scope 16 is not under --workers 4: one scope may take every worker",
            "--transfers-per-scope 16 is not under --upload-workers 8: one scope may take "
            "every worker",
        ]


def test_the_defaults_are_warned_of_nothing(server: ServerProcess) -> None:
    records = [json.loads(x) for x in server.log().splitlines() if x.startswith("{")]
    assert [r for r in records if r["level"] != "INFO"] == []


def test_a_driver_call_outliving_the_grace_period_does_not_hold_the_process(
    tmp_path: Path,
) -> None:
    """The mock's ``hang`` realm blocks its worker for 30 s (no deadline): after SIGTERM the
    call is answered UNAVAILABLE at the end of the grace period (2 s here) and the process
    exits then, without waiting for the worker, saying so in its log."""
    server = ServerProcess(tmp_path).start()
    try:
        channel = grpc.insecure_channel(server.target)
        caller, outcome = _hanging_call(channel)
        assert server.process is not None
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 0
        took = time.monotonic() - signalled
        caller.join(5)
        channel.close()
        assert outcome.get("code") == grpc.StatusCode.UNAVAILABLE
        assert took < 8, f"the server took {took:.1f} s to exit (grace 2 s, the call hangs 30)"
        records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        warned = [r for r in records if r.get("message", "").startswith("driver calls still")]
        assert [r["calls"] for r in warned] == [1]
        assert records[-1]["message"] == "stopped"
    finally:
        server.kill()


def test_an_upload_stalled_past_the_grace_period_ends_without_an_error_in_the_log(
    tmp_path: Path,
) -> None:
    """An upload whose client stops sending (no length announced) is still reading at
    SIGTERM: the client hears UNAVAILABLE at the end of the grace period, the process exits
    0, nothing is stored, and the log has no error and no traceback (asyncio reported the
    upload's end-of-stream check, cut by the shutdown, as an unhandled exception)."""
    server = ServerProcess(tmp_path, extra_args=["--shutdown-grace", "1"]).start()
    release = threading.Event()

    def stalled() -> Iterator[bucket_pb2.UploadBlobRequest]:
        yield bucket_pb2.UploadBlobRequest(
            header=bucket_pb2.UploadBlobHeader(bucket_id="bucket1", blob_id="stalled")
        )
        yield bucket_pb2.UploadBlobRequest(chunk=b"the first bytes")
        release.wait(30)

    try:
        channel = grpc.insecure_channel(server.target)
        upload = Api(channel).buckets.UploadBlob.future(stalled(), metadata=MD, timeout=30)
        temporary = Path(server.data_dir) / "mock" / "tmp"
        deadline = time.monotonic() + 10
        while not list(temporary.glob("*.part")):  # the driver is reading it
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 0
        with pytest.raises(grpc.RpcError) as caught:
            upload.result(10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        release.set()
        channel.close()
        log = server.log()
        records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert [r for r in records if r["level"] in ("ERROR", "CRITICAL")] == []
        assert "Traceback" not in log
        assert records[-1]["message"] == "stopped"
        assert not list(temporary.glob("*.part"))
    finally:
        release.set()
        server.kill()


def test_an_action_answered_during_the_grace_period_is_journaled(tmp_path: Path) -> None:
    """A stop that takes a second (the test driver's slow cloud) is in flight at SIGTERM:
    it is answered within the grace period, and a watch resumed after the restart gets its
    event from the journal, as for any acknowledged action."""
    flags = ["--driver-option", "limited.stop_seconds=1", "--shutdown-grace", "5"]
    server = ServerProcess(tmp_path, extra_args=flags).start()
    md = metadata(driver="limited")
    try:
        channel = grpc.insecure_channel(server.target)
        stub = instance_pb2_grpc.InstanceServiceStub(channel)
        answer: dict[str, object] = {}

        def stop() -> None:
            answer["instance"] = stub.StopInstance(
                instance_pb2.StopInstanceRequest(id="lim1"), metadata=md, timeout=10
            )

        caller = threading.Thread(target=stop)
        caller.start()
        time.sleep(0.3)  # the stop is on its worker
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        caller.join(10)
        assert server.process.wait(15) == 0
        channel.close()
        stopped = answer.get("instance")
        assert isinstance(stopped, instance_pb2.Instance)
        assert stopped.state == common_pb2.INSTANCE_STATE_STOPPING
        assert '"level": "ERROR"' not in server.log()
        server.restart()
        with grpc.insecure_channel(server.target) as again:
            stream = instance_pb2_grpc.InstanceServiceStub(again).WatchInstanceEvents(
                instance_pb2.WatchInstanceEventsRequest(after_revision=0), metadata=md, timeout=10
            )
            first = next(stream)
            stream.cancel()
        causes = [(e.instance_id, e.cause) for e in first.events]
        assert ("lim1", instance_pb2.EVENT_CAUSE_STOP) in causes, causes
    finally:
        server.kill()


def test_in_flight_upload_finishes_during_graceful_shutdown(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        channel = grpc.insecure_channel(server.target)
        api = Api(channel)
        started = threading.Event()
        release = threading.Event()

        def requests() -> Iterator[bucket_pb2.UploadBlobRequest]:
            yield bucket_pb2.UploadBlobRequest(
                header=bucket_pb2.UploadBlobHeader(bucket_id="bucket1", blob_id="late")
            )
            yield bucket_pb2.UploadBlobRequest(chunk=b"first half ")
            started.set()
            release.wait(10)
            yield bucket_pb2.UploadBlobRequest(chunk=b"second half")

        result: dict[str, object] = {}

        def upload() -> None:
            result["blob"] = api.buckets.UploadBlob(requests(), metadata=MD, timeout=20)

        worker = threading.Thread(target=upload)
        worker.start()
        assert started.wait(10)
        # The client library pulls requests ahead of the server: wait until the server is
        # really in the call (the mock is streaming the blob into its temp file).
        uploads = tmp_path / "mock" / "tmp"
        deadline = time.monotonic() + 10
        while not (uploads.is_dir() and any(uploads.iterdir())):
            assert time.monotonic() < deadline, "the upload never reached the driver"
            time.sleep(0.01)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        release.set()
        worker.join(20)
        blob = result["blob"]
        assert isinstance(blob, bucket_pb2.Blob)
        assert blob.content_length == len(b"first half second half")
        assert server.process.wait(15) == 0
        channel.close()
        server.restart()
        with grpc.insecure_channel(server.target) as again:
            stored = Api(again).buckets.GetBlob(
                bucket_pb2.GetBlobRequest(bucket_id="bucket1", id="late"), metadata=MD
            )
            assert stored.content_length == len(b"first half second half")
    finally:
        server.kill()


def test_message_over_the_size_limit_is_resource_exhausted_and_server_keeps_serving(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path, extra_args=["--max-message-bytes", "65536"]).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            with pytest.raises(grpc.RpcError) as caught:
                api.keys.CreateKey(
                    key_pb2.CreateKeyRequest(name="big", public_key="x" * 100_000), metadata=MD
                )
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            realms = api.realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=MD)
            assert len(realms.realms) == 2
            # A blob it lets in, in messages under the limit, comes out in such messages
            # too (downloads went out in pieces of 1 MiB, over any limit under that).
            content = os.urandom(200_000)
            pieces = [content[i : i + 20_000] for i in range(0, len(content), 20_000)]
            head = bucket_pb2.UploadBlobHeader(bucket_id="bucket1", blob_id="under-limit")
            api.buckets.UploadBlob(
                iter(
                    [
                        bucket_pb2.UploadBlobRequest(header=head),
                        *(bucket_pb2.UploadBlobRequest(chunk=p) for p in pieces),
                    ]
                ),
                metadata=MD,
            )
            replies = list(
                api.buckets.DownloadBlob(
                    bucket_pb2.DownloadBlobRequest(bucket_id="bucket1", id="under-limit"),
                    metadata=MD,
                )
            )
            assert b"".join(r.chunk for r in replies) == content
            assert max(r.ByteSize() for r in replies) <= 65536
    finally:
        server.kill()


def test_many_concurrent_calls_are_all_answered(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.target) as channel:
        api = Api(channel)
        futures = [
            api.instances.ListInstances.future(instance_pb2.ListInstancesRequest(), metadata=MD)
            for _ in range(200)
        ]
        answers = [f.result(timeout=30) for f in futures]
    assert all(len(a.instances) >= 4 for a in answers)


def test_credentials_never_appear_in_logs_or_errors(tmp_path: Path) -> None:
    password = "s3cret-Pa55word-never-logged"
    server = ServerProcess(tmp_path, extra_args=["--log-level", "DEBUG"]).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            bad = metadata("mockuser", password)
            messages = []
            for call in (
                lambda: api.realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=bad),
                lambda: api.realms.GetRealm(realm_pb2.GetRealmRequest(id="500"), metadata=MD),
                lambda: api.instances.StartInstance(
                    instance_pb2.StartInstanceRequest(id="inst0"), metadata=bad
                ),
                lambda: api.realms.ListRealms(
                    realm_pb2.ListRealmsRequest(),
                    metadata=[("authorization", "Basic " + password)],
                ),
                # A provider URL with credentials in it: the access log's fields named it
                # as sent (the message was cleaned, the fields were not).
                lambda: api.realms.ListRealms(
                    realm_pb2.ListRealmsRequest(),
                    metadata=metadata(
                        "AKIAEXAMPLE",
                        "x",
                        driver="ec2",
                        provider=f"us-east-1@https://u:{password}@h",
                    ),
                ),
            ):
                with pytest.raises(grpc.RpcError) as caught:
                    call()
                info = failure(caught.value)
                messages.append(info.message + json.dumps(info.metadata))
        assert server.stop() == 0
        secrets = [
            password,
            base64.b64encode(f"mockuser:{password}".encode()).decode(),
            basic("mockuser", "mockpassword").split()[1],
            "mockpassword",
        ]
        log = server.log()
        assert log, "the server logged nothing at DEBUG"
        for secret in secrets:
            assert secret not in log
            for message in messages:
                assert secret not in message
    finally:
        server.kill()


def test_a_second_server_on_the_same_data_dir_is_refused(server: ServerProcess) -> None:
    port_file = server.data_dir / "port"
    result = run_server(
        server.data_dir, "--data-dir", str(server.data_dir), "--port-file", str(port_file)
    )
    assert result.returncode == 1
    assert "is in use by another deltacloud-server" in result.stderr
    assert "Traceback" not in result.stderr
    assert port_file.read_text().strip() == str(server.port)  # the first one's, kept


def test_a_listen_address_held_by_another_process_stops_the_start(tmp_path: Path) -> None:
    """gRPC serves ``localhost:P`` if either loopback binds: with 127.0.0.1:P taken it
    served on ::1 alone and said "serving", while clients dialling 127.0.0.1:P reached the
    other process."""
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        result = run_server(tmp_path, "--listen", f"localhost:{port}")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"deltacloud-server: cannot listen on localhost:{port} (--listen): 127.0.0.1:{port} in use"
    ]


def _ipv6_loopback() -> bool:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        return False
    return True


def test_addresses_in_use_names_each_loopback_held() -> None:
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        assert addresses_in_use(f"localhost:{port}") == [f"127.0.0.1:{port}"]
        assert addresses_in_use(f"127.0.0.1:{port}") == [f"127.0.0.1:{port}"]
        assert addresses_in_use("localhost:0") == []  # a port of its own: none is in use
    # Free again (a listener's port closes at once: SO_REUSEADDR, as gRPC's).
    assert addresses_in_use(f"localhost:{port}") == []
    assert addresses_in_use("unix:/tmp/x.sock") == []
    if _ipv6_loopback():
        with socket.create_server(("::1", 0), family=socket.AF_INET6) as other:
            port = other.getsockname()[1]
            assert addresses_in_use(f"localhost:{port}") == [f"[::1]:{port}"]
            assert addresses_in_use(f"[::1]:{port}") == [f"[::1]:{port}"]


def test_a_bad_environment_value_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    env = {"DELTACLOUD_WORKERS": "many", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "deltacloud.server.main", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 2
    assert "argument --workers: invalid int value: 'many'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_server_raises_its_open_files_limit_to_the_hard_one(tmp_path: Path) -> None:
    """Started with a soft limit of 256 (systemd's default is 1024 against a hard limit far
    above), it takes the hard one: each connection, watch and blob file is a descriptor."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"the hard limit here ({hard}) leaves nothing to raise")  # a fact
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deltacloud.server.main",
            "--listen",
            "127.0.0.1:0",
            "--port-file",
            str(port_file),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert process.poll() is None, "the server exited at start"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert line.split()[3:5] == [str(hard), str(hard)], line
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
    serving = [json.loads(x) for x in err.splitlines() if '"message": "serving"' in x]
    assert serving and serving[0]["max_open_files"] == hard
