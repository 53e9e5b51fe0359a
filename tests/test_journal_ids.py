"""Journal ids: every WatchInstanceEvents message names the journal its revisions count in
(per scope, per data directory, kept across restarts); a resume naming another journal
(another server behind the same address, a journal started afresh) is OUT_OF_RANGE
JOURNAL_MISMATCH instead of a silent resume from an unrelated position."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import Api, ServerProcess
from watching import Watcher

from deltacloud.client import Client, JournalMismatch
from deltacloud.v1 import instance_pb2
from support import ALICE, MD, Failure, failure

Request = instance_pb2.WatchInstanceEventsRequest
Response = instance_pb2.WatchInstanceEventsResponse
FAST = ["--watch-progress-interval", "0.2", "--watch-fast-poll-interval", "0.05"]
ID = re.compile(r"^[0-9a-f]{16}$")


def server_on(tmp_path: Path, name: str, cloud: Path) -> ServerProcess:
    """A server with a data directory of its own, in front of the mock cloud ``cloud``."""
    return ServerProcess(
        tmp_path / name, extra_args=[*FAST, "--driver-option", f"mock.data_dir={cloud}"]
    )


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    cloud = tmp_path / "cloud"
    a, b = server_on(tmp_path, "a", cloud).start(), server_on(tmp_path, "b", cloud).start()
    try:
        yield a, b
    finally:
        a.kill()
        b.kill()


def reboot(server: ServerProcess, instance_id: str = "inst0") -> None:
    with server.channel() as channel:
        request = instance_pb2.RebootInstanceRequest(id=instance_id)
        Api(channel).instances.RebootInstance(request, metadata=MD)


def position(server: ServerProcess, md: object = MD) -> tuple[int, str]:
    """(revision, journal_id) of the scope on ``server``, from its first progress message;
    every message before it names the same journal."""
    with server.channel() as channel:
        watcher = Watcher(channel, md, Request(after_revision=0))  # type: ignore[arg-type]
        progress = watcher.wait_for_kind(Response.KIND_PROGRESS)
        watcher.cancel()
    assert {m.journal_id for m in watcher.messages} == {progress.journal_id}
    assert ID.match(progress.journal_id), progress
    return progress.revision, progress.journal_id


def resumed(
    server: ServerProcess, after: int, journal_id: str, count: int = 1
) -> tuple[list[instance_pb2.InstanceEvent], grpc.RpcError | None]:
    """The first ``count`` events of a watch resumed after (``after``, ``journal_id``), and
    the stream's error if it failed first."""
    with server.channel() as channel:
        watcher = Watcher(channel, MD, Request(after_revision=after, journal_id=journal_id))
        events = watcher.wait_for_events(count)
        watcher.cancel()
    assert all(m.journal_id == journal_id for m in watcher.messages)
    return events, watcher.error


def mismatch(server: ServerProcess, after: int, journal_id: str) -> Failure:
    events, error = resumed(server, after, journal_id)
    assert not events and error is not None
    found = failure(error)
    assert (found.code, found.reason) == (grpc.StatusCode.OUT_OF_RANGE, "JOURNAL_MISMATCH")
    return found


def test_every_message_names_the_journal_and_it_outlives_restarts(tmp_path: Path) -> None:
    server = server_on(tmp_path, "one", tmp_path / "cloud").start()
    try:
        with server.channel() as channel:
            watcher = Watcher(channel, MD, Request(initial_snapshot=True))
            watcher.wait_for_kind(Response.KIND_SNAPSHOT_COMPLETE)
            reboot(server)
            watcher.wait_until(
                lambda w: any(e.cause == instance_pb2.EVENT_CAUSE_REBOOT for e in w.events)
            )
            watcher.wait_for_kind(Response.KIND_PROGRESS)
            watcher.cancel()
        kinds = {m.kind for m in watcher.messages}
        assert {
            Response.KIND_EVENTS,
            Response.KIND_PROGRESS,
            Response.KIND_SNAPSHOT_COMPLETE,
        } <= kinds
        ids = {m.journal_id for m in watcher.messages}
        assert len(ids) == 1 and ID.match(next(iter(ids))), ids
        journal_id = next(iter(ids))
        last = watcher.messages[-1].revision
        assert position(server) == (last, journal_id)
        # Another scope has a journal of its own.
        assert position(server, ALICE)[1] != journal_id

        server.stop()
        server.restart()
        assert position(server) == (last, journal_id)
        reboot(server)
        server.kill()  # kill -9: the id is on disk since the scope's first use
        server.restart()
        events, _ = resumed(server, last, journal_id)
        assert [e.revision for e in events] == [last + 1]
    finally:
        server.kill()


