"""The messages of a blob upload (a header, then chunks) from bytes, a file or an
iterable of chunks, with progress reporting; shared by both client flavours."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import BinaryIO, cast

from deltacloud.v1 import bucket_pb2

#: Under the server's default 4 MiB message limit with room to spare.
CHUNK_SIZE = 256 * 1024

Data = bytes | BinaryIO | Iterable[bytes]


def chunks(data: Data, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        view = bytes(data)
        for start in range(0, len(view), chunk_size):
            yield view[start : start + chunk_size]
    elif hasattr(data, "read"):
        while block := data.read(chunk_size):
            yield block
    else:
        for block in data:
            for start in range(0, len(block), chunk_size):
                yield block[start : start + chunk_size]


def known_length(data: Data) -> int | None:
    """The bytes ``data`` will yield, when that is known before reading it."""
    if isinstance(data, bytes | bytearray | memoryview):
        return memoryview(data).nbytes
    seekable = getattr(data, "seekable", None)
    if callable(seekable) and seekable():
        file = cast(BinaryIO, data)
        here = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(here)
        return max(0, end - here)
    return None


def upload_requests(
    *,
    bucket_id: str,
    blob_id: str,
    data: Data,
    content_type: str = "",
    user_metadata: Mapping[str, str] | None = None,
    content_length: int | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[bucket_pb2.UploadBlobRequest]:
    """The header, then the data in chunks; ``progress`` is told each chunk's size.
    The header announces the length when it is known (given, bytes, or the rest of a
    seekable file): the server then refuses an upload cut short, and stores it without
    waiting to see whether its end was a cancel."""
    if content_length is None:
        content_length = known_length(data)
    header = bucket_pb2.UploadBlobHeader(
        bucket_id=bucket_id,
        blob_id=blob_id,
        content_type=content_type,
        user_metadata=dict(user_metadata or {}),
    )
    if content_length is not None:
        header.content_length = content_length
    yield bucket_pb2.UploadBlobRequest(header=header)
    for block in chunks(data, chunk_size):
        yield bucket_pb2.UploadBlobRequest(chunk=block)
        if progress is not None:
            progress(len(block))


class Captured(Iterator[bucket_pb2.UploadBlobRequest]):
    """An upload's requests, keeping the exception their source raised (a file that failed
    to read, a progress callback that raised): gRPC turns it into a cancelled call, UNKNOWN
    "Exception iterating requests!" or, with asyncio, CancelledError, and the caller must
    hear the source's own error instead."""

    def __init__(self, requests: Iterator[bucket_pb2.UploadBlobRequest]) -> None:
        self._requests = requests
        self.error: Exception | None = None

    def __iter__(self) -> Captured:
        return self

    def __next__(self) -> bucket_pb2.UploadBlobRequest:
        try:
            return next(self._requests)
        except StopIteration:
            raise
        except Exception as error:
            self.error = error
            raise
