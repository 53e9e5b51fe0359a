"""The ``deltacloud`` command line against a real server, run as users run it (the console
script): tables by default, --json for scripts, settings from DELTACLOUD_* variables, one
line on stderr and a non-zero status for errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ServerProcess
from test_client import RepeatedPageToken

from support import MOCK_USER

DELTACLOUD = str(Path(sys.executable).parent / "deltacloud")


def cli_environment(server: ServerProcess, **env: str) -> dict[str, str]:
    """The environment of a ``deltacloud`` run against ``server`` as mockuser (the caller's
    DELTACLOUD_* variables left out), with ``env`` on top."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DELTACLOUD_")}
    environment.update(
        DELTACLOUD_TARGET=server.target,
        DELTACLOUD_USERNAME=MOCK_USER[0],
        DELTACLOUD_PASSWORD=MOCK_USER[1],
    )
    environment.update(env)
    return environment


def run(server: ServerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = cli_environment(server, **env)
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


def test_a_watch_from_a_revision_with_a_snapshot_resumes_after_its_last_event(
    server: ServerProcess,
) -> None:
    """--snapshot with --after-revision: no snapshot comes (the watch starts after the
    revision), so the events printed move the "resume with" position."""
    ok(run(server, "instances", "reboot", "inst1"))
    first = run(server, "instances", "watch", "--after-revision", "0", "--timeout", "1")
    journal = re.search(r"--journal-id ([0-9a-f]{16})$", first.stderr)
    assert first.returncode == 0 and journal, first.stderr
    result = run(
        server, "instances", "watch", "--json", "--after-revision", "0",
        "--journal-id", journal.group(1), "--snapshot", "--timeout", "1",
    )  # fmt: skip
    events = [json.loads(line) for line in ok(result).splitlines()]
    assert events and all(e["cause"] != "EVENT_CAUSE_SNAPSHOT" for e in events)
    resume = re.search(r"resume with: --after-revision (\d+) --journal-id (\w+)$", result.stderr)
    assert resume, result.stderr
    assert (int(resume.group(1)), resume.group(2)) == (
        int(events[-1]["revision"]),
        journal.group(1),
    )


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


def test_blobs_get_replaces_the_output_file_only_once_the_download_succeeded(
    server: ServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    out.write_bytes(b"precious data\n")
    out.chmod(0o640)
    failed = run(server, "blobs", "get", "no-such-bucket", "no-such-blob", "-o", str(out))
    assert failed.returncode == 1 and "NOT_FOUND" in failed.stderr, failed.stderr
    assert out.read_bytes() == b"precious data\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # nothing left behind

    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 5000)
    ok(run(server, "blobs", "put", "bucket1", str(source), "--name", "cli-get-o.bin"))
    try:
        ok(run(server, "blobs", "get", "bucket1", "cli-get-o.bin", "-o", str(out)))
        assert out.read_bytes() == source.read_bytes()
        assert out.stat().st_mode & 0o777 == 0o640  # the file's mode is kept
        new = tmp_path / "new.bin"
        ok(run(server, "blobs", "get", "bucket1", "cli-get-o.bin", "-o", str(new)))
        assert new.read_bytes() == source.read_bytes()
        umask = os.umask(0)
        os.umask(umask)
        assert new.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes a file
        assert sorted(p.name for p in tmp_path.iterdir()) == ["new.bin", "out.txt", "source.bin"]
    finally:
        ok(run(server, "blobs", "delete", "bucket1", "cli-get-o.bin"))


def test_a_reader_that_stops_early_ends_the_command_quietly(
    server: ServerProcess, tmp_path: Path
) -> None:
    """``deltacloud blobs get ... | head -c 10``: once the reader has gone the command
    stops, with no error on stderr and the status of a tool ended by SIGPIPE (141)."""
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024))  # far more than a pipe holds
    ok(run(server, "blobs", "put", "bucket1", str(source), "--name", "cli-pipe.bin"))
    try:
        environment = cli_environment(server)
        proc = subprocess.Popen(
            [DELTACLOUD, "blobs", "get", "bucket1", "cli-pipe.bin"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10) == source.read_bytes()[:10]
        proc.stdout.close()
        status = proc.wait(timeout=60)
        assert (status, proc.stderr.read().decode()) == (141, "")
    finally:
        ok(run(server, "blobs", "delete", "bucket1", "cli-pipe.bin"))


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["instances", "show", "nope"], {}, "NOT_FOUND"),
        (["realms", "list"], {"DELTACLOUD_PASSWORD": "wrong"}, "UNAUTHENTICATED"),
        (["realms", "list"], {"DELTACLOUD_DRIVER": "no-such-driver"}, "deltacloud: error:"),
        # gRPC core aborted the process (status 134) on a certificate without its key.
        (["--cert", __file__, "realms", "list"], {}, "needs its private key"),
        # A key without its certificate was ignored: plaintext, credentials and all.
        (["--key", __file__, "realms", "list"], {}, "needs its private key"),
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


