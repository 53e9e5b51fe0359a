"""The client surface: ``Client`` (blocking) and ``AsyncClient`` (asyncio). Every unary
RPC comes from the generated ``_methods``; here are the streams (watch, wait_for, blob
upload and download), written once as logic in watching.py and blobs.py and driven twice."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence

import grpc

from deltacloud.v1 import bucket_pb2, instance_pb2

from ._methods import AsyncMethods, SyncMethods
from .blobs import CHUNK_SIZE, Captured, Data, upload_requests
from .errors import DeadlineExceeded, DeltacloudError, Unavailable, from_rpc_error
from .rpc import Rpc, build
from .transport import StreamCall
from .watching import Event, Response, Waiter, WatchState

WATCH_INSTANCE_EVENTS = Rpc(
    "/deltacloud.v1.InstanceService/WatchInstanceEvents",
    instance_pb2.WatchInstanceEventsRequest,
    instance_pb2.WatchInstanceEventsResponse,
)
UPLOAD_BLOB = Rpc(
    "/deltacloud.v1.BucketService/UploadBlob", bucket_pb2.UploadBlobRequest, bucket_pb2.Blob
)
DOWNLOAD_BLOB = Rpc(
    "/deltacloud.v1.BucketService/DownloadBlob",
    bucket_pb2.DownloadBlobRequest,
    bucket_pb2.DownloadBlobResponse,
)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _watch_state(
    instance_ids: Sequence[str],
    states: Sequence[int | str],
    after_revision: int | None,
    journal_id: str | None,
    initial_snapshot: bool,
    progress_interval: float | datetime.timedelta | None,
    max_resumes: int | None,
) -> WatchState:
    interval = (
        progress_interval.total_seconds()
        if isinstance(progress_interval, datetime.timedelta)
        else progress_interval
    )
    return WatchState(
        instance_ids=list(instance_ids),
        states=list(states),
        revision=after_revision,
        journal_id=journal_id,
        initial_snapshot=initial_snapshot,
        progress_interval=interval,
        max_resumes=max_resumes,
    )


def _timed_out(deadline: float | None) -> DeadlineExceeded | None:
    """The error of a watch whose own deadline has passed (None while it has not). Checked
    before each resume: while the server is unreachable, gRPC answers UNAVAILABLE even past
    the call's deadline, and the watch resumed for ever."""
    if deadline is None or time.monotonic() < deadline:
        return None
    return DeadlineExceeded(
        "the watch's timeout passed", code=grpc.StatusCode.DEADLINE_EXCEEDED, reason=""
    )


def _pause(deadline: float | None, delay: float) -> float:
    """The wait before a resume, never past the watch's deadline."""
    left = _remaining(deadline)
    return delay if left is None else min(delay, left)


def _live(watch_state: WatchState, message: Response) -> bool:
    """Whether an event of ``message`` is a position to resume after: a live event's
    revision is; a snapshot's, before its end, is not."""
    return message.kind == Response.KIND_EVENTS and watch_state.snapshot_complete


