"""Helpers the tests share: metadata for calls, and reading an error's ErrorInfo (the
conformance kit's, re-exported with the mock's users filled in)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from deltacloud.drivers.conformance.stubs import Api, Failure, basic, failure
from deltacloud.drivers.conformance.stubs import metadata as _metadata

MOCK_USER = ("mockuser", "mockpassword")
#: Extra mock users every test server accepts (tenant-isolation tests use them).
EXTRA_USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def metadata(
    user: str = MOCK_USER[0],
    password: str = MOCK_USER[1],
    *,
    driver: str | None = None,
    provider: str | None = None,
) -> list[tuple[str, str]]:
    """Call metadata: Basic credentials (mockuser's by default), driver and provider."""
    return _metadata(user, password, driver=driver, provider=provider)


MD = metadata()
#: What every error of a call on the default driver names (ErrorInfo metadata).
MOCK_SCOPE = {"driver": "mock", "provider": "default"}
ALICE = metadata("alice", EXTRA_USERS["alice"])
BOB = metadata("bob", EXTRA_USERS["bob"])


def upload_letters(
    api: Api, md: Sequence[tuple[str, str]], bucket: str, blob: str, letter: str, size: int
) -> Any:
    """Upload ``size`` times ``letter`` as ``blob``, user metadata ``letter`` saying which;
    the stored Blob."""
    from deltacloud.v1 import bucket_pb2 as pb

    header = pb.UploadBlobHeader(bucket_id=bucket, blob_id=blob, user_metadata={"letter": letter})

    def stream() -> Iterator[pb.UploadBlobRequest]:
        yield pb.UploadBlobRequest(header=header)
        yield pb.UploadBlobRequest(chunk=letter.encode() * size)

    return api.buckets.UploadBlob(stream(), metadata=md, timeout=30)


def downloads_while_replaced(
    api: Api, md: Sequence[tuple[str, str]], bucket: str, seconds: float
) -> tuple[int, list[tuple[int, str, int]]]:
    """Download the blob "flip" of ``bucket`` again and again for ``seconds`` while another
    thread replaces it with 1,000 a's and 70,000 b's in turn (user metadata ``letter``
    saying which). Returns the downloads made and those whose header (length, letter)
    describes another version than their content: (header length, letter, bytes)."""
    from deltacloud.v1 import bucket_pb2 as pb

    versions = {"a": 1000, "b": 70_000}

    def upload(letter: str) -> None:
        upload_letters(api, md, bucket, "flip", letter, versions[letter])

    upload("a")
    stop = threading.Event()

    def replace() -> None:
        while not stop.is_set():
            for letter in versions:
                upload(letter)

    writer = threading.Thread(target=replace)
    writer.start()
    mixed: list[tuple[int, str, int]] = []
    downloads = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            request = pb.DownloadBlobRequest(bucket_id=bucket, id="flip")
            messages = list(api.buckets.DownloadBlob(request, metadata=md, timeout=30))
            blob, content = messages[0].blob, b"".join(m.chunk for m in messages[1:])
            downloads += 1
            letter = blob.user_metadata["letter"]
            expected = letter.encode() * versions[letter]
            if (blob.content_length, content) != (versions[letter], expected):
                mixed.append((blob.content_length, letter, len(content)))
    finally:
        stop.set()
        writer.join()
    return downloads, mixed


def uploads_racing(
    api: Api, md: Sequence[tuple[str, str]], bucket: str, seconds: float
) -> tuple[int, list[tuple[str, int, str]]]:
    """Two threads upload the blob "race" of ``bucket`` again and again for ``seconds``,
    one 1,000 a's, the other 70,000 b's (user metadata ``letter`` saying which). Returns
    the uploads made and those whose answer describes another upload than their own:
    (own letter, answered length, answered letter)."""

    sizes = {"a": 1000, "b": 70_000}
    wrong: list[tuple[str, int, str]] = []
    counts = {"a": 0, "b": 0}
    deadline = time.monotonic() + seconds

    def uploads(letter: str) -> None:
        while time.monotonic() < deadline:
            blob = upload_letters(api, md, bucket, "race", letter, sizes[letter])
            counts[letter] += 1
            if (blob.content_length, blob.user_metadata.get("letter")) != (sizes[letter], letter):
                wrong.append((letter, blob.content_length, blob.user_metadata.get("letter", "")))

    threads = [threading.Thread(target=uploads, args=(letter,)) for letter in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts.values()), wrong


__all__ = [
    "ALICE",
    "BOB",
    "EXTRA_USERS",
    "MD",
    "MOCK_USER",
    "Failure",
    "basic",
    "downloads_while_replaced",
    "failure",
    "uploads_racing",
]