def test_blob_metadata_is_updated_and_shown_as_a_record(
    server: ServerProcess, tmp_path: Path
) -> None:
    """A map answer (BlobMetadata) was taken for a table: a traceback, status 1, although
    the update was applied."""
    source = tmp_path / "cli-meta.bin"
    source.write_bytes(b"meta")
    ok(run(server, "blobs", "put", "bucket1", str(source)))
    try:
        shown = ok(run(server, "blobs", "update-metadata", "bucket1", "cli-meta.bin",
                       "--user-metadata", "c=d", "--user-metadata", "e=f"))  # fmt: skip
        assert shown.split() == ["user_metadata:", "c=d,e=f"]
        assert ok(run(server, "blobs", "show-metadata", "bucket1", "cli-meta.bin")).split() == [
            "user_metadata:",
            "c=d,e=f",
        ]
    finally:
        run(server, "blobs", "delete", "bucket1", "cli-meta.bin")


def test_blobs_put_reads_a_pipe_whose_length_is_not_known(
    server: ServerProcess, tmp_path: Path
) -> None:
    """A pipe's size reads 0: it was announced as the upload's length, and the server
    refused the 5,000 bytes that came (CONTENT_LENGTH_MISMATCH)."""
    data = os.urandom(5000)
    environment = cli_environment(server)
    put = subprocess.run(
        [DELTACLOUD, "blobs", "put", "bucket1", "/dev/stdin", "--name", "cli-piped.bin"],
        input=data,
        capture_output=True,
        env=environment,
        timeout=60,
    )
    try:
        assert put.returncode == 0, put.stderr
        target = tmp_path / "back.bin"
        ok(run(server, "blobs", "get", "bucket1", "cli-piped.bin", "-o", str(target)))
        assert target.read_bytes() == data
    finally:
        run(server, "blobs", "delete", "bucket1", "cli-piped.bin")


def test_nested_options_are_read_as_their_fields_types(server: ServerProcess) -> None:
    """--listeners in the format --help shows ended in a traceback (a port given as text);
    an unknown key too (KeyError). Now a load balancer, or a usage error naming the key."""
    made = json.loads(
        ok(run(server, "--json", "load-balancers", "create", "--name", "cli-lb",
               "--realm-ids", "us",
               "--listeners", "protocol=HTTP,load_balancer_port=80,instance_port=8080"))
    )  # fmt: skip
    try:
        assert made["listeners"] == [
            {"protocol": "HTTP", "load_balancer_port": 80, "instance_port": 8080}
        ]
        for listener, complaint in [
            ("foo=1", "'foo' is not one of protocol"),
            ("protocol=HTTP,load_balancer_port=eighty", "load_balancer_port='eighty' is not"),
        ]:
            result = run(server, "load-balancers", "create", "--name", "cli-lb2",
                         "--realm-ids", "us", "--listeners", listener)  # fmt: skip
            assert result.returncode == 2 and "Traceback" not in result.stderr
            assert complaint in result.stderr
    finally:
        run(server, "load-balancers", "delete", made["id"])