class Watch:
    """A resumable subscription to instance events: iterate for the events; ``revision``
    and ``journal_id`` are where it stands (save both to resume in a later run with
    ``after_revision`` and ``journal_id``): after the last event (or message, from
    ``messages()``) it handed out, never past one it has not."""

    def __init__(self, client: Client, state: WatchState, timeout: float | None) -> None:
        self._client = client
        self.state = state
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._call: StreamCall[Response] | None = None
        self._closed = False
        self._given: tuple[int | None, str | None] = (state.revision, state.journal_id)

    @property
    def revision(self) -> int | None:
        return self._given[0]

    @property
    def journal_id(self) -> str | None:
        return self._given[1]

    def messages(self) -> Iterator[tuple[Response, list[Event]]]:
        """Each message with its new events, across resumes."""
        for message, events in self._messages():
            self._given = (self.state.revision, self.state.journal_id)
            yield message, events

    def _messages(self) -> Iterator[tuple[Response, list[Event]]]:
        try:
            while not self._closed:
                expired = _timed_out(self._deadline)
                if expired is not None:
                    raise expired
                request = self.state.request()
                self._call = self._client._stream(
                    WATCH_INSTANCE_EVENTS, request, _remaining(self._deadline)
                )
                try:
                    for message in self._call:
                        yield message, self.state.accept(message)
                    delay = self.state.next_delay(Unavailable("the server ended the stream"))
                except grpc.RpcError as error:
                    if self._closed:
                        return
                    code: grpc.StatusCode = error.code()
                    if code == grpc.StatusCode.DEADLINE_EXCEEDED and self._deadline is not None:
                        raise from_rpc_error(error) from error
                    delay = self.state.resume_after(error)
                time.sleep(_pause(self._deadline, delay))
        finally:
            # A caller that stops iterating (break, an exception) ends the stream too.
            if self._call is not None:
                self._call.cancel()

    def __iter__(self) -> Iterator[Event]:
        for message, events in self._messages():
            for event in events:
                if _live(self.state, message):
                    self._given = (event.revision, message.journal_id or self._given[1])
                yield event
            self._given = (self.state.revision, self.state.journal_id)

    def close(self) -> None:
        """End the subscription (from another thread too)."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()


class AsyncWatch:
    """The asyncio subscription: ``async for event in client.watch(): ...``; ``revision``
    and ``journal_id`` as ``Watch``'s."""

    def __init__(self, client: AsyncClient, state: WatchState, timeout: float | None) -> None:
        self._client = client
        self.state = state
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._call: (
            grpc.aio.UnaryStreamCall[instance_pb2.WatchInstanceEventsRequest, Response] | None
        ) = None
        self._closed = False
        self._given: tuple[int | None, str | None] = (state.revision, state.journal_id)

    @property
    def revision(self) -> int | None:
        return self._given[0]

    @property
    def journal_id(self) -> str | None:
        return self._given[1]

    async def messages(self) -> AsyncIterator[tuple[Response, list[Event]]]:
        async for message, events in self._messages():
            self._given = (self.state.revision, self.state.journal_id)
            yield message, events

    async def _messages(self) -> AsyncIterator[tuple[Response, list[Event]]]:
        try:
            while not self._closed:
                expired = _timed_out(self._deadline)
                if expired is not None:
                    raise expired
                request = self.state.request()
                self._call = self._client._stream(
                    WATCH_INSTANCE_EVENTS, request, _remaining(self._deadline)
                )
                try:
                    async for message in self._call:
                        yield message, self.state.accept(message)
                    delay = self.state.next_delay(Unavailable("the server ended the stream"))
                except asyncio.CancelledError:
                    # close() cancels the call, which grpc.aio reports as CancelledError:
                    # the iteration ends quietly, as Watch's does. A cancel of this task
                    # goes on.
                    task = asyncio.current_task()
                    if self._closed and (task is None or not task.cancelling()):
                        return
                    raise
                except grpc.RpcError as error:
                    if self._closed:
                        return
                    code: grpc.StatusCode = error.code()
                    if code == grpc.StatusCode.DEADLINE_EXCEEDED and self._deadline is not None:
                        raise from_rpc_error(error) from error
                    delay = self.state.resume_after(error)
                await asyncio.sleep(_pause(self._deadline, delay))
        finally:
            if self._call is not None:
                self._call.cancel()

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for message, events in self._messages():
            for event in events:
                if _live(self.state, message):
                    self._given = (event.revision, message.journal_id or self._given[1])
                yield event
            self._given = (self.state.revision, self.state.journal_id)

    def close(self) -> None:
        """End the subscription: the iteration ends quietly, as ``Watch.close()``'s (from a
        callback, or from another task of the same loop)."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()


class Client(SyncMethods):
    """The blocking client: ``Client("127.0.0.1:50051", username=..., password=...)``.
    One method per RPC (keyword arguments), pagers for lists, resumable ``watch``."""

    def watch(
        self,
        *,
        instance_ids: Sequence[str] = (),
        states: Sequence[int | str] = (),
        after_revision: int | None = None,
        journal_id: str | None = None,
        initial_snapshot: bool = False,
        progress_interval: float | datetime.timedelta | None = None,
        timeout: float | None = None,
        max_resumes: int | None = None,
    ) -> Watch:
        """Instance events of the caller's scope, resumed after a dropped stream from the
        last revision seen, without duplicates. Raises RevisionCompacted when
        ``after_revision`` is older than the journal, JournalMismatch (a RevisionCompacted)
        when it is another journal's (``journal_id``: the one it was read from; the server
        behind the address changed), RevisionAhead (a RevisionCompacted) when the journal
        never reached it (lost, restored from a backup, another server's, and no
        ``journal_id`` to tell); with ``initial_snapshot`` it takes a new snapshot
        instead of raising any of them (with ``after_revision`` too, it starts after that revision
        without a snapshot until it needs one). DeadlineExceeded after ``timeout``.
        ``max_resumes``: how many resumes in a row (no message between them) it makes before
        it raises the last error; None (the default) resumes for ever."""
        state = _watch_state(
            instance_ids,
            states,
            after_revision,
            journal_id,
            initial_snapshot,
            progress_interval,
            max_resumes,
        )
        return Watch(self, state, timeout)

    def wait_for(
        self, instance_id: str, state: int | str, timeout: float = 60.0
    ) -> instance_pb2.Instance:
        """Block until the instance is in ``state`` (a name such as ``"running"``), from a
        watch with a snapshot (no polling); the instance. WaitTimeout after ``timeout``,
        InstanceGone if it vanishes first."""
        waiter = Waiter(instance_id, state)
        watch = Watch(self, waiter.watch_state(), timeout)
        try:
            for message, fresh in watch.messages():
                instance = waiter.feed(message, fresh, watch.state)
                if instance is not None:
                    return instance
        except DeadlineExceeded:
            raise waiter.timed_out(timeout) from None
        finally:
            watch.close()
        raise waiter.timed_out(timeout)

    def upload_blob(
        self,
        *,
        bucket_id: str,
        blob_id: str,
        data: Data,
        content_type: str = "",
        user_metadata: Mapping[str, str] | None = None,
        content_length: int | None = None,
        progress: Callable[[int], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
        timeout: float | None = None,
    ) -> bucket_pb2.Blob:
        """BucketService.UploadBlob: stream ``data`` (bytes, a binary file or chunks) into a
        blob; ``progress`` is called with each chunk's size. Never retried."""
        requests = upload_requests(
            bucket_id=bucket_id,
            blob_id=blob_id,
            data=data,
            content_type=content_type,
            user_metadata=user_metadata,
            content_length=content_length,
            progress=progress,
            chunk_size=chunk_size,
        )
        source = Captured(requests)
        try:
            return self._client_stream(UPLOAD_BLOB, source, timeout)
        except DeltacloudError:
            if source.error is not None:
                raise source.error from None
            raise

    def download_blob(
        self, *, bucket_id: str, id: str, timeout: float | None = None
    ) -> Iterator[bytes]:
        """BucketService.DownloadBlob: the blob's content, chunk by chunk."""
        request = build(bucket_pb2.DownloadBlobRequest, bucket_id=bucket_id, id=id)
        try:
            for message in self._stream(DOWNLOAD_BLOB, request, timeout):
                if message.WhichOneof("data") == "chunk":
                    yield message.chunk
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error


