"""Blob transfers stream: the server's memory does not grow with a blob's size.

Each test starts a server of its own, moves a warm-up blob up and down (so that buffers,
thread stacks and S3 parts in flight are already counted), reads the server's peak
resident size (VmHWM), then streams a blob several times larger up and down and checks
that the peak grew by far less than the blob: a server holding a blob whole would grow by
at least its size. Bytes are checked end to end by SHA-256.
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import Api, PlainServer, ServerProcess
from ec2_support import ACCESS_KEY, SECRET_KEY, MotoServer, server_flags

from deltacloud.v1 import bucket_pb2
from support import metadata

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the server's VmHWM from /proc"
)

MIB = 1024 * 1024
WARM_UP_MIB = 64
BIG_MIB = 320
#: Growth of the peak allowed while the big blob moves: a fifth of it.
ALLOWED_GROWTH_MIB = BIG_MIB // 5


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def pieces(seed: int, mib: int, digest: hashlib._Hash) -> Iterator[bytes]:
    """``mib`` MiB of pseudo-random bytes, made as they are sent (the test holds none of
    it), in pieces of 1 MiB plus a few bytes, so that they never line up with S3 parts."""
    rng = random.Random(seed)
    left = mib * MIB
    while left:
        piece = rng.randbytes(min(left, MIB + 4099))
        digest.update(piece)
        left -= len(piece)
        yield piece


def round_trip(api: Api, md: list[tuple[str, str]], bucket: str, mib: int, seed: int) -> None:
    sent = hashlib.sha256()

    def requests() -> Iterator[bucket_pb2.UploadBlobRequest]:
        header = bucket_pb2.UploadBlobHeader(bucket_id=bucket, blob_id=f"blob-{mib}")
        yield bucket_pb2.UploadBlobRequest(header=header)
        for piece in pieces(seed, mib, sent):
            yield bucket_pb2.UploadBlobRequest(chunk=piece)

    try:
        blob = api.buckets.UploadBlob(requests(), metadata=md, timeout=300)
    except grpc.RpcError as error:
        # moto's own bug, not ours (its log shows it): now and then, on a loaded machine,
        # CompleteMultipartUpload fails with "ValueError: seek of closed file" in
        # moto/s3/models.py (a part's buffer closed by another key's garbage collection),
        # and the server rightly answers UNAVAILABLE. Once more, then it fails the test.
        if error.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
            raise
        sent = hashlib.sha256()
        blob = api.buckets.UploadBlob(requests(), metadata=md, timeout=300)
    assert blob.content_length == mib * MIB
    got = hashlib.sha256()
    size = 0
    for message in api.buckets.DownloadBlob(
        bucket_pb2.DownloadBlobRequest(bucket_id=bucket, id=f"blob-{mib}"),
        metadata=md,
        timeout=300,
    ):
        got.update(message.chunk)
        size += len(message.chunk)
    assert (size, got.hexdigest()) == (mib * MIB, sent.hexdigest())


def check_memory_stays_flat(
    server: ServerProcess, md: list[tuple[str, str]], big_mib: int = BIG_MIB
) -> None:
    assert server.process is not None
    channel = grpc.insecure_channel(server.target)
    try:
        api = Api(channel)
        api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name="memory"), metadata=md)
        round_trip(api, md, "memory", WARM_UP_MIB, seed=1)
        before = peak_rss_mib(server.process.pid)
        round_trip(api, md, "memory", big_mib, seed=2)
        after = peak_rss_mib(server.process.pid)
    finally:
        channel.close()
    assert after - before < ALLOWED_GROWTH_MIB, (
        f"the server's peak RSS grew from {before:.0f} to {after:.0f} MiB while a "
        f"{big_mib} MiB blob went up and down"
    )


def test_mock_server_memory_does_not_grow_with_blob_size(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    try:
        check_memory_stays_flat(server, metadata())
    finally:
        server.kill()


def test_ec2_server_memory_does_not_grow_with_blob_size(tmp_path: Path) -> None:
    """Multipart uploads to S3 (8 MiB parts, four in flight) and streamed GETs, on moto:
    a moto of its own, holding nothing else (in the suite's shared one, moto now and then
    closed a part's buffer before CompleteMultipartUpload; see round_trip)."""
    moto = MotoServer().start()
    try:
        server = PlainServer(tmp_path, extra_args=server_flags(moto)).start()
        try:
            # Half the mock's blob, still far more than the growth allowed: moto closes a
            # part's buffer less often with fewer parts (see round_trip).
            md = metadata(ACCESS_KEY, SECRET_KEY, driver="ec2")
            check_memory_stays_flat(server, md, big_mib=BIG_MIB // 2)
        finally:
            server.kill()
    finally:
        moto.stop()
