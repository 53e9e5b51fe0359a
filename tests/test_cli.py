"""The ``deltacloud`` command line against a real server, run as users run it (the console
script): tables by default, --json for scripts, settings from DELTACLOUD_* variables, one
line on stderr and a non-zero status for errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ServerProcess

from support import MOCK_USER

DELTACLOUD = str(Path(sys.executable).parent / "deltacloud")


def run(server: ServerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DELTACLOUD_")}
    environment.update(
        DELTACLOUD_TARGET=server.target,
        DELTACLOUD_USERNAME=MOCK_USER[0],
        DELTACLOUD_PASSWORD=MOCK_USER[1],
    )
    environment.update(env)
    return subprocess.run(
        [DELTACLOUD, *args], capture_output=True, text=True, env=environment, timeout=60
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_lists_show_a_table_with_a_header(server: ServerProcess) -> None:
    lines = ok(run(server, "instances", "list", "--state", "running")).splitlines()
    assert lines[0].split()[:2] == ["ID", "NAME"]
    assert any(line.startswith("inst1 ") for line in lines)
    assert all("running" in line for line in lines[1:])


def test_json_output_is_for_scripts(server: ServerProcess) -> None:
    realms = json.loads(ok(run(server, "--json", "realms", "list")))
    assert [r["id"] for r in realms] == ["eu", "us"]
    image = json.loads(ok(run(server, "images", "show", "img1", "--json")))
    assert image["id"] == "img1"


def test_every_collection_has_its_operations() -> None:
    help_text = subprocess.run(
        [DELTACLOUD, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for collection in (
        "realms", "hardware-profiles", "images", "instances", "keys", "storage-volumes",
        "storage-snapshots", "buckets", "blobs", "addresses", "firewalls", "load-balancers",
        "drivers", "providers", "capabilities", "instance-states",
    ):  # fmt: skip
        assert collection in help_text


def test_instance_lifecycle_create_wait_stop_delete(server: ServerProcess) -> None:
    created = json.loads(
        ok(run(server, "--json", "instances", "create", "--image", "img1",
               "--profile", "m1-large", "--memory", "12288"))
    )  # fmt: skip
    instance = created["instances"][0]
    assert instance["hardware_profile_overrides"] == {"memory": 12288.0}
    instance_id = instance["id"]
    assert "running" in ok(run(server, "instances", "wait", instance_id, "running"))
    ok(run(server, "instances", "stop", instance_id))
    ok(run(server, "instances", "wait", instance_id, "stopped"))
    assert "finish" in ok(run(server, "instances", "delete", instance_id))


def test_watch_prints_events_as_json_lines(server: ServerProcess) -> None:
    watch = subprocess.Popen(
        [DELTACLOUD, "--target", server.target, "-u", MOCK_USER[0], "-p", MOCK_USER[1],
         "instances", "watch", "--json", "--count", "1", "--timeout", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.5)  # subscribed
        ok(run(server, "instances", "reboot", "inst2"))
        out, err = watch.communicate(timeout=30)
    finally:
        watch.kill()
    assert watch.returncode == 0, err
    event = json.loads(out.splitlines()[0])
    assert event["instance_id"] == "inst2" and event["cause"] == "EVENT_CAUSE_REBOOT"
    # How to resume after the last event printed, in this server's journal.
    resume = re.search(r"resume with: --after-revision (\d+) --journal-id ([0-9a-f]{16})$", err)
    assert resume, err
    assert int(resume.group(1)) == int(event["revision"])
    again = ["instances", "watch", "--after-revision", resume.group(1), "--timeout", "1"]
    ok(run(server, *again, "--journal-id", resume.group(2)))
    other = run(server, *again, "--journal-id", "0123456789abcdef")
    assert other.returncode != 0 and "JOURNAL_MISMATCH" in other.stderr, other.stderr


def test_instance_states_as_a_graphviz_graph(server: ServerProcess) -> None:
    dot = ok(run(server, "instance-states", "--format", "dot"))
    assert dot.startswith("digraph")
    assert '"pending" -> "running" [label="auto"];' in dot


def test_blobs_put_uploads_a_file_and_get_reads_it_back(
    server: ServerProcess, tmp_path: Path
) -> None:
    file = tmp_path / "hello.txt"
    file.write_bytes(b"hello, cloud\n" * 1000)
    result = run(server, "blobs", "put", "bucket1", str(file), "--progress")
    assert "hello.txt" in ok(result)
    assert "uploading hello.txt" in result.stderr  # the progress bar
    assert ok(run(server, "blobs", "get", "bucket1", "hello.txt")) == file.read_text()


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["instances", "show", "nope"], {}, "NOT_FOUND"),
        (["realms", "list"], {"DELTACLOUD_PASSWORD": "wrong"}, "UNAUTHENTICATED"),
        (["realms", "list"], {"DELTACLOUD_DRIVER": "no-such-driver"}, "deltacloud: error:"),
    ],
)
def test_errors_are_one_line_on_stderr_with_a_non_zero_status(
    server: ServerProcess, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = run(server, *args, **env)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deltacloud: error:")
    assert expected in lines[0]