def test_blob_transfers_have_a_deadline_only_when_given(server: ServerProcess) -> None:
    """The global --timeout (30 s) is of unary calls; `blobs put` and `blobs get` took none
    at all. Now their own --timeout bounds the whole transfer: an upload from a pipe whose
    writer sends nothing ends at it with DEADLINE_EXCEEDED, and nothing is stored."""
    environment = cli_environment(server)
    started = time.monotonic()
    with subprocess.Popen(
        [DELTACLOUD, "blobs", "put", "bucket1", "/dev/stdin", "--name", "cli-stalled.bin",
         "--timeout", "1.5"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=environment, text=True,
    ) as put:  # fmt: skip
        assert put.stdin is not None
        put.stdin.write("a few bytes, then nothing")
        put.stdin.flush()  # and the pipe stays open: the upload waits for more
        try:
            put.wait(timeout=30)
        finally:
            put.stdin.close()
        stderr = put.stderr.read() if put.stderr else ""
    took = time.monotonic() - started
    assert put.returncode == 1, stderr
    assert "DEADLINE_EXCEEDED" in stderr or "deadline" in stderr.lower(), stderr
    assert 1.4 < took < 20, took
    shown = run(server, "blobs", "show", "bucket1", "cli-stalled.bin")
    assert shown.returncode == 1 and "NOT_FOUND" in shown.stderr, shown.stderr

    # A download too: a deadline no transfer can meet ends it as DEADLINE_EXCEEDED.
    got = run(server, "blobs", "get", "bucket1", "blob1", "--timeout", "0.000001")
    assert got.returncode == 1 and "DEADLINE_EXCEEDED" in got.stderr, got.stderr
    assert "--timeout" in ok(run(server, "blobs", "get", "--help"))


def test_a_list_whose_server_repeats_a_page_token_fails_instead_of_running_for_ever() -> None:
    """`deltacloud realms list` against a server answering the same next page token again
    listed for ever (until killed), the same realm each time."""
    backend = RepeatedPageToken()
    try:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DELTACLOUD_")}
        result = subprocess.run(
            [DELTACLOUD, "--target", backend.target, "realms", "list"],
            capture_output=True, text=True, env=environment, timeout=30,
        )  # fmt: skip
    finally:
        backend.server.stop(None)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("deltacloud: error: INTERNAL PAGE_TOKEN_REPEATED"), result
    assert backend.pages == 2


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--timeout", "0", "realms", "list"], "--timeout"),
        (["--timeout", "-1", "realms", "list"], "--timeout"),
        (["instances", "watch", "--timeout", "-1"], "--timeout"),
        (["instances", "watch", "--count", "0"], "--count"),
        (["instances", "wait", "inst1", "running", "--timeout", "0"], "--timeout"),
        (["blobs", "get", "bucket1", "blob1", "--timeout", "-2"], "--timeout"),
        (["instances", "list", "--page-size", "99999999999"], "--page-size"),
        (["instances", "create", "--image", "img1", "--instance-count", "-3000000000"],
         "--instance-count"),
        (["instances", "create", "--image", "img1", "--cpu", "4294967296"], "--cpu"),
    ],
)  # fmt: skip
def test_bad_option_values_are_refused_as_usage_errors_naming_the_option(
    server: ServerProcess, args: list[str], flag: str
) -> None:
    """A timeout of 0 or less was sent as a deadline already past (DEADLINE_EXCEEDED from
    the server, status 1; a watch ended at once with status 0), --count 0 printed one
    event anyway (after waiting for it), and a number too big for its field ended as
    `error: Value out of range`, naming no option: now each is a usage error (status 2)
    naming the option."""
    result = run(server, *args)
    assert result.returncode == 2, result
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert f"Invalid value for '{flag}" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args", [["instances", "watch"], ["instances", "wait", "inst1", "stopped", "--timeout", "60"]]
)
def test_ctrl_c_ends_the_command_with_status_130_and_no_traceback(
    server: ServerProcess, args: list[str]
) -> None:
    """Ctrl-C printed click's "Aborted!" with status 1, the status of a failed call: now
    128 + SIGINT, as a shell reports an interrupted command, with no traceback."""
    with subprocess.Popen(
        [DELTACLOUD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_environment(server),
        # The default action of SIGINT, as in a terminal (a test runner may ignore it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as proc:
        time.sleep(1.5)  # well into the call
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr, stderr


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["realms", "list"]])
def test_output_into_a_closed_pipe_ends_with_status_141_and_nothing_on_stderr(
    server: ServerProcess, args: list[str]
) -> None:
    """`deltacloud --help | head -0`: the top-level --help and --version, which click prints
    before any command runs, ended with status 1 (a failed call's) where every command's
    output ended with 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before anything is written
    try:
        result = subprocess.run(
            [DELTACLOUD, *args], stdout=write_end, stderr=subprocess.PIPE, text=True,
            env=cli_environment(server), timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (141, "")
