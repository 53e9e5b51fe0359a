"""BucketService: buckets and their blobs, with streamed upload and download so the server's
memory does not grow with blob size."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping

import grpc
from google.protobuf import empty_pb2, timestamp_pb2

from deltacloud.drivers import check_create_options
from deltacloud.drivers import models as m
from deltacloud.v1 import bucket_pb2 as pb
from deltacloud.v1 import bucket_pb2_grpc as pb_grpc

from .. import convert
from ..errors import ApiError, invalid_argument
from ..gateway import Call
from ..rpc import Context, Servicer, check_text, require, unary
from ..wire import TooManyEntries

#: Bytes moved per hop between the event loop and a driver's thread, both ways: the chunk
#: size of DownloadBlob, and how much of an upload is handed to the driver at once. Each
#: stream holds at most this much in the server.
HOP_BYTES = 1024 * 1024
#: The longest content type a blob may have (a MIME type's type and subtype are at most
#: 127 characters each, RFC 6838), so a metadata update can count on it.
MAX_CONTENT_TYPE = 255
#: Bytes of user metadata (keys and values, UTF-8) a blob may carry: more than S3 (2 KB)
#: takes, as much as Azure and Google Cloud Storage take (8 KiB). A bound, too, on what
#: a request's metadata costs to parse, keep and describe on every read.
MAX_METADATA_BYTES = 8192
#: A DownloadBlobResponse's bytes besides its chunk's (the field's tag and length), with room.
CHUNK_OVERHEAD = 16


#: How long the end of an upload of unannounced length waits for a cancellation before the
#: blob is stored. gRPC shows a client's cancel as the end of the request stream, and
#: cancels the call itself only a moment later (measured: within a millisecond, usually in
#: the same turn of the loop); without this wait a cancelled upload could be stored cut
#: short. An upload that announces content_length needs no wait: fewer bytes than
#: announced are refused.
CANCEL_GRACE = 0.05
#: The same wait for an upload that announced its length and sent all of it: its client
#: may still cancel instead of ending the stream (it was stored). Short, as such an upload
#: is not cut short and the cancel came first; measured within a millisecond.
ANNOUNCED_CANCEL_GRACE = 0.005


def misplaced_header() -> ApiError:
    return invalid_argument(
        "INVALID_UPLOAD",
        "every UploadBlobRequest after the first must carry a chunk (one carried a header, "
        "or nothing)",
    )


def transfer_idle(idle: float, what: str) -> ApiError:
    """The end of a transfer whose client did nothing for ``idle`` seconds."""
    return ApiError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "TRANSFER_IDLE",
        f"the {what} stalled: its client {'sent' if what == 'upload' else 'took'} nothing "
        f"for {idle:g} s (--transfer-idle-timeout)",
        {"idle_seconds": f"{idle:g}"},
    )


class _Upload:
    """The request stream of one UploadBlob, and whether the call was cancelled."""

    def __init__(
        self, stream: AsyncIterator[pb.UploadBlobRequest], context: Context, idle: float
    ) -> None:
        self.stream = stream
        self.context = context
        #: Seconds the client may send nothing before the upload ends (TRANSFER_IDLE).
        self.idle = idle
        self._cancelled = asyncio.Event()

    def cancel(self) -> None:
        """The call was cancelled (on the loop): the driver reading it must store nothing."""
        self._cancelled.set()

    # The two coroutines below run on the loop for the driver's thread, which raises what
    # they report: a task of the loop ending in an exception is reported by asyncio as
    # unhandled when the server stops while it runs.

    async def gather(self, limit: int) -> tuple[bytes, bool, ApiError | None]:
        """Read upload messages until ``limit`` bytes or the end; returns (bytes, ended,
        the error that ends the upload: a message other than the first carried a header,
        or the client sent nothing for ``idle`` seconds)."""
        parts: list[bytes] = []
        size = 0
        while size < limit:
            try:
                message = await asyncio.wait_for(anext(self.stream), self.idle)
            except StopAsyncIteration:
                return b"".join(parts), True, None
            except TimeoutError:
                return b"", True, transfer_idle(self.idle, "upload")
            if not isinstance(message, pb.UploadBlobRequest) or (
                message.WhichOneof("data") != "chunk"
            ):
                return b"", True, misplaced_header()
            parts.append(message.chunk)
            size += len(message.chunk)
        return b"".join(parts), False, None

    async def ended_by_cancel(self, grace: float) -> bool:
        """Whether the end of the stream was the client's cancel."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._cancelled.wait(), grace)
        return self._cancelled.is_set() or self.context.cancelled() or self.context.done()

    def chunks(
        self, loop: asyncio.AbstractEventLoop, expected_length: int | None
    ) -> Iterator[bytes]:
        """A blocking iterator (for the driver's thread) pulling the upload from the async
        request stream about HOP_BYTES at a time: the client's pace is the driver's pace, and
        no more than that is buffered. It raises, and the driver stores nothing, when the
        client cancels or sends another length than it announced."""
        received = 0
        ended = False
        while not ended:
            future = asyncio.run_coroutine_threadsafe(self.gather(HOP_BYTES), loop)
            data, ended, problem = future.result()
            if problem is not None:
                raise problem
            received += len(data)
            if data:
                yield data
        if expected_length is not None and received != expected_length:
            raise invalid_argument(
                "CONTENT_LENGTH_MISMATCH",
                f"the header announced {expected_length} bytes but {received} arrived",
                expected=expected_length,
                received=received,
            )
        # A cancel ends the stream too, even after every announced byte arrived (a client
        # that gave up before closing its side): such an upload was stored.
        grace = CANCEL_GRACE if expected_length is None else ANNOUNCED_CANCEL_GRACE
        if asyncio.run_coroutine_threadsafe(self.ended_by_cancel(grace), loop).result():
            raise ApiError(
                grpc.StatusCode.CANCELLED,
                "UPLOAD_CANCELLED",
                "the client cancelled the upload: nothing is stored",
            )


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