class AsyncClient(AsyncMethods):
    """The asyncio client: the same methods as coroutines, async pagers, async watch.
    Create it inside the running event loop."""

    def watch(
        self,
        *,
        instance_ids: Sequence[str] = (),
        states: Sequence[int | str] = (),
        after_revision: int | None = None,
        journal_id: str | None = None,
        initial_snapshot: bool = False,
        progress_interval: float | datetime.timedelta | None = None,
        timeout: float | None = None,
        max_resumes: int | None = None,
    ) -> AsyncWatch:
        """As ``Client.watch``: ``async for event in client.watch(): ...``."""
        state = _watch_state(
            instance_ids,
            states,
            after_revision,
            journal_id,
            initial_snapshot,
            progress_interval,
            max_resumes,
        )
        return AsyncWatch(self, state, timeout)

    async def wait_for(
        self, instance_id: str, state: int | str, timeout: float = 60.0
    ) -> instance_pb2.Instance:
        """As ``Client.wait_for``."""
        waiter = Waiter(instance_id, state)
        watch = AsyncWatch(self, waiter.watch_state(), timeout)
        try:
            async for message, fresh in watch.messages():
                instance = waiter.feed(message, fresh, watch.state)
                if instance is not None:
                    return instance
        except DeadlineExceeded:
            raise waiter.timed_out(timeout) from None
        finally:
            watch.close()
        raise waiter.timed_out(timeout)

    async def upload_blob(
        self,
        *,
        bucket_id: str,
        blob_id: str,
        data: Data,
        content_type: str = "",
        user_metadata: Mapping[str, str] | None = None,
        content_length: int | None = None,
        progress: Callable[[int], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
        timeout: float | None = None,
    ) -> bucket_pb2.Blob:
        """As ``Client.upload_blob``."""
        requests = upload_requests(
            bucket_id=bucket_id,
            blob_id=blob_id,
            data=data,
            content_type=content_type,
            user_metadata=user_metadata,
            content_length=content_length,
            progress=progress,
            chunk_size=chunk_size,
        )
        source = Captured(requests)
        try:
            return await self._client_stream(UPLOAD_BLOB, source, timeout)
        except (DeltacloudError, asyncio.CancelledError):
            # grpc.aio cancels the call when the requests raise: not a cancel of this task.
            if source.error is not None:
                raise source.error from None
            raise

    async def download_blob(
        self, *, bucket_id: str, id: str, timeout: float | None = None
    ) -> AsyncIterator[bytes]:
        """As ``Client.download_blob``: ``async for chunk in client.download_blob(...)``."""
        request = build(bucket_pb2.DownloadBlobRequest, bucket_id=bucket_id, id=id)
        try:
            async for message in self._stream(DOWNLOAD_BLOB, request, timeout):
                if message.WhichOneof("data") == "chunk":
                    yield message.chunk
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error


__all__ = ["AsyncClient", "AsyncWatch", "Client", "DeltacloudError", "Watch"]
