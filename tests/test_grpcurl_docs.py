"""Every grpcurl command of docs/grpcurl.md runs, as documented and in order, against a
live server (127.0.0.1:50051 replaced by its address) and prints what the doc promises, so
the doc cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "grpcurl.md"
GRPCURL = Path(sys.executable).parent / "grpcurl"

#: What each documented command must print (stdout and stderr), by what the command calls.
#: A command the table does not know fails the test: document it here too.
EXPECTED = {
    '"no-such-instance"': ['"code": 5', "not found", "google.rpc.ErrorInfo"],
    " list": ["deltacloud.v1.InstanceService", "grpc.health.v1.Health"],
    "describe deltacloud.v1.InstanceService": ["rpc WatchInstanceEvents"],
    "describe deltacloud.v1.CreateInstanceRequest": ["message CreateInstanceRequest", "//"],
    "Health/Check": ['"status": "SERVING"'],
    "ListDrivers": ['"mock"'],
    "GetCapabilities": ["collections"],
    "ListRealms": ['"eu"', '"us"'],
    "ListHardwareProfiles": ["m1-large"],
    "ListImages": ['"img1"'],
    '"page_size": 2}\' 127.0.0.1:50051 deltacloud.v1.InstanceService/ListInstances': [
        "nextPageToken"
    ],
    "ListInstances": ['"INSTANCE_STATE_RUNNING"'],
    "ListBuckets": ['"bucket1"'],
    "ListBlobs": ['"blob1"'],
    "GetInstance\n": ['"inst1"'],
    "ListInstanceStates": ["INSTANCE_STATE_PENDING"],
    "CreateInstance": ['"inst4"', "INSTANCE_STATE_PENDING", "12288"],
    '"initial_snapshot": true': ["EVENT_CAUSE_SNAPSHOT", "KIND_SNAPSHOT_COMPLETE"],
    '"after_revision": 1': ["INSTANCE_STATE_STOPPING", "EVENT_CAUSE_DESTROY"],
    "StopInstance": ["INSTANCE_STATE_STOPPING"],
    "DeleteInstance": ["INSTANCE_STATE_FINISH"],
    "CreateKey": ["grpcurl-key"],
    "DeleteKey": ["{"],
    "CreateBucket": ["grpcurl-bucket"],
    "GetBlobMetadata": ["{"],
}


def documented_commands() -> list[str]:
    """Every line of a ```sh block that starts with grpcurl (continuations joined)."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.DOTALL):
        text = block.replace("\\\n", " ")
        commands += [line.strip() for line in text.splitlines() if line.startswith("grpcurl ")]
    return commands


def expectation(command: str) -> list[str]:
    for key, expected in EXPECTED.items():
        if key in command + "\n":
            return expected
    pytest.fail(f"no expectation for the documented command {command!r}: add one to EXPECTED")


def test_the_doc_documents_the_common_calls() -> None:
    commands = "\n".join(documented_commands())
    for call in ("list", "describe", "ListInstances", "CreateInstance", "StopInstance",
                 "DeleteInstance", "WatchInstanceEvents", "-max-time"):  # fmt: skip
        assert call in commands


def test_every_documented_grpcurl_command_works(fresh_server: ServerProcess) -> None:
    if not GRPCURL.exists():
        pytest.fail("grpcurl is not installed: run `make setup`")
    commands = documented_commands()
    assert len(commands) >= 15
    for command in commands:
        if "DeleteInstance" in command:
            time.sleep(1.0)  # the doc: "once it is STOPPED (the mock takes a second)"
        runnable = str(GRPCURL) + command[len("grpcurl") :].replace(
            "127.0.0.1:50051", fresh_server.target
        )
        result = subprocess.run(
            ["bash", "-c", runnable], capture_output=True, text=True, timeout=60
        )
        output = result.stdout + result.stderr
        if "-max-time" in command:
            assert "DeadlineExceeded" in result.stderr, f"{command}\n{output}"
        elif "no-such-instance" not in command:
            assert result.returncode == 0, f"{command}\n{output}"
        for expected in expectation(command):
            assert expected in output, f"{command}\nexpected {expected!r} in:\n{output}"