#: DownloadBlobResponse.chunk: field 2, length-delimited.
_CHUNK_TAG = b"\x12"


def chunk_message(data: bytes | memoryview) -> bytes:
    """The encoded ``DownloadBlobResponse(chunk=data)``, made with one copy of ``data``
    (building the message and serializing it would copy it twice); the stream's serializer
    passes bytes through."""
    return b"".join((_CHUNK_TAG, _varint(len(data)), data))


def _take(chunks: Iterator[bytes], limit: int) -> tuple[bytes, bool]:
    """In a driver's thread: the next ``limit`` bytes of a download (fewer at the end),
    and whether it ended."""
    parts: list[bytes] = []
    size = 0
    for piece in chunks:
        parts.append(piece)
        size += len(piece)
        if size >= limit:
            return b"".join(parts), False
    return b"".join(parts), True


class BucketServicer(Servicer, pb_grpc.BucketServiceServicer):
    def _turn(self, call: Call, kind: str) -> contextlib.AbstractAsyncContextManager[None]:
        """This call's turn among its scope's transfers of ``kind``: at most
        --transfers-per-scope at once, so one user's stalled uploads cannot take every
        upload worker, nor downloads never read hold memory without bound."""
        return call.turn(kind, self.gateway.config.transfers_per_scope)

    @unary
    async def ListBuckets(
        self, request: pb.ListBucketsRequest, context: Context
    ) -> pb.ListBucketsResponse:
        call = await self.gateway.open(context, "buckets")
        filters: dict[str, object] = {"id": request.id}
        page = await self.listed(
            call, "buckets", call.driver.list_buckets, request, filters, convert.bucket
        )
        return pb.ListBucketsResponse(buckets=page.items, next_page_token=page.next_page_token)

    @unary
    async def GetBucket(self, request: pb.GetBucketRequest, context: Context) -> pb.Bucket:
        require(request, "id")
        call = await self.gateway.open(context, "buckets")
        return convert.bucket(await call.run(call.driver.get_bucket, request.id))

    @unary
    async def CreateBucket(self, request: pb.CreateBucketRequest, context: Context) -> pb.Bucket:
        require(request, "name")
        check_text(request, names=["name"])
        call = await self.gateway.open(context, "buckets", "create")
        if request.location:
            check_create_options(call.driver_class, "buckets", {"location": request.location})
        opts = m.CreateBucket(name=request.name, location=request.location)
        return convert.bucket(await call.run(call.driver.create_bucket, opts))

    @unary
    async def DeleteBucket(
        self, request: pb.DeleteBucketRequest, context: Context
    ) -> empty_pb2.Empty:
        require(request, "id")
        call = await self.gateway.open(context, "buckets", "destroy")
        await call.run(call.driver.delete_bucket, request.id)
        return empty_pb2.Empty()

    @unary
    async def ListBlobs(
        self, request: pb.ListBlobsRequest, context: Context
    ) -> pb.ListBlobsResponse:
        require(request, "bucket_id")
        call = await self.gateway.open(context, "buckets", "list_blobs")
        if "blobs" in call.driver_class.pages_natively:  # a page of a huge bucket: one request
            page = await self._native_page(
                call,
                "blobs",
                request,
                {"bucket_id": request.bucket_id, "prefix": request.prefix},
                convert.blob,
                filter_attrs=(),
                keep=lambda blob: blob.id.startswith(request.prefix),
            )
            return pb.ListBlobsResponse(blobs=page.items, next_page_token=page.next_page_token)
        filters: dict[str, object] = {"prefix": request.prefix}
        items = await call.run(call.driver.list_blobs, request.bucket_id, filters)
        if request.prefix:
            items = [b for b in items if b.id.startswith(request.prefix)]
        page = self.page(
            call,
            "buckets",
            items,
            request,
            {"bucket_id": request.bucket_id, "prefix": request.prefix},
            convert.blob,
            filter_attrs=(),
            noun="blobs",  # paged as "buckets" since the first release: tokens stay good
        )
        return pb.ListBlobsResponse(blobs=page.items, next_page_token=page.next_page_token)

    @unary
    async def GetBlob(self, request: pb.GetBlobRequest, context: Context) -> pb.Blob:
        require(request, "bucket_id", "id", ids=False)
        call = await self.gateway.open(context, "buckets", "get_blob")
        return convert.blob(await call.run(call.driver.get_blob, request.bucket_id, request.id))

    @unary
    async def UploadBlob(
        self, request_iterator: AsyncIterator[pb.UploadBlobRequest], context: Context
    ) -> pb.Blob:
        try:
            first = await anext(request_iterator)
        except StopAsyncIteration:
            raise invalid_argument("INVALID_UPLOAD", "the upload stream was empty") from None
        if isinstance(first, TooManyEntries):
            raise first.error
        if first.WhichOneof("data") != "header":
            raise invalid_argument(
                "INVALID_UPLOAD", "the first UploadBlobRequest must carry the header"
            )
        header = first.header
        require(header, "bucket_id", "blob_id", ids=False)
        check_metadata(header.user_metadata)
        if len(header.content_type) > MAX_CONTENT_TYPE:
            raise invalid_argument(
                "INVALID_CONTENT_TYPE",
                f"content_type is {len(header.content_type)} characters long; at most "
                f"{MAX_CONTENT_TYPE} are allowed",
                field="content_type",
            )
        self._check_described(
            header.bucket_id, header.blob_id, header.user_metadata, header.content_type
        )
        if header.HasField("content_length") and header.content_length < 0:
            raise invalid_argument(
                "INVALID_UPLOAD", "content_length must not be negative", field="content_length"
            )
        call = await self.gateway.open(context, "buckets", "put_blob")
        expected = header.content_length if header.HasField("content_length") else None
        upload = _Upload(request_iterator, context, self.gateway.config.transfer_idle_timeout)
        opts = m.PutBlob(
            bucket_id=header.bucket_id,
            blob_id=header.blob_id,
            chunks=upload.chunks(asyncio.get_running_loop(), expected),
            content_type=header.content_type,
            user_metadata=dict(header.user_metadata),
            content_length=expected,
        )
        try:
            async with self._turn(call, "upload"):
                stored = await call.run(call.driver.put_blob, opts, pool="uploads")
        except asyncio.CancelledError:
            upload.cancel()  # the driver, still reading, must not store it
            raise
        return convert.blob(stored)

    def _check_described(
        self, bucket_id: str, blob_id: str, metadata: Mapping[str, str], content_type: str = ""
    ) -> None:
        """Refuse metadata whose blob could not be described in one message: the upload
        (or update) was stored, its answer failed, and GetBlob and DownloadBlob failed for
        good. The description's other fields are taken at their largest."""
        largest = pb.Blob(
            id=blob_id,
            bucket_id=bucket_id,
            content_length=2**63 - 1,
            content_type=max(content_type, "x" * MAX_CONTENT_TYPE, key=len),
            last_modified=timestamp_pb2.Timestamp(seconds=2**40, nanos=999_999_999),
            user_metadata=metadata,
        )
        limit = self.gateway.config.max_message_bytes - CHUNK_OVERHEAD
        size = largest.ByteSize()
        if size > limit:
            raise invalid_argument(
                "METADATA_TOO_LARGE",
                f"the blob's description would take {size} bytes with this metadata, more "
                f"than a message holds ({limit} bytes, --max-message-bytes)",
                field="user_metadata",
                limit=limit,
            )

    @unary
    async def DownloadBlob(self, request: pb.DownloadBlobRequest, context: Context) -> None:
        # Written with context.write rather than yielded: a write to a stream whose client
        # has gone fails in our code (see rpc.unary) rather than being logged by gRPC as an
        # error of the server.
        require(request, "bucket_id", "id", ids=False)
        call = await self.gateway.open(context, "buckets", "download_blob")
        await call.echo_first(context)
        async with self._turn(call, "download"):
            await self._download(call, request, context)

    async def _download(
        self, call: Call, request: pb.DownloadBlobRequest, context: Context
    ) -> None:
        # One call: the header describes the version whose bytes follow.
        blob, chunks = await call.run(call.driver.open_blob, request.bucket_id, request.id)
        idle = self.gateway.config.transfer_idle_timeout

        async def write(message: pb.DownloadBlobResponse | bytes) -> None:
            # A client that takes nothing for `idle` seconds gives back its turn.
            try:
                await asyncio.wait_for(context.write(message), idle)
            except TimeoutError:
                raise transfer_idle(idle, "download") from None

        await write(pb.DownloadBlobResponse(blob=convert.blob(blob)))
        # Messages within the server's largest (--max-message-bytes may be set under the
        # 1 MiB of a hop: a blob it let in must come out too).
        limit = self.gateway.config.max_message_bytes
        largest = max(1, min(2 * HOP_BYTES, limit - CHUNK_OVERHEAD))
        piece = min(HOP_BYTES, largest)
        ended = False
        while not ended:
            data, ended = await self.gateway.run_blocking(
                _take, chunks, HOP_BYTES, pool="downloads"
            )
            if len(data) <= largest:  # the usual case: one message
                if data:
                    message = chunk_message(data)
                    del data  # while the client takes its time, one copy is enough
                    await write(message)
                continue
            view = memoryview(data)  # a driver yielded a huge piece: keep messages small
            for start in range(0, len(data), piece):
                await write(chunk_message(view[start : start + piece]))

    @unary
    async def DeleteBlob(self, request: pb.DeleteBlobRequest, context: Context) -> empty_pb2.Empty:
        require(request, "bucket_id", "id", ids=False)
        call = await self.gateway.open(context, "buckets", "delete_blob")
        await call.run(call.driver.delete_blob, request.bucket_id, request.id)
        return empty_pb2.Empty()

    @unary
    async def GetBlobMetadata(
        self, request: pb.GetBlobMetadataRequest, context: Context
    ) -> pb.BlobMetadata:
        require(request, "bucket_id", "id", ids=False)
        call = await self.gateway.open(context, "buckets", "get_blob")
        blob = await call.run(call.driver.get_blob, request.bucket_id, request.id)
        return pb.BlobMetadata(user_metadata=blob.user_metadata)

    @unary
    async def UpdateBlobMetadata(
        self, request: pb.UpdateBlobMetadataRequest, context: Context
    ) -> pb.BlobMetadata:
        if isinstance(request, TooManyEntries):
            raise request.error
        require(request, "bucket_id", "id", ids=False)
        check_metadata(request.user_metadata)
        self._check_described(request.bucket_id, request.id, request.user_metadata)
        call = await self.gateway.open(context, "buckets", "update_blob_metadata")
        stored = await call.run(
            call.driver.update_blob_metadata,
            request.bucket_id,
            request.id,
            dict(request.user_metadata),
        )
        return pb.BlobMetadata(user_metadata=stored)


