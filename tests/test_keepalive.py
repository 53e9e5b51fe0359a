"""HTTP/2 keepalive, both ways, through a proxy that can go silent (tests/blackhole.py):
the server drops a client that stopped answering (its watch ends), accepts client pings as
often as --keepalive-min-client-interval allows, and the Python client notices a server
that stopped answering and resumes its watch through a new connection, and so does the
Node.js client (tests/node/watch_through_silence.js)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from blackhole import Blackhole
from conftest import ServerProcess
from google.protobuf import duration_pb2

from deltacloud.client import Client
from deltacloud.client.transport import KEEPALIVE_OPTIONS, Settings
from deltacloud.server.config import ServerConfig
from deltacloud.v1 import instance_pb2, instance_pb2_grpc
from support import MD, MOCK_USER


def _watch_request(progress_seconds: int) -> instance_pb2.WatchInstanceEventsRequest:
    """A watch whose first message (the snapshot) comes at once, then one progress message
    every ``progress_seconds``."""
    return instance_pb2.WatchInstanceEventsRequest(
        initial_snapshot=True, progress_interval=duration_pb2.Duration(seconds=progress_seconds)
    )


def _watch_ended_in_log(server: ServerProcess) -> str | None:
    """The status code the server logged for the end of a WatchInstanceEvents call (DEBUG
    access log), None while it has not ended."""
    for line in server.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("message") == "call" and record.get("method") == "WatchInstanceEvents":
                return str(record["code"])
    return None


def _reboot(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = instance_pb2_grpc.InstanceServiceStub(channel)
        stub.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD)


def test_the_server_drops_a_client_that_stopped_answering(tmp_path: Path) -> None:
    flags = ["--keepalive-time", "1", "--keepalive-timeout", "1", "--log-level", "DEBUG"]
    server = ServerProcess(tmp_path, extra_args=flags).start()
    try:
        with Blackhole(server.port) as hole, grpc.insecure_channel(hole.target) as channel:
            stub = instance_pb2_grpc.InstanceServiceStub(channel)
            stream = stub.WatchInstanceEvents(_watch_request(1), metadata=MD, timeout=60)
            next(stream)  # the snapshot: the stream is live
            assert _watch_ended_in_log(server) is None
            hole.freeze()
            frozen = time.monotonic()
            while (code := _watch_ended_in_log(server)) is None:
                assert time.monotonic() - frozen < 10, (
                    "the server kept the watch of a client that stopped answering for 10 s "
                    "with a keepalive of 1 s + 1 s"
                )
                time.sleep(0.1)
            assert code == "CANCELLED"
            stream.cancel()
    finally:
        server.kill()


def test_a_client_may_ping_as_often_as_the_server_allows(tmp_path: Path) -> None:
    """Pings every 0.6 s with the server's minimum at 0.5 s, during a watch on which the
    server sends nothing: the stream lives on (gRPC's default minimum, 5 minutes, would
    answer the third such ping with GOAWAY too_many_pings and end the stream)."""
    server = ServerProcess(tmp_path, extra_args=["--keepalive-min-client-interval", "0.5"]).start()
    pinging = [
        ("grpc.keepalive_time_ms", 600),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    try:
        with grpc.insecure_channel(server.target, options=pinging) as channel:
            stub = instance_pb2_grpc.InstanceServiceStub(channel)
            stream = stub.WatchInstanceEvents(_watch_request(300), metadata=MD, timeout=30)
            next(stream)  # the snapshot
            time.sleep(4)  # about six pings, the server silent
            _reboot(server)
            for message in stream:
                if any(e.instance.id == "inst0" for e in message.events):
                    break
            stream.cancel()
    finally:
        server.kill()


#: The watching clients below ping every second; a server refusing pings that often
#: (--keepalive-min-client-interval is 10 s by default) would send them away (GOAWAY
#: too_many_pings) and they would reconnect for that reason instead of the silence.
PINGS_WELCOME = ["--keepalive-min-client-interval", "0.5"]


def test_the_client_resumes_a_watch_whose_server_stopped_answering(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, extra_args=PINGS_WELCOME).start()
    fast = (
        ("grpc.keepalive_time_ms", 1000),
        ("grpc.keepalive_timeout_ms", 1000),
        ("grpc.http2.ping_timeout_ms", 1000),
    )
    try:
        with Blackhole(server.port) as hole:
            settings = Settings(
                target=hole.target, username=MOCK_USER[0], password=MOCK_USER[1], options=fast
            )
            with Client(settings=settings) as client:
                watch = client.watch(initial_snapshot=True, progress_interval=300, timeout=60)
                ready, frozen = threading.Event(), threading.Event()
                rebooted: list[int] = []

                def consume() -> None:
                    for message, events in watch.messages():
                        # Ready once the snapshot is complete: a watch cut before that
                        # takes its snapshot again, which shows the reboot's outcome, not
                        # the REBOOT event looked for (on a slow machine the snapshot's
                        # events and its end can come seconds apart).
                        if (
                            message.kind
                            == instance_pb2.WatchInstanceEventsResponse.KIND_SNAPSHOT_COMPLETE
                        ):
                            ready.set()
                        if frozen.is_set():
                            rebooted.extend(
                                e.revision
                                for e in events
                                if e.instance.id == "inst0"
                                and e.cause == instance_pb2.EVENT_CAUSE_REBOOT
                            )
                        if rebooted:
                            return

                reader = threading.Thread(target=consume, daemon=True)
                reader.start()
                assert ready.wait(15), "the watch never started"
                hole.freeze()
                frozen.set()
                _reboot(server)  # while the old connection is silent
                # A 1 s ping answered within 1 s: resumed in about 2 s (9 s allows for a
                # loaded machine, and is less than gRPC's own 10 s when the client's
                # default timeout stays in force).
                reader.join(9)
                watch.close()
                assert rebooted, "the watch did not resume after the server went silent"
                assert hole.connections >= 2  # it reconnected
    finally:
        server.kill()


NODE_WATCHER = Path(__file__).resolve().parent / "node" / "watch_through_silence.js"


def test_the_node_client_resumes_a_watch_whose_server_stopped_answering(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node.js 20+ is a setup requirement)")
    server = ServerProcess(tmp_path, extra_args=PINGS_WELCOME).start()
    try:
        with Blackhole(server.port) as hole:
            watcher = subprocess.Popen(
                [node, str(NODE_WATCHER)],
                env={**os.environ, "TARGET": hole.target},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                lines: queue.Queue[str] = queue.Queue()
                assert watcher.stdout is not None and watcher.stdin is not None
                threading.Thread(
                    target=lambda: [lines.put(line.strip()) for line in watcher.stdout],
                    daemon=True,
                ).start()
                assert lines.get(timeout=20) == "ready"
                _reboot(server)  # seen live: the snapshot is complete
                live = lines.get(timeout=20)
                assert live.startswith("live "), live
                hole.freeze()
                _reboot(server)  # while the old connection is silent
                watcher.stdin.write("frozen\n")
                watcher.stdin.flush()
                code = watcher.wait(timeout=20)
                assert code == 0, watcher.stderr.read() if watcher.stderr else ""
                rebooted = lines.get(timeout=5)
                assert rebooted.startswith("rebooted "), rebooted
                assert int(rebooted.split()[1]) > int(live.split()[1])
                assert hole.connections >= 2  # it reconnected
            finally:
                watcher.kill()
                watcher.wait()
    finally:
        server.kill()


def test_the_clients_keepalive_is_one_the_servers_defaults_accept() -> None:
    """The client's default pings are no more frequent than the server's default minimum
    (else every watching client would be sent GOAWAY), and come while calls are in flight."""
    client = dict(KEEPALIVE_OPTIONS)
    config = ServerConfig()
    assert client["grpc.keepalive_time_ms"] >= config.keepalive_min_client_interval * 1000
    assert client["grpc.http2.max_pings_without_data"] == 0
    assert "grpc.keepalive_permit_without_calls" not in client
    options = dict(Settings().channel_options())
    assert options["grpc.keepalive_time_ms"] == client["grpc.keepalive_time_ms"]


def test_a_callers_channel_option_replaces_the_default_of_that_name() -> None:
    """gRPC keeps the first of two channel arguments with one name, so the client must not
    send its default next to the caller's value."""
    options = Settings(
        options=(("grpc.keepalive_time_ms", 1000), ("grpc.max_reconnect_backoff_ms", 500))
    ).channel_options()
    names = [name for name, _ in options]
    assert len(names) == len(set(names))
    assert dict(options)["grpc.keepalive_time_ms"] == 1000
    assert dict(options)["grpc.max_reconnect_backoff_ms"] == 500