def test_a_resume_on_another_server_is_refused_not_misread(
    two: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = two
    for _ in range(3):
        reboot(a)  # A's journal of the scope: 3 events; B's: none of them
    reboot(b)
    a_at, a_journal = position(a)
    b_at, b_journal = position(b)
    assert a_journal != b_journal and a_at >= 3

    f = mismatch(b, 0, a_journal)
    assert f.metadata["journal_id"] == b_journal
    assert f.metadata["requested_journal_id"] == a_journal
    assert int(f.metadata["current_revision"]) == b_at

    # With B's own journal id the same revision resumes.
    events, _ = resumed(b, 0, b_journal)
    assert [e.revision for e in events] == [1]


def test_a_journal_started_afresh_is_another_journal(tmp_path: Path) -> None:
    server = server_on(tmp_path, "one", tmp_path / "cloud").start()
    try:
        reboot(server)
        reboot(server)
        at, journal_id = position(server)
        server.stop()
        for name in ("events.sqlite3", "events.sqlite3-wal", "events.sqlite3-shm"):
            (server.data_dir / name).unlink(missing_ok=True)
        server.restart()
        for _ in range(3):
            reboot(server)  # the new journal passes the old position: 3 > 2
        assert mismatch(server, at, journal_id).metadata["journal_id"] != journal_id
    finally:
        server.kill()


def test_a_journal_written_before_journal_ids_gets_one_and_keeps_its_history(
    tmp_path: Path,
) -> None:
    server = server_on(tmp_path, "one", tmp_path / "cloud").start()
    try:
        reboot(server)
        reboot(server)
        server.stop()
        with sqlite3.connect(server.data_dir / "events.sqlite3") as db:
            db.execute("ALTER TABLE scopes DROP COLUMN journal_id")  # as an older server left it
        server.restart()
        at, journal_id = position(server)
        assert at == 2
        events, _ = resumed(server, 0, journal_id, count=2)
        assert [e.revision for e in events] == [1, 2]
        server.stop()
        server.restart()
        assert position(server) == (2, journal_id)
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("request_fields", "reason"),
    [
        ({"journal_id": "0123456789abcdef"}, "INVALID_WATCH_REQUEST"),
        ({"journal_id": "x" * 65, "after_revision": 0}, "INVALID_JOURNAL_ID"),
    ],
)
def test_bad_journal_ids(api: Api, request_fields: dict[str, object], reason: str) -> None:
    stream = api.instances.WatchInstanceEvents(Request(**request_fields), metadata=MD)
    with pytest.raises(grpc.RpcError) as raised:
        next(stream)
    f = failure(raised.value)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert "x" * 65 not in f.message


def test_the_python_client_relists_or_raises_when_the_server_behind_its_address_changes(
    tmp_path: Path,
) -> None:
    """A then B behind one address (B with its own journal, the same cloud): a watch with
    a snapshot takes a new one from B and goes on; a plain watch raises JournalMismatch."""
    cloud = tmp_path / "cloud"
    a = server_on(tmp_path, "a", cloud).start()
    b = server_on(tmp_path, "b", cloud)
    try:
        with Client(a.target, username="mockuser", password="mockpassword") as dc:
            listed = dc.watch(initial_snapshot=True, instance_ids=["inst0"])
            # Resumed from a position saved earlier (generators start at their first next).
            at, journal_id = position(a)
            plain = dc.watch(instance_ids=["inst0"], after_revision=at, journal_id=journal_id)
            first, second = iter(listed), iter(plain)
            assert next(first).cause == instance_pb2.EVENT_CAUSE_SNAPSHOT
            reboot(a)
            assert next(first).cause == instance_pb2.EVENT_CAUSE_REBOOT
            assert next(second).cause == instance_pb2.EVENT_CAUSE_REBOOT
            a_journal = listed.journal_id
            assert a_journal == plain.journal_id == journal_id

            a.stop()
            b.start(port=a.port)  # the address now leads to B
            snapshot_again = next(first)
            assert snapshot_again.cause == instance_pb2.EVENT_CAUSE_SNAPSHOT
            assert snapshot_again.instance_id == "inst0"
            reboot(b)
            assert next(first).cause == instance_pb2.EVENT_CAUSE_REBOOT
            assert listed.journal_id not in (None, a_journal)
            with pytest.raises(JournalMismatch):
                next(second)
            listed.close()
            plain.close()
    finally:
        a.kill()
        b.kill()
