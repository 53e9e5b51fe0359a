"""The client's transport-free logic, shared by the blocking and the asyncio client:
request building, paging, retry decisions, watch resume bookkeeping and error translation."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from deltacloud.client import (
    Client,
    InstanceGone,
    NotFound,
    ResourceExhausted,
    RevisionCompacted,
    Settings,
    Unavailable,
)
from deltacloud.client.errors import from_rpc_error
from deltacloud.client.paging import PageCursor
from deltacloud.client.retry import RetryPolicy
from deltacloud.client.rpc import build
from deltacloud.client.watching import Waiter, WatchState
from deltacloud.v1 import common_pb2, instance_pb2

ROOT = Path(__file__).resolve().parent.parent
Response = instance_pb2.WatchInstanceEventsResponse


class FakeError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, reason: str = "", **metadata: str) -> None:
        self._code = code
        info = error_details_pb2.ErrorInfo(reason=reason, domain="deltacloud", metadata=metadata)
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(code=code.value[0], message="boom", details=[detail])
        self._trailing = (("grpc-status-details-bin", status.SerializeToString()),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "boom"

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return self._trailing


def events(*pairs: tuple[int, str]) -> Response:
    return Response(
        kind=Response.KIND_EVENTS,
        revision=pairs[-1][0],
        events=[instance_pb2.InstanceEvent(revision=r, event_id=i) for r, i in pairs],
    )


def test_build_takes_enum_short_names_and_seconds_and_skips_none() -> None:
    request = build(
        instance_pb2.WatchInstanceEventsRequest,
        states=["running", "INSTANCE_STATE_STOPPED"],
        progress_interval=1.5,
        after_revision=None,
    )
    assert list(request.states) == [
        common_pb2.INSTANCE_STATE_RUNNING,
        common_pb2.INSTANCE_STATE_STOPPED,
    ]
    assert request.progress_interval.ToTimedelta().total_seconds() == 1.5
    assert not request.HasField("after_revision")
    with pytest.raises(ValueError, match="running"):
        build(instance_pb2.ListInstancesRequest, state="flying")


def test_page_cursor_follows_tokens_until_the_last_page() -> None:
    cursor = PageCursor(instance_pb2.ListInstancesRequest(page_size=2), "instances")
    first = cursor.next_request()
    assert first is not None and first.page_token == ""  # type: ignore[attr-defined]
    cursor.advance(instance_pb2.ListInstancesResponse(next_page_token="t2"))
    second = cursor.next_request()
    assert second is not None and second.page_token == "t2"  # type: ignore[attr-defined]
    assert second.page_size == 2  # type: ignore[attr-defined]
    cursor.advance(instance_pb2.ListInstancesResponse())
    assert cursor.next_request() is None


def test_retry_only_reads_on_unavailable_with_growing_delays() -> None:
    policy = RetryPolicy(attempts=4, initial_delay=0.1, max_delay=0.3)
    assert policy.should_retry(grpc.StatusCode.UNAVAILABLE, safe=True)
    assert not policy.should_retry(grpc.StatusCode.UNAVAILABLE, safe=False)
    assert not policy.should_retry(grpc.StatusCode.INTERNAL, safe=True)
    delays = list(policy.delays())
    assert len(delays) == 3
    assert all(0 < d <= 0.3 for d in delays)


def test_errors_become_exceptions_per_code_with_error_info() -> None:
    error = from_rpc_error(FakeError(grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND", id="x"))
    assert isinstance(error, NotFound)
    assert error.reason == "RESOURCE_NOT_FOUND"
    assert error.metadata == {"id": "x"}
    assert str(error) == "NOT_FOUND RESOURCE_NOT_FOUND: boom"


def test_watch_resumes_after_the_last_revision_and_drops_duplicates() -> None:
    state = WatchState()
    assert not state.request().HasField("after_revision")
    assert [e.event_id for e in state.accept(events((1, "a"), (2, "b")))] == ["a", "b"]
    state.accept(Response(kind=Response.KIND_PROGRESS, revision=5))
    assert state.request().after_revision == 5
    # A resume re-sends an event already seen: it is dropped.
    assert [e.event_id for e in state.accept(events((2, "b"), (6, "c")))] == ["c"]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (grpc.StatusCode.UNAVAILABLE, "SERVER_SHUTTING_DOWN"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "SUBSCRIBER_TOO_SLOW"),
        (grpc.StatusCode.CANCELLED, ""),
    ],
)
def test_watch_resumes_after_a_dropped_stream(code: grpc.StatusCode, reason: str) -> None:
    state = WatchState()
    assert state.resume_after(FakeError(code, reason)) >= 0


def test_a_message_over_the_channels_receive_limit_is_raised_not_resumed() -> None:
    """gRPC's own RESOURCE_EXHAUSTED (a message larger than the channel may receive: a
    server whose --max-message-bytes is over the client's limit) came again at each resume,
    for ever; only the server's SUBSCRIBER_TOO_SLOW is resumed."""

    class Plain(FakeError):
        def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
            return ()  # gRPC's status: no google.rpc.Status, no ErrorInfo

    state = WatchState()
    with pytest.raises(ResourceExhausted):
        state.resume_after(Plain(grpc.StatusCode.RESOURCE_EXHAUSTED))
    with pytest.raises(ResourceExhausted):
        state.resume_after(FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED"))


def test_watch_raises_revision_compacted_instead_of_resuming() -> None:
    state = WatchState(revision=3)
    error = FakeError(grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED", compacted_revision="10")
    with pytest.raises(RevisionCompacted) as raised:
        state.resume_after(error)
    assert raised.value.metadata["compacted_revision"] == "10"


def test_a_watch_with_a_snapshot_relists_when_its_history_is_gone_or_elsewhere() -> None:
    """REVISION_COMPACTED or JOURNAL_MISMATCH: a watch without a snapshot raises; one with
    a snapshot asks for a new one (no revision, no journal id) and takes its events as new
    even when their ids were seen before."""
    for reason in ("REVISION_COMPACTED", "JOURNAL_MISMATCH"):
        plain = WatchState()
        plain.accept(events((3, "e3")))
        with pytest.raises(RevisionCompacted):
            plain.resume_after(FakeError(grpc.StatusCode.OUT_OF_RANGE, reason))

        listed = WatchState(initial_snapshot=True)
        snapshot = Response(
            kind=Response.KIND_EVENTS,
            revision=3,
            events=[instance_pb2.InstanceEvent(revision=3, event_id="snapshot-j-3-inst0")],
        )
        assert listed.accept(snapshot)
        listed.accept(Response(kind=Response.KIND_SNAPSHOT_COMPLETE, revision=3, journal_id="j"))
        assert (listed.request().after_revision, listed.request().journal_id) == (3, "j")
        listed.resume_after(FakeError(grpc.StatusCode.OUT_OF_RANGE, reason))
        again = listed.request()
        assert again.initial_snapshot and not again.HasField("after_revision")
        assert not again.journal_id and listed.relists == 1
        assert listed.accept(snapshot), "the new snapshot's events are news"


def test_wait_for_after_a_relist_sees_an_instance_that_vanished_meanwhile() -> None:
    """The instance was in the first snapshot; the watch relisted (another server) and the
    new snapshot lacks it: gone, not waited for until the timeout."""
    waiter = Waiter("inst0", "running")
    watch = waiter.watch_state()
    pending = instance_pb2.InstanceEvent(
        revision=2,
        event_id="snapshot-a-2-inst0",
        instance_id="inst0",
        state=common_pb2.INSTANCE_STATE_PENDING,
    )
    first = Response(kind=Response.KIND_EVENTS, revision=2, events=[pending])
    assert waiter.feed(first, watch.accept(first), watch) is None
    complete = Response(kind=Response.KIND_SNAPSHOT_COMPLETE, revision=2, journal_id="a")
    assert waiter.feed(complete, watch.accept(complete), watch) is None
    watch.resume_after(FakeError(grpc.StatusCode.OUT_OF_RANGE, "JOURNAL_MISMATCH"))
    complete_b = Response(kind=Response.KIND_SNAPSHOT_COMPLETE, revision=7, journal_id="b")
    with pytest.raises(InstanceGone):
        waiter.feed(complete_b, watch.accept(complete_b), watch)


def test_watch_gives_up_after_max_resumes() -> None:
    state = WatchState(max_resumes=1)
    state.resume_after(FakeError(grpc.StatusCode.UNAVAILABLE))
    with pytest.raises(Unavailable):
        state.resume_after(FakeError(grpc.StatusCode.UNAVAILABLE))


def test_max_resumes_counts_drops_in_a_row_not_over_the_watchs_life() -> None:
    # A long watch through many drops, each followed by messages, gave up on its
    # max_resumes-th drop ever; the Node.js and TypeScript clients count in a row.
    state = WatchState(max_resumes=2)
    for revision in range(1, 6):
        state.resume_after(FakeError(grpc.StatusCode.UNAVAILABLE))
        state.accept(events((revision, f"e{revision}")))
    assert state.resumes == 5
    state.resume_after(FakeError(grpc.StatusCode.UNAVAILABLE))
    state.resume_after(FakeError(grpc.StatusCode.UNAVAILABLE))
    with pytest.raises(Unavailable):
        state.resume_after(FakeError(grpc.StatusCode.UNAVAILABLE))


def test_snapshot_is_asked_only_until_the_stream_has_a_position() -> None:
    state = WatchState(initial_snapshot=True)
    assert state.request().initial_snapshot
    state.accept(events((0, "snap-1")))
    assert state.request().initial_snapshot  # mid-snapshot: start over
    state.accept(Response(kind=Response.KIND_SNAPSHOT_COMPLETE, revision=7))
    request = state.request()
    assert not request.initial_snapshot and request.after_revision == 7


def test_a_watch_from_a_revision_with_a_snapshot_moves_with_its_events() -> None:
    """A watch that starts after a revision gets no snapshot (the server refuses both): its
    events move the position at once, not after a snapshot that never comes."""
    state = WatchState(revision=3, journal_id="j", initial_snapshot=True)
    request = state.request()
    assert not request.initial_snapshot
    assert (request.after_revision, request.journal_id) == (3, "j")
    assert [e.event_id for e in state.accept(events((4, "e4"), (5, "e5")))] == ["e4", "e5"]
    assert (state.revision, state.journal_id) == (5, "j")
    assert state.request().after_revision == 5
    # Its history gone, it takes a snapshot: no position until that is complete.
    state.resume_after(FakeError(grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED"))
    assert state.request().initial_snapshot and state.revision is None
    state.accept(events((9, "snapshot-k-9-inst0")))
    assert state.revision is None
    state.accept(Response(kind=Response.KIND_SNAPSHOT_COMPLETE, revision=9, journal_id="k"))
    assert (state.revision, state.journal_id) == (9, "k")


def test_settings_leave_the_secrets_out_of_their_repr() -> None:
    """Settings get logged: their repr shows no password and no TLS private key."""
    key = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"
    cert = b"-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n"
    settings = Settings(
        username="me", password="s3cr3t-password", private_key=key, certificate_chain=cert
    )
    from_env = Settings.from_env(
        password="s3cr3t-password", private_key=key, certificate_chain=cert
    )
    for text in (repr(settings), str(settings), f"{from_env}", repr(from_env)):
        assert "s3cr3t-password" not in text and "PRIVATE KEY" not in text, text
    assert "username='me'" in repr(settings)
    assert (settings.password, settings.private_key) == ("s3cr3t-password", key)  # still used
    assert dict(settings.metadata())["authorization"].startswith("Basic ")


def test_a_client_and_its_call_metadata_show_no_credentials() -> None:
    """What a debugger or a log line shows of a client (vars, repr of its metadata) has the
    driver but not the Basic credentials, which every call still carries."""
    basic = base64.b64encode(b"me:s3cr3t-password").decode()
    with Client("127.0.0.1:1", driver="mock", username="me", password="s3cr3t-password") as client:
        for text in (repr(vars(client)), str(vars(client)), f"{client._metadata}"):
            assert basic not in text and "s3cr3t-password" not in text, text
            assert "'authorization', '[redacted]'" in text and "'mock'" in text, text
        assert dict(client._metadata)["authorization"] == f"Basic {basic}"


def test_generated_client_methods_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "genclient.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_uploads_announce_their_length_when_it_is_known() -> None:
    """So that the server refuses an upload cut short (a cancel looks like the end of the
    stream to it) and need not wait to rule a cancel out."""
    import io

    from deltacloud.client.blobs import known_length, upload_requests

    assert known_length(b"12345") == 5
    assert known_length(memoryview(b"123")) == 3
    file = io.BytesIO(b"0123456789")
    file.read(4)
    assert known_length(file) == 6
    assert file.tell() == 4  # left where it was
    assert known_length(iter([b"a", b"b"])) is None

    def announced(data: object, **kw: object) -> int | None:
        first = next(upload_requests(bucket_id="b", blob_id="x", data=data, **kw))  # type: ignore[arg-type]
        return first.header.content_length if first.header.HasField("content_length") else None

    assert announced(b"abc") == 3
    assert announced(io.BytesIO(b"abcd")) == 4
    assert announced(iter([b"abc"])) is None
    assert announced(iter([b"abc"]), content_length=3) == 3