def metadata_too_large(size: int, unit: str = "bytes") -> ApiError:
    """METADATA_TOO_LARGE: ``size`` bytes of keys and values (or, counted from a request's
    bytes, more entries than MAX_METADATA_BYTES can hold: each key takes one at least)."""
    return invalid_argument(
        "METADATA_TOO_LARGE",
        f"user_metadata holds {size} {unit}; at most {MAX_METADATA_BYTES} bytes of keys "
        "and values (UTF-8) are allowed",
        field="user_metadata",
        limit=MAX_METADATA_BYTES,
    )


def too_many_entries(count: int) -> ApiError:
    """The refusal of a request whose metadata has over MAX_METADATA_BYTES entries."""
    return metadata_too_large(count, "entries or more")


def check_metadata(metadata: Mapping[str, str]) -> None:
    """At most MAX_METADATA_BYTES of keys and values; and a metadata key is a header name
    to most clouds (S3's x-amz-meta-*): an empty one, or one with a control character, is
    refused for every driver, at upload as at update, so a blob never holds metadata that
    could not be written back."""
    size = sum(len(key.encode()) + len(value.encode()) for key, value in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise metadata_too_large(size)
    for key in metadata:
        if not key or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
            shown = key if len(key) <= 64 else key[:61] + "..."
            raise invalid_argument(
                "INVALID_METADATA_KEY",
                f"metadata key {shown!r} is empty or holds a control character",
                field="user_metadata",
            )
