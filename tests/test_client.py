"""The Python client (deltacloud.client) against a real server: pagers, errors with their
ErrorInfo, the instance lifecycle with wait_for, a watch that survives a server restart,
retries of reads, blobs, and the asyncio flavour."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import ServerProcess

from deltacloud.client import (
    AsyncClient,
    AsyncWatch,
    Client,
    DeadlineExceeded,
    FailedPrecondition,
    InstanceGone,
    Internal,
    NotFound,
    RetryPolicy,
    RevisionAhead,
    RevisionCompacted,
    Unauthenticated,
    Unavailable,
    WaitTimeout,
)
from deltacloud.v1 import common_pb2, instance_pb2, realm_pb2
from support import MOCK_USER


def connect(server: ServerProcess, **kwargs: object) -> Client:
    return Client(server.target, username=MOCK_USER[0], password=MOCK_USER[1], **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with connect(server) as dc:
        yield dc


def test_list_methods_follow_page_tokens(client: Client) -> None:
    one_by_one = [image.id for image in client.list_images(page_size=1)]
    assert one_by_one == [image.id for image in client.list_images()]
    assert one_by_one == ["img1", "img2", "img3"]
    pages = list(client.list_images(page_size=2).pages())
    assert [len(p) for p in pages] == [2, 1]


def test_list_filters_take_enum_names(client: Client) -> None:
    running = list(client.list_instances(state="running"))
    assert running and all(i.state == common_pb2.INSTANCE_STATE_RUNNING for i in running)


def test_errors_are_exceptions_per_code_carrying_error_info(
    client: Client, server: ServerProcess
) -> None:
    with pytest.raises(NotFound) as raised:
        client.get_instance(id="no-such-instance")
    assert raised.value.reason == "RESOURCE_NOT_FOUND"
    assert raised.value.domain == "deltacloud"
    with (
        Client(server.target, username="mockuser", password="wrong") as bad,
        pytest.raises(Unauthenticated),
    ):
        bad.list_realms().pages().__next__()


def test_create_wait_for_running_stop_and_delete(client: Client) -> None:
    created = client.create_instance(image_id="img1", hardware_profile_id="m1-small", name="py")
    instance_id = created.instances[0].id
    running = client.wait_for(instance_id, "running", timeout=10)
    assert running.id == instance_id and running.state == common_pb2.INSTANCE_STATE_RUNNING
    # Already running: the snapshot answers at once.
    assert client.wait_for(instance_id, "running", timeout=5).id == instance_id
    with pytest.raises(FailedPrecondition) as raised:
        client.delete_instance(id=instance_id)  # the mock destroys stopped instances only
    assert raised.value.reason
    client.stop_instance(id=instance_id)
    client.wait_for(instance_id, common_pb2.INSTANCE_STATE_STOPPED, timeout=10)
    assert client.delete_instance(id=instance_id).state == common_pb2.INSTANCE_STATE_FINISH
    with pytest.raises(InstanceGone):
        client.wait_for(instance_id, "running", timeout=5)


def test_wait_for_times_out_with_a_specific_exception(client: Client) -> None:
    started = time.monotonic()
    with pytest.raises(WaitTimeout):
        client.wait_for("inst1", "stopped", timeout=0.5)
    assert time.monotonic() - started < 5


def test_watch_resumes_across_a_server_restart_without_gaps_or_duplicates(
    fresh_server: ServerProcess,
) -> None:
    received: list[instance_pb2.InstanceEvent] = []
    with connect(fresh_server) as dc:
        watch = dc.watch(progress_interval=0.2)

        def read() -> None:
            for event in watch:
                received.append(event)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(0.5)
        dc.reboot_instance(id="inst1")
        _wait(lambda: len(received) == 1)
        fresh_server.stop()  # graceful: the stream ends UNAVAILABLE SERVER_SHUTTING_DOWN
        # Changes while nobody can watch are in the journal, delivered after the resume.
        fresh_server.restart()
        list(dc.list_realms())  # a read: retried while the channel reconnects
        dc.reboot_instance(id="inst2")
        _wait(lambda: len(received) == 2, timeout=20)
        watch.close()
        reader.join(5)
    assert [e.instance_id for e in received] == ["inst1", "inst2"]
    assert [e.revision for e in received] == [1, 2]
    assert watch.state.resumes >= 1


def test_reads_are_retried_on_unavailable_but_not_forever(tmp_path: object) -> None:
    policy = RetryPolicy(attempts=3, initial_delay=0.05, max_delay=0.1)
    with Client("127.0.0.1:1", retry=policy, timeout=2) as dc:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            list(dc.list_realms())
        assert time.monotonic() - started < 10


def test_blob_upload_reports_progress_and_downloads_back(client: Client) -> None:
    data = b"x" * 700_000
    progress: list[int] = []
    blob = client.upload_blob(
        bucket_id="bucket1", blob_id="big.bin", data=data, progress=progress.append
    )
    assert blob.content_length == len(data)
    assert sum(progress) == len(data) and len(progress) > 1
    assert b"".join(client.download_blob(bucket_id="bucket1", id="big.bin")) == data
    client.delete_blob(bucket_id="bucket1", id="big.bin")


def test_async_client_lists_pages_waits_and_raises_the_same_errors(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.target, username=MOCK_USER[0], password=MOCK_USER[1]) as dc:
            ids = [image.id async for image in dc.list_images(page_size=1)]
            assert ids == ["img1", "img2", "img3"]
            with pytest.raises(NotFound):
                await dc.get_image(id="nope")
            created = await dc.create_instance(image_id="img1")
            instance_id = created.instances[0].id
            running = await dc.wait_for(instance_id, "running", timeout=10)
            assert running.state == common_pb2.INSTANCE_STATE_RUNNING
            events = []
            async for event in dc.watch(instance_ids=[instance_id], initial_snapshot=True):
                events.append(event)
                break
            assert events[0].cause == instance_pb2.EVENT_CAUSE_SNAPSHOT

    asyncio.run(scenario())


def _wait(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_watch_from_compacted_history_raises_revision_compacted(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, extra_args=["--journal-max-events", "2"]).start()
    try:
        with connect(server) as dc:
            for _ in range(4):
                dc.reboot_instance(id="inst0")
        assert server.stop() == 0
        server.restart()  # compaction at start keeps the last two events
        with connect(server) as dc:
            with pytest.raises(RevisionCompacted) as raised:
                next(iter(dc.watch(after_revision=0)))
            assert raised.value.reason == "REVISION_COMPACTED"
            assert raised.value.metadata["compacted_revision"] == "2"
            watch = dc.watch(after_revision=2)
            stream = iter(watch)
            revisions = [next(stream).revision, next(stream).revision]
            watch.close()
            assert revisions == [3, 4]
    finally:
        server.kill()


def test_a_watch_ahead_of_a_lost_journal_takes_a_snapshot_again(tmp_path: Path) -> None:
    """The server's journal was lost (or restored from an older backup): a client resuming
    from a revision it kept, without the journal id, is ahead of the journal. Without a
    snapshot asked for it raises RevisionAhead; with one it lists again and goes on."""
    server = ServerProcess(tmp_path).start()
    try:
        with connect(server) as dc:
            with pytest.raises(RevisionAhead) as raised:
                next(iter(dc.watch(after_revision=15)))
            assert raised.value.metadata["current_revision"] == "0"
            watch = dc.watch(after_revision=15, initial_snapshot=True)
            stream = iter(watch)
            first = next(stream)
            watch.close()
            assert first.cause == instance_pb2.EVENT_CAUSE_SNAPSHOT
            assert watch.state.relists == 1
    finally:
        server.kill()


def _serve_one(
    service: str, method: str, behaviour: Any, request_type: Any, response_type: Any
) -> tuple[grpc.Server, str]:
    """A gRPC server in this process, on loopback, answering one method of one service of
    the contract with ``behaviour``; started, with its target."""
    server = grpc.server(ThreadPoolExecutor(4))
    handler = grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(f"deltacloud.v1.{service}", {method: handler}),)
    )
    target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    return server, target


class FlakyCreates:
    """A gRPC server (in this process, on loopback) whose CreateInstance answers UNAVAILABLE
    to its first attempt, as when a connection drops after the server has created: what
    matters is which request ids the client sends."""

    def __init__(self) -> None:
        self.request_ids: list[str] = []
        self.server, self.target = _serve_one(
            "InstanceService",
            "CreateInstance",
            self._create,
            instance_pb2.CreateInstanceRequest,
            instance_pb2.CreateInstanceResponse,
        )

    def _create(
        self, request: instance_pb2.CreateInstanceRequest, context: grpc.ServicerContext
    ) -> instance_pb2.CreateInstanceResponse:
        self.request_ids.append(request.request_id)
        if len(self.request_ids) % 2 == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection lost")
        return instance_pb2.CreateInstanceResponse(instances=[instance_pb2.Instance(id="i-1")])


def test_a_create_is_retried_with_the_request_id_of_its_first_attempt() -> None:
    flaky = FlakyCreates()
    policy = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02)
    try:
        with Client(flaky.target, retry=policy, timeout=5) as dc:
            assert [i.id for i in dc.create_instance(image_id="img1").instances] == ["i-1"]
            chosen = str(uuid.uuid4())
            dc.create_instance(image_id="img1", request_id=chosen)

        async def scenario() -> None:
            async with AsyncClient(flaky.target, retry=policy, timeout=5) as adc:
                await adc.create_instance(image_id="img1")

        asyncio.run(scenario())
    finally:
        flaky.server.stop(None)
    ids = flaky.request_ids
    assert len(ids) == 6, ids  # every create answered at its second attempt
    assert ids[0] == ids[1] and uuid.UUID(ids[0]), "a new UUID, the same for the retry"
    assert ids[2] == ids[3] == chosen, "the caller's own id, as given"
    assert ids[4] == ids[5] and len({ids[0], ids[4]}) == 2, "each create its own id"


class RepeatedPageToken:
    """A gRPC server (in this process, on loopback) whose ListRealms answers every page with
    one realm and the same next page token (or, ``cycle``, tokens going round ``a``, ``b``),
    as a misbehaving server or proxy might; it counts the pages asked for."""

    def __init__(self, cycle: bool = False) -> None:
        self.pages = 0
        self.cycle = cycle
        self.server, self.target = _serve_one(
            "RealmService",
            "ListRealms",
            self._list,
            realm_pb2.ListRealmsRequest,
            realm_pb2.ListRealmsResponse,
        )

    def _list(
        self, request: realm_pb2.ListRealmsRequest, context: grpc.ServicerContext
    ) -> realm_pb2.ListRealmsResponse:
        self.pages += 1
        token = {"": "a", "a": "b", "b": "a"}[request.page_token] if self.cycle else "same"
        realm = realm_pb2.Realm(id=f"r{self.pages}")
        return realm_pb2.ListRealmsResponse(realms=[realm], next_page_token=token)


@pytest.mark.parametrize("cycle", [False, True])
def test_a_pager_stops_on_a_page_token_it_has_already_followed(cycle: bool) -> None:
    """A server answering the same next page token again (or going round a few) had the
    pager ask for the same page for ever, handing out its items again each time: now the
    pager raises Internal (reason PAGE_TOKEN_REPEATED) instead of following it, having
    handed out the items of the pages before that answer once each."""
    backend = RepeatedPageToken(cycle)
    pages = 3 if cycle else 2  # "" then "a", "b" (back to "a"); "" then "same" (again)

    async def asynchronously() -> list[str]:
        got: list[str] = []
        async with AsyncClient(backend.target, timeout=5) as adc:
            with pytest.raises(Internal) as raised:
                async for realm in adc.list_realms():
                    got.append(realm.id)
        assert raised.value.reason == "PAGE_TOKEN_REPEATED"
        return got

    try:
        got: list[str] = []
        with Client(backend.target, timeout=5) as dc, pytest.raises(Internal) as raised:
            for realm in dc.list_realms():
                got.append(realm.id)
                assert len(got) < 10, "the pager follows the same page for ever"
        assert raised.value.reason == "PAGE_TOKEN_REPEATED"
        assert raised.value.metadata["page_token"] == ("a" if cycle else "same")
        assert got == [f"r{n}" for n in range(1, pages)] and backend.pages == pages
        backend.pages = 0
        got = asyncio.run(asyncio.wait_for(asynchronously(), 10))
        assert got == [f"r{n}" for n in range(1, pages)] and backend.pages == pages
    finally:
        backend.server.stop(None)


def test_async_watch_close_ends_the_iteration_quietly(server: ServerProcess) -> None:
    """As Watch.close(): from another task, or from a callback while the task iterates, the
    `async for` ends without an exception; a cancel of the consuming task itself is still
    raised."""

    async def consume(watch: AsyncWatch) -> None:
        async for _ in watch:
            pass

    async def scenario() -> None:
        async with AsyncClient(server.target, username=MOCK_USER[0], password=MOCK_USER[1]) as dc:
            watch = dc.watch(progress_interval=0.1)
            task = asyncio.create_task(consume(watch))
            await asyncio.sleep(0.5)
            watch.close()
            await asyncio.wait_for(task, 5)

            watch = dc.watch()
            asyncio.get_running_loop().call_later(0.5, watch.close)
            await asyncio.wait_for(consume(watch), 5)

            watch = dc.watch()
            task = asyncio.create_task(consume(watch))
            await asyncio.sleep(0.5)
            task.cancel()
            watch.close()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(scenario())


class UnavailableRealms:
    """A gRPC server (in this process, on loopback) whose GetRealm answers UNAVAILABLE, at
    once or (``slow``) just before the call's deadline, as the server does for a backend
    that did not answer in time; it records the time each attempt had left."""

    def __init__(self) -> None:
        self.slow = False
        self.time_left: list[float] = []
        self.server, self.target = _serve_one(
            "RealmService", "GetRealm", self._get, realm_pb2.GetRealmRequest, realm_pb2.Realm
        )

    def _get(
        self, request: realm_pb2.GetRealmRequest, context: grpc.ServicerContext
    ) -> realm_pb2.Realm:
        left = context.time_remaining()
        assert left is not None
        self.time_left.append(left)
        if self.slow:
            time.sleep(max(left - 0.1, 0))
        context.abort(grpc.StatusCode.UNAVAILABLE, "backend did not answer in time")


def test_retries_of_a_read_keep_to_the_deadline_of_the_call() -> None:
    """``timeout`` is the deadline of the whole call, retries included: each attempt gets
    what is left of it, and no retry starts with less left than the wait before it (the
    last error is raised)."""
    backend = UnavailableRealms()
    quick = RetryPolicy(attempts=50, initial_delay=0.05, max_delay=0.1)

    def check(elapsed: float, slow: bool) -> None:
        assert elapsed < 1.5, f"{elapsed:.1f} s for a call of 1 s"
        if slow:  # 0.1 s left after the first attempt: too little for the wait of >= 0.1 s
            assert len(backend.time_left) == 1, backend.time_left
        else:  # retried while there was time, within the one deadline
            assert len(backend.time_left) > 2
            assert max(backend.time_left) < 1.1 and backend.time_left[-1] < 0.5, backend.time_left
        backend.time_left.clear()

    async def scenario() -> None:
        for slow, policy in ((True, RetryPolicy()), (False, quick)):
            backend.slow = slow
            async with AsyncClient(backend.target, retry=policy, timeout=1.0) as adc:
                started = time.monotonic()
                with pytest.raises((Unavailable, DeadlineExceeded)):
                    await adc.get_realm(id="us")
                check(time.monotonic() - started, slow)

    try:
        for slow, policy in ((True, RetryPolicy()), (False, quick)):
            backend.slow = slow
            with Client(backend.target, retry=policy, timeout=30) as dc:
                started = time.monotonic()
                with pytest.raises((Unavailable, DeadlineExceeded)):
                    dc.get_realm(id="us", timeout=1.0)
                check(time.monotonic() - started, slow)
        asyncio.run(scenario())
    finally:
        backend.server.stop(None)


def _closed_port() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # closed again: nothing listens


def test_watch_and_wait_timeouts_hold_while_the_server_is_unreachable() -> None:
    """gRPC answers UNAVAILABLE past the call's deadline when nothing listens: the watch
    resumed for ever (wait_for once hung over 90 s with timeout=3)."""
    target = _closed_port()
    with Client(target, username=MOCK_USER[0], password=MOCK_USER[1]) as dc:
        started = time.monotonic()
        with pytest.raises(WaitTimeout):
            dc.wait_for("inst0", "running", timeout=2)
        assert time.monotonic() - started < 5
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            list(dc.watch(timeout=2))
        assert time.monotonic() - started < 5

    async def asynchronously() -> float:
        async with AsyncClient(target, username=MOCK_USER[0], password=MOCK_USER[1]) as adc:
            started = time.monotonic()
            with pytest.raises(WaitTimeout):
                await adc.wait_for("inst0", "running", timeout=2)
            return time.monotonic() - started

    assert asyncio.run(asynchronously()) < 5


def test_a_watchs_position_is_that_of_the_last_event_handed_out(tmp_path: Path) -> None:
    """Events after a revision come in one message: the position moved to its end when the
    message arrived, and a caller that stopped after its first event, and saved the
    position, lost the others for good."""
    server = ServerProcess(tmp_path).start()
    try:
        with connect(server) as dc:
            for _ in range(4):
                dc.reboot_instance(id="inst0")
            watch = dc.watch(after_revision=0)
            first = next(iter(watch))
            assert (first.revision, watch.revision) == (1, 1)
            assert watch.journal_id
            rest = dc.watch(after_revision=watch.revision, journal_id=watch.journal_id)
            revisions = []
            for event in rest:
                revisions.append(event.revision)
                if len(revisions) == 3:
                    break
            assert revisions == [2, 3, 4]

            async def asynchronously() -> tuple[int, int | None]:
                async with AsyncClient(
                    server.target, username=MOCK_USER[0], password=MOCK_USER[1]
                ) as adc:
                    watch = adc.watch(after_revision=1)
                    async for event in watch:
                        return event.revision, watch.revision
                raise AssertionError("no event")

            assert asyncio.run(asynchronously()) == (2, 2)
    finally:
        server.kill()


def test_breaking_out_of_a_watch_ends_its_stream(tmp_path: Path) -> None:
    from scrape import eventually, metrics_address, parse, scrape, value

    server = ServerProcess(tmp_path, extra_args=["--metrics-listen", "127.0.0.1:0"]).start()
    try:
        address = metrics_address(server)
        with connect(server) as dc:
            kept = []
            for _ in range(3):
                watch = dc.watch(initial_snapshot=True)
                for _event in watch:
                    break
                kept.append(watch)  # kept, as a caller may: its stream must end all the same
            eventually(lambda: value(parse(scrape(address)), "deltacloud_watch_streams") == 0)
    finally:
        server.kill()


def test_an_upload_whose_source_fails_raises_the_sources_error(server: ServerProcess) -> None:
    """gRPC turns a raising request iterator into a cancelled call: the sync client raised
    Unknown ("Exception iterating requests!"), the asyncio one CancelledError, which
    callers take for a cancel of their own task; the source's error was lost."""

    def failing() -> Iterator[bytes]:
        yield b"first piece"
        raise OSError("the disk went away")

    with connect(server) as dc:
        with pytest.raises(OSError, match="the disk went away"):
            dc.upload_blob(bucket_id="bucket1", blob_id="cli-broken", data=failing())
        with pytest.raises(ValueError, match="progress failed"):
            dc.upload_blob(
                bucket_id="bucket1",
                blob_id="cli-broken",
                data=b"x" * 10,
                progress=lambda n: (_ for _ in ()).throw(ValueError("progress failed")),
            )
        with pytest.raises(NotFound):
            dc.get_blob(bucket_id="bucket1", id="cli-broken")

    async def asynchronously() -> None:
        async with AsyncClient(server.target, username=MOCK_USER[0], password=MOCK_USER[1]) as adc:
            with pytest.raises(OSError, match="the disk went away"):
                await adc.upload_blob(bucket_id="bucket1", blob_id="cli-broken", data=failing())

    asyncio.run(asynchronously())
