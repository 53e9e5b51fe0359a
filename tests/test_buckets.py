"""BucketService over gRPC: the mock's bucket and blob fixtures, streamed upload and
download, metadata, and the errors of every operation."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import Api, ServerProcess
from google.protobuf import empty_pb2

from deltacloud.server.servicers.buckets import MAX_METADATA_BYTES, chunk_message
from deltacloud.v1 import bucket_pb2 as pb
from deltacloud.v1 import bucket_pb2_grpc as pb_grpc
from support import ALICE, BOB, MD, downloads_while_replaced, failure, uploads_racing

CHUNK = 64 * 1024


def header(
    bucket_id: str,
    blob_id: str,
    *,
    content_type: str = "",
    user_metadata: dict[str, str] | None = None,
    content_length: int | None = None,
) -> pb.UploadBlobRequest:
    h = pb.UploadBlobHeader(
        bucket_id=bucket_id,
        blob_id=blob_id,
        content_type=content_type,
        user_metadata=user_metadata or {},
    )
    if content_length is not None:
        h.content_length = content_length
    return pb.UploadBlobRequest(header=h)


def chunks(data: bytes, size: int = CHUNK) -> Iterator[pb.UploadBlobRequest]:
    for start in range(0, len(data), size):
        yield pb.UploadBlobRequest(chunk=data[start : start + size])


def upload(
    api: Api,
    bucket_id: str,
    blob_id: str,
    data: bytes,
    **header_fields: object,
) -> pb.Blob:
    def stream() -> Iterator[pb.UploadBlobRequest]:
        yield header(bucket_id, blob_id, **header_fields)  # type: ignore[arg-type]
        yield from chunks(data)

    return api.buckets.UploadBlob(stream(), metadata=MD, timeout=30)


def download(api: Api, bucket_id: str, blob_id: str) -> tuple[pb.Blob, bytes, int]:
    """The Blob header, the content, and the number of chunk messages."""
    messages = list(
        api.buckets.DownloadBlob(
            pb.DownloadBlobRequest(bucket_id=bucket_id, id=blob_id), metadata=MD, timeout=30
        )
    )
    assert messages, "DownloadBlob sent no message"
    assert messages[0].WhichOneof("data") == "blob"
    rest = messages[1:]
    assert all(msg.WhichOneof("data") == "chunk" for msg in rest), "a header after the first"
    return messages[0].blob, b"".join(msg.chunk for msg in rest), len(rest)


def blob_ids(api: Api, bucket_id: str, prefix: str = "") -> list[str]:
    response = api.buckets.ListBlobs(
        pb.ListBlobsRequest(bucket_id=bucket_id, prefix=prefix), metadata=MD
    )
    assert response.next_page_token == ""
    return [b.id for b in response.blobs]


def stored_files(server: ServerProcess) -> set[str]:
    """Blob content files on disk (finished and temporary), to prove nothing was kept."""
    root = Path(server.data_dir) / "mock"
    return {
        str(p.relative_to(root))
        for folder in ("blobs", "tmp")
        if (root / folder).exists()
        for p in (root / folder).iterdir()
    }


def wait_for_uploads_in_driver(server: ServerProcess, count: int, timeout: float = 10) -> None:
    """Until ``count`` uploads are being written by the mock (each has its temporary file
    from the moment the driver starts reading it)."""
    deadline = time.monotonic() + timeout
    while sum(name.endswith(".part") for name in stored_files(server)) < count:
        assert time.monotonic() < deadline, f"{count} uploads did not reach the driver"
        time.sleep(0.02)


def new_bucket(api: Api, name: str) -> pb.Bucket:
    return api.buckets.CreateBucket(pb.CreateBucketRequest(name=name), metadata=MD)


# ---- fixtures -----------------------------------------------------------------------


def test_list_buckets_returns_the_two_fixture_buckets_with_their_blob_counts(api: Api) -> None:
    response = api.buckets.ListBuckets(pb.ListBucketsRequest(), metadata=MD)
    found = {b.id: (b.name, b.blob_count) for b in response.buckets}
    assert found == {"bucket1": ("bucket1", 3), "bucket2": ("bucket2", 2)}
    assert response.next_page_token == ""


def test_list_buckets_filtered_by_id_returns_only_that_bucket(api: Api) -> None:
    response = api.buckets.ListBuckets(pb.ListBucketsRequest(id="bucket2"), metadata=MD)
    assert [b.id for b in response.buckets] == ["bucket2"]


def test_get_bucket_returns_name_and_blob_count(api: Api) -> None:
    bucket = api.buckets.GetBucket(pb.GetBucketRequest(id="bucket1"), metadata=MD)
    assert (bucket.id, bucket.name, bucket.blob_count) == ("bucket1", "bucket1", 3)


def test_get_unknown_bucket_is_not_found(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.GetBucket(pb.GetBucketRequest(id="no-such-bucket"), metadata=MD)
    f = failure(err.value)
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


def test_list_blobs_of_each_fixture_bucket_in_id_order(api: Api) -> None:
    assert blob_ids(api, "bucket1") == ["blob1", "blob2", "blob3"]
    assert blob_ids(api, "bucket2") == ["blob4", "blob5"]


def test_list_blobs_prefix_keeps_only_matching_ids(api: Api) -> None:
    assert blob_ids(api, "bucket1", prefix="blob2") == ["blob2"]
    assert blob_ids(api, "bucket1", prefix="blob") == ["blob1", "blob2", "blob3"]
    assert blob_ids(api, "bucket1", prefix="nothing") == []


def test_list_blobs_of_unknown_bucket_is_not_found(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.ListBlobs(pb.ListBlobsRequest(bucket_id="no-such-bucket"), metadata=MD)
    assert failure(err.value).code == grpc.StatusCode.NOT_FOUND


def test_list_blobs_without_bucket_id_is_invalid_argument(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.ListBlobs(pb.ListBlobsRequest(), metadata=MD)
    f = failure(err.value)
    assert (f.code, f.reason, f.metadata.get("field")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        "bucket_id",
    )


def test_get_blob1_describes_the_fixture(api: Api) -> None:
    blob = api.buckets.GetBlob(pb.GetBlobRequest(bucket_id="bucket1", id="blob1"), metadata=MD)
    assert blob.id == "blob1"
    assert blob.bucket_id == "bucket1"
    assert blob.content_length == len(b"content of blob 1")
    assert blob.content_type == "text/plain"
    assert dict(blob.user_metadata) == {"SOMENEWKEY": "NEWVALUE"}
    assert blob.HasField("last_modified")


def test_get_blob_in_the_wrong_bucket_is_not_found(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.GetBlob(pb.GetBlobRequest(bucket_id="bucket2", id="blob1"), metadata=MD)
    f = failure(err.value)
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


def test_get_blob_metadata_of_blob1(api: Api) -> None:
    md = api.buckets.GetBlobMetadata(
        pb.GetBlobMetadataRequest(bucket_id="bucket1", id="blob1"), metadata=MD
    )
    assert dict(md.user_metadata) == {"SOMENEWKEY": "NEWVALUE"}


def test_get_blob_metadata_of_unknown_blob_is_not_found(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.GetBlobMetadata(
            pb.GetBlobMetadataRequest(bucket_id="bucket1", id="blob99"), metadata=MD
        )
    assert failure(err.value).code == grpc.StatusCode.NOT_FOUND


def test_download_blob1_sends_the_header_first_then_its_exact_content(api: Api) -> None:
    blob, content, _ = download(api, "bucket1", "blob1")
    assert (blob.id, blob.bucket_id, blob.content_type) == ("blob1", "bucket1", "text/plain")
    assert blob.content_length == 17
    assert content == b"content of blob 1"


def test_download_of_other_fixture_blobs(api: Api) -> None:
    assert download(api, "bucket2", "blob5")[1] == b"content of blob 5"


def test_download_of_unknown_blob_is_not_found(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        download(api, "bucket1", "blob99")
    f = failure(err.value)
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


# ---- upload and download ------------------------------------------------------------


def test_multi_mib_upload_round_trips_byte_for_byte(api: Api) -> None:
    new_bucket(api, "big")
    data = os.urandom(6 * 1024 * 1024 + 123)
    stored = upload(
        api,
        "big",
        "dir/random.bin",
        data,
        content_type="application/x-test",
        user_metadata={"origin": "test", "n": "1"},
        content_length=len(data),
    )
    assert (stored.id, stored.bucket_id) == ("dir/random.bin", "big")
    assert stored.content_length == len(data)
    assert stored.content_type == "application/x-test"
    assert dict(stored.user_metadata) == {"origin": "test", "n": "1"}

    blob, content, chunk_count = download(api, "big", "dir/random.bin")
    assert content == data
    assert chunk_count > 1
    assert blob.content_length == len(data)
    assert blob.content_type == "application/x-test"
    assert dict(blob.user_metadata) == {"origin": "test", "n": "1"}
    described = api.buckets.GetBlob(
        pb.GetBlobRequest(bucket_id="big", id="dir/random.bin"), metadata=MD
    )
    assert described.content_length == len(data)
    assert api.buckets.GetBucket(pb.GetBucketRequest(id="big"), metadata=MD).blob_count == 1


def test_upload_without_content_type_is_stored_as_octet_stream(api: Api) -> None:
    new_bucket(api, "untyped")
    stored = upload(api, "untyped", "b", b"xyz")
    assert stored.content_type == "application/octet-stream"
    assert stored.content_length == 3


def test_empty_blob_downloads_as_a_header_without_chunks(api: Api) -> None:
    new_bucket(api, "empty-blob")
    assert upload(api, "empty-blob", "nothing", b"", content_length=0).content_length == 0
    blob, content, chunk_count = download(api, "empty-blob", "nothing")
    assert (blob.content_length, content, chunk_count) == (0, b"", 0)


def test_upload_overwrites_content_type_and_metadata_of_an_existing_blob(api: Api) -> None:
    new_bucket(api, "overwrite")
    upload(
        api,
        "overwrite",
        "doc",
        b"first version",
        content_type="text/plain",
        user_metadata={"v": "1", "old": "yes"},
    )
    stored = upload(
        api,
        "overwrite",
        "doc",
        b"second, longer version",
        content_type="text/markdown",
        user_metadata={"v": "2"},
    )
    assert stored.content_length == len(b"second, longer version")
    blob, content, _ = download(api, "overwrite", "doc")
    assert content == b"second, longer version"
    assert blob.content_type == "text/markdown"
    assert dict(blob.user_metadata) == {"v": "2"}
    assert blob_ids(api, "overwrite") == ["doc"]


def upload_error(api: Api, messages: list[pb.UploadBlobRequest]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.UploadBlob(iter(messages), metadata=MD, timeout=30)
    return err.value


def assert_old_version_intact(api: Api, bucket_id: str, blob_id: str, content: bytes) -> None:
    blob, stored, _ = download(api, bucket_id, blob_id)
    assert stored == content
    assert blob.content_length == len(content)
    assert blob.content_type == "text/plain"
    assert dict(blob.user_metadata) == {"keep": "me"}


@pytest.fixture
def victim(api: Api) -> tuple[str, str, bytes]:
    """A new bucket holding one blob the failed uploads aim at."""
    bucket_id = f"victim-{uuid.uuid4().hex[:12]}"
    new_bucket(api, bucket_id)
    upload(
        api,
        bucket_id,
        "target",
        b"the old version",
        content_type="text/plain",
        user_metadata={"keep": "me"},
    )
    return bucket_id, "target", b"the old version"


def test_upload_of_an_empty_stream_is_invalid_argument(api: Api) -> None:
    f = failure(upload_error(api, []))
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UPLOAD")


def test_upload_whose_first_message_is_a_chunk_is_refused_and_stores_nothing(
    api: Api, server: ServerProcess, victim: tuple[str, str, bytes]
) -> None:
    bucket_id, blob_id, old = victim
    files = stored_files(server)
    err = upload_error(
        api,
        [pb.UploadBlobRequest(chunk=b"new"), header(bucket_id, blob_id, content_type="x/y")],
    )
    f = failure(err)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UPLOAD")
    assert_old_version_intact(api, bucket_id, blob_id, old)
    assert stored_files(server) == files


def test_upload_with_a_second_header_is_refused_and_stores_nothing(
    api: Api, server: ServerProcess, victim: tuple[str, str, bytes]
) -> None:
    bucket_id, blob_id, old = victim
    files = stored_files(server)
    err = upload_error(
        api,
        [
            header(bucket_id, blob_id, content_type="x/y"),
            pb.UploadBlobRequest(chunk=b"new content"),
            header(bucket_id, blob_id, content_type="x/z"),
            pb.UploadBlobRequest(chunk=b"more"),
        ],
    )
    f = failure(err)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UPLOAD")
    assert_old_version_intact(api, bucket_id, blob_id, old)
    assert stored_files(server) == files


@pytest.mark.parametrize("announced", [5, 100])
def test_upload_whose_bytes_differ_from_content_length_is_refused_and_stores_nothing(
    api: Api, server: ServerProcess, victim: tuple[str, str, bytes], announced: int
) -> None:
    bucket_id, blob_id, old = victim
    files = stored_files(server)
    err = upload_error(
        api,
        [header(bucket_id, blob_id, content_length=announced), *chunks(b"0123456789" * 3, 7)],
    )
    f = failure(err)
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f.reason == "CONTENT_LENGTH_MISMATCH"
    assert (f.metadata.get("expected"), f.metadata.get("received")) == (str(announced), "30")
    assert_old_version_intact(api, bucket_id, blob_id, old)
    assert stored_files(server) == files


@pytest.mark.parametrize("announce", [False, True])
def test_an_upload_the_client_cancels_midway_stores_nothing(
    api: Api, server: ServerProcess, victim: tuple[str, str, bytes], announce: bool
) -> None:
    """gRPC shows the server a client's cancel as the end of the request stream: the half
    sent must not replace the blob, whether its length was announced or not."""
    bucket_id, blob_id, old = victim
    files = stored_files(server)
    sent, release = threading.Event(), threading.Event()
    length = 4 * CHUNK

    def stream() -> Iterator[pb.UploadBlobRequest]:
        yield header(bucket_id, blob_id, content_length=length if announce else None)
        yield from chunks(b"n" * (length // 2))
        sent.set()
        release.wait(30)  # the client stalls here, then gives up

    call = api.buckets.UploadBlob.future(stream(), metadata=MD, timeout=30)
    try:
        assert sent.wait(10)
        uploads = Path(server.data_dir) / "mock" / "tmp"
        deadline = time.monotonic() + 10
        while not (uploads.is_dir() and any(uploads.iterdir())):  # the driver is writing it
            assert time.monotonic() < deadline, "the upload never reached the driver"
            time.sleep(0.01)
        call.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            call.result()
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while stored_files(server) != files:  # the driver drops its temporary file
        assert time.monotonic() < deadline, stored_files(server) - files
        time.sleep(0.01)
    assert_old_version_intact(api, bucket_id, blob_id, old)


@pytest.mark.parametrize("length", [0, 3 * CHUNK])
def test_an_upload_cancelled_after_all_its_announced_bytes_stores_nothing(
    api: Api, server: ServerProcess, victim: tuple[str, str, bytes], length: int
) -> None:
    """Every announced byte arrived, then the client gave up instead of closing its side:
    it was stored, replacing the blob (an announced 0 bytes replaced it with nothing)."""
    bucket_id, blob_id, old = victim
    files = stored_files(server)
    sent, release = threading.Event(), threading.Event()

    def stream() -> Iterator[pb.UploadBlobRequest]:
        yield header(bucket_id, blob_id, content_length=length)
        yield from chunks(b"n" * length)
        sent.set()
        release.wait(30)  # the client stalls here, then gives up

    call = api.buckets.UploadBlob.future(stream(), metadata=MD, timeout=30)
    try:
        assert sent.wait(10)
        time.sleep(0.3)  # the server has it all, and waits for the end of the stream
        call.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            call.result()
    finally:
        release.set()
    time.sleep(0.3)
    assert_old_version_intact(api, bucket_id, blob_id, old)
    assert stored_files(server) == files


@pytest.mark.parametrize("missing", ["bucket_id", "blob_id"])
def test_upload_header_without_bucket_or_blob_id_is_invalid_argument(
    api: Api, missing: str
) -> None:
    fields = {"bucket_id": "bucket1", "blob_id": "x"} | {missing: ""}
    err = upload_error(api, [header(**fields), pb.UploadBlobRequest(chunk=b"x")])
    f = failure(err)
    assert (f.code, f.reason, f.metadata.get("field")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        missing,
    )


def test_upload_to_unknown_bucket_is_not_found(api: Api, server: ServerProcess) -> None:
    files = stored_files(server)
    err = upload_error(api, [header("no-such-bucket", "x"), *chunks(os.urandom(3 * CHUNK))])
    f = failure(err)
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert f.metadata.get("resource_id") == "no-such-bucket"
    assert stored_files(server) == files


# ---- metadata -----------------------------------------------------------------------


def test_update_blob_metadata_replaces_all_pairs(api: Api) -> None:
    new_bucket(api, "meta")
    upload(api, "meta", "m", b"x", user_metadata={"a": "1", "b": "2"})
    updated = api.buckets.UpdateBlobMetadata(
        pb.UpdateBlobMetadataRequest(bucket_id="meta", id="m", user_metadata={"c": "3"}),
        metadata=MD,
    )
    assert dict(updated.user_metadata) == {"c": "3"}
    read = api.buckets.GetBlobMetadata(
        pb.GetBlobMetadataRequest(bucket_id="meta", id="m"), metadata=MD
    )
    assert dict(read.user_metadata) == {"c": "3"}
    blob, content, _ = download(api, "meta", "m")
    assert dict(blob.user_metadata) == {"c": "3"}
    assert content == b"x"


def test_update_blob_metadata_with_an_empty_map_removes_every_pair(api: Api) -> None:
    new_bucket(api, "meta-empty")
    upload(api, "meta-empty", "m", b"x", user_metadata={"a": "1"})
    updated = api.buckets.UpdateBlobMetadata(
        pb.UpdateBlobMetadataRequest(bucket_id="meta-empty", id="m"), metadata=MD
    )
    assert dict(updated.user_metadata) == {}
    read = api.buckets.GetBlobMetadata(
        pb.GetBlobMetadataRequest(bucket_id="meta-empty", id="m"), metadata=MD
    )
    assert dict(read.user_metadata) == {}


@pytest.mark.parametrize("key", ["", "bad\nkey", "del\x7f"])
def test_a_metadata_key_that_could_not_be_written_back_is_refused_at_upload_too(
    api: Api, key: str
) -> None:
    bucket = f"meta-keys-{uuid.uuid4().hex[:8]}"
    new_bucket(api, bucket)
    err = upload_error(api, [header(bucket, "k", user_metadata={key: "x", "ok": "1"})])
    f = failure(err)
    assert (f.code, f.reason, f.metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_METADATA_KEY",
        "user_metadata",
    )
    with pytest.raises(grpc.RpcError) as refused:
        api.buckets.GetBlob(pb.GetBlobRequest(bucket_id=bucket, id="k"), metadata=MD)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    upload(api, bucket, "k", b"x", user_metadata={"ok": "1"})
    with pytest.raises(grpc.RpcError) as err2:
        api.buckets.UpdateBlobMetadata(
            pb.UpdateBlobMetadataRequest(bucket_id=bucket, id="k", user_metadata={key: "x"}),
            metadata=MD,
        )
    assert failure(err2.value).reason == "INVALID_METADATA_KEY"


def test_metadata_too_large_to_describe_the_blob_is_refused(tmp_path: Path) -> None:
    """Metadata that fits in a request but makes the blob's description larger than a
    message: the upload was stored and answered RESOURCE_EXHAUSTED without ErrorInfo, and
    GetBlob and DownloadBlob failed for good."""
    limit = 65_536
    server = ServerProcess(tmp_path, extra_args=["--max-message-bytes", str(limit)]).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            big = {"k": "v" * (limit - 200)}
            assert header("bucket1", "big", user_metadata=big).ByteSize() < limit
            f = failure(upload_error(api, [header("bucket1", "big", user_metadata=big)]))
            assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "METADATA_TOO_LARGE")
            with pytest.raises(grpc.RpcError) as gone:
                api.buckets.GetBlob(pb.GetBlobRequest(bucket_id="bucket1", id="big"), metadata=MD)
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as refused:
                api.buckets.UpdateBlobMetadata(
                    pb.UpdateBlobMetadataRequest(
                        bucket_id="bucket1", id="blob1", user_metadata=big
                    ),
                    metadata=MD,
                )
            assert failure(refused.value).reason == "METADATA_TOO_LARGE"
            _, content, _ = download(api, "bucket1", "blob1")
            assert content == b"content of blob 1"
    finally:
        server.kill()


def test_metadata_over_8_kib_is_refused_at_upload_and_update(api: Api) -> None:
    """At most 8 KiB of keys and values (UTF-8), as Azure and Cloud Storage take."""
    fits = {"k": "v" * (MAX_METADATA_BYTES - 1)}
    over = {"k": "é" * (MAX_METADATA_BYTES // 2)}  # 8 KiB of characters, 2 bytes each
    upload(api, "bucket1", "meta-8k", b"x", user_metadata=fits)
    update = pb.UpdateBlobMetadataRequest(bucket_id="bucket1", id="meta-8k", user_metadata=over)
    with pytest.raises(grpc.RpcError) as updated:
        api.buckets.UpdateBlobMetadata(update, metadata=MD)
    uploaded = upload_error(api, [header("bucket1", "meta-8k-over", user_metadata=over)])
    for refused in (updated.value, uploaded):
        f = failure(refused)
        assert (f.code, f.reason, f.metadata["limit"]) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "METADATA_TOO_LARGE",
            str(MAX_METADATA_BYTES),
        )
    got = api.buckets.GetBlob(pb.GetBlobRequest(bucket_id="bucket1", id="meta-8k"), metadata=MD)
    assert dict(got.user_metadata) == fits
    api.buckets.DeleteBlob(pb.DeleteBlobRequest(bucket_id="bucket1", id="meta-8k"), metadata=MD)


def test_a_request_with_a_huge_metadata_map_is_refused_without_stalling_the_server(
    api: Api,
) -> None:
    """330,000 tiny entries (4 MiB): protobuf takes seconds to parse such a map, on the
    event loop, for anyone, credentials or not, and every other call waited. They are
    counted from the request's bytes and refused; other calls keep answering meanwhile."""
    huge = {f"k{i}": "" for i in range(330_000)}
    update = pb.UpdateBlobMetadataRequest(bucket_id="bucket1", id="blob1", user_metadata=huge)
    first = pb.UploadBlobRequest(
        header=pb.UploadBlobHeader(bucket_id="bucket1", blob_id="huge", user_metadata=huge)
    )
    latencies: list[float] = []
    stop = threading.Event()

    def other_calls() -> None:
        while not stop.is_set():
            began = time.monotonic()
            api.buckets.GetBlob(pb.GetBlobRequest(bucket_id="bucket1", id="blob1"), metadata=MD)
            latencies.append(time.monotonic() - began)
            time.sleep(0.02)

    prober = threading.Thread(target=other_calls)
    prober.start()
    try:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as updated:
                api.buckets.UpdateBlobMetadata(update)  # no credentials at all
            for refused in (updated.value, upload_error(api, [first])):
                f = failure(refused)
                assert (f.code, f.reason) == (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "METADATA_TOO_LARGE",
                )
    finally:
        stop.set()
        prober.join()
    assert latencies and max(latencies) < 1.5, latencies


def test_a_content_type_over_255_characters_is_refused(api: Api) -> None:
    # A metadata update counts on it: a blob with a content type of 3 MiB took metadata
    # that made its description too large to read, for good.
    f = failure(upload_error(api, [header("bucket1", "long-type", content_type="t/" + "x" * 254)]))
    assert (f.code, f.reason, f.metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_CONTENT_TYPE",
        "content_type",
    )
    upload(api, "bucket1", "long-type", b"x", content_type="t/" + "x" * 253)
    api.buckets.DeleteBlob(pb.DeleteBlobRequest(bucket_id="bucket1", id="long-type"), metadata=MD)


def test_update_metadata_of_unknown_blob_is_not_found(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.UpdateBlobMetadata(
            pb.UpdateBlobMetadataRequest(
                bucket_id="bucket1", id="blob99", user_metadata={"a": "b"}
            ),
            metadata=MD,
        )
    assert failure(err.value).code == grpc.StatusCode.NOT_FOUND


# ---- buckets: create and delete -----------------------------------------------------


def test_create_bucket_returns_an_empty_bucket_that_is_then_listed(api: Api) -> None:
    bucket = new_bucket(api, "created")
    assert (bucket.id, bucket.name, bucket.blob_count) == ("created", "created", 0)
    listed = api.buckets.ListBuckets(pb.ListBucketsRequest(id="created"), metadata=MD)
    assert [(b.id, b.blob_count) for b in listed.buckets] == [("created", 0)]
    assert blob_ids(api, "created") == []


def test_create_bucket_with_location_keeps_it(api: Api) -> None:
    bucket = api.buckets.CreateBucket(
        pb.CreateBucketRequest(name="located", location="eu"), metadata=MD
    )
    assert bucket.location == "eu"
    assert api.buckets.GetBucket(pb.GetBucketRequest(id="located"), metadata=MD).location == "eu"


def test_create_duplicate_bucket_is_already_exists(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        new_bucket(api, "bucket1")
    f = failure(err.value)
    assert (f.code, f.reason) == (grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS")
    assert api.buckets.GetBucket(pb.GetBucketRequest(id="bucket1"), metadata=MD).blob_count == 3


@pytest.mark.parametrize("name", ["", "has/slash", " padded", "-starts-with-dash"])
def test_create_bucket_with_an_invalid_name_is_invalid_argument(api: Api, name: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        new_bucket(api, name)
    assert failure(err.value).code == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_non_empty_bucket_is_refused_with_bucket_not_empty(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.DeleteBucket(pb.DeleteBucketRequest(id="bucket2"), metadata=MD)
    f = failure(err.value)
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BUCKET_NOT_EMPTY")
    assert f.metadata.get("bucket_id") == "bucket2"
    assert blob_ids(api, "bucket2") == ["blob4", "blob5"]


def test_delete_empty_bucket_removes_it(api: Api) -> None:
    new_bucket(api, "to-delete")
    result = api.buckets.DeleteBucket(pb.DeleteBucketRequest(id="to-delete"), metadata=MD)
    assert result == empty_pb2.Empty()
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.GetBucket(pb.GetBucketRequest(id="to-delete"), metadata=MD)
    assert failure(err.value).code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.DeleteBucket(pb.DeleteBucketRequest(id="to-delete"), metadata=MD)
    assert failure(err.value).code == grpc.StatusCode.NOT_FOUND


def test_delete_blob_then_it_is_not_found_and_the_bucket_can_be_deleted(api: Api) -> None:
    new_bucket(api, "blob-delete")
    upload(api, "blob-delete", "only", b"bye")
    api.buckets.DeleteBlob(pb.DeleteBlobRequest(bucket_id="blob-delete", id="only"), metadata=MD)
    for call, request in [
        (api.buckets.GetBlob, pb.GetBlobRequest(bucket_id="blob-delete", id="only")),
        (api.buckets.DeleteBlob, pb.DeleteBlobRequest(bucket_id="blob-delete", id="only")),
        (
            api.buckets.GetBlobMetadata,
            pb.GetBlobMetadataRequest(bucket_id="blob-delete", id="only"),
        ),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            call(request, metadata=MD)
        f = failure(err.value)
        assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    with pytest.raises(grpc.RpcError) as err:
        download(api, "blob-delete", "only")
    assert failure(err.value).code == grpc.StatusCode.NOT_FOUND
    assert blob_ids(api, "blob-delete") == []
    api.buckets.DeleteBucket(pb.DeleteBucketRequest(id="blob-delete"), metadata=MD)


def test_fixture_buckets_are_unchanged_by_the_tests_above(api: Api) -> None:
    """Runs last: the module's mutating tests used their own buckets."""
    assert blob_ids(api, "bucket1") == ["blob1", "blob2", "blob3"]
    blob, content, _ = download(api, "bucket1", "blob1")
    assert content == b"content of blob 1"
    assert dict(blob.user_metadata) == {"SOMENEWKEY": "NEWVALUE"}


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 1024 * 1024, 2 * 1024 * 1024 + 3])
def test_download_chunks_are_encoded_exactly_as_protobuf_encodes_them(size: int) -> None:
    """DownloadBlob writes its chunk messages pre-encoded (one copy of the bytes instead of
    two); they must be the very bytes protobuf would produce."""
    data = bytes(i % 251 for i in range(size))
    expected = pb.DownloadBlobResponse(chunk=data).SerializeToString()
    assert chunk_message(data) == expected
    assert chunk_message(memoryview(data)) == expected
    assert pb.DownloadBlobResponse.FromString(chunk_message(data)).chunk == data


def test_clients_leaving_downloads_midway_leave_no_error_in_the_log(tmp_path: Path) -> None:
    """Clients that cancel downloads midway are normal: the server logs no error for them.
    (gRPC would log one when a write fails inside a handler because the client has gone;
    that moment is too narrow to hit at will here, so tests/test_rpc.py raises it.)"""
    server = ServerProcess(tmp_path).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            new_bucket(api, "leavers")
            upload(api, "leavers", "big", os.urandom(16 * 1024 * 1024))

        async def leave_midway() -> None:
            async with grpc.aio.insecure_channel(server.target) as channel:
                stub = pb_grpc.BucketServiceStub(channel)
                for i in range(40):
                    call = stub.DownloadBlob(
                        pb.DownloadBlobRequest(bucket_id="leavers", id="big"), metadata=MD
                    )
                    await call.read()
                    await call.read()
                    call.cancel()
                    await asyncio.sleep(0.01 * (i % 4))

        asyncio.run(leave_midway())
        with grpc.insecure_channel(server.target) as channel:  # it still serves
            _, content, _ = download(Api(channel), "leavers", "big")
            assert len(content) == 16 * 1024 * 1024
        errors = [line for line in server.log().splitlines() if '"level": "ERROR"' in line]
        assert errors == []
    finally:
        server.kill()


def test_an_upload_to_a_full_disk_is_resource_exhausted_and_the_server_recovers(
    tmp_path: Path,
) -> None:
    """The server's file-size limit (RLIMIT_FSIZE, set on the running process) stands for
    a full disk: the upload is RESOURCE_EXHAUSTED STORAGE_FULL and leaves nothing behind;
    with room again, the same upload is stored."""
    import resource

    server = ServerProcess(tmp_path).start()
    assert server.process is not None
    pid = server.process.pid
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            new_bucket(api, "full-disk")
            files = stored_files(server)
            soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (2 * 1024 * 1024, hard))
            data = os.urandom(4 * 1024 * 1024)
            try:
                f = failure(upload_error(api, [header("full-disk", "big"), *chunks(data)]))
            finally:
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))
            assert (f.code, f.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STORAGE_FULL")
            assert stored_files(server) == files
            assert blob_ids(api, "full-disk") == []
            assert upload(api, "full-disk", "big", data).content_length == len(data)
    finally:
        server.kill()


def test_slow_uploads_do_not_hold_the_workers_other_calls_need(tmp_path: Path) -> None:
    """An upload runs at its client's pace: uploads whose clients stall must not take the
    driver workers that every other call needs (two workers, three stalled uploads)."""
    from deltacloud.v1 import key_pb2

    server = ServerProcess(tmp_path, extra_args=["--workers", "2"]).start()
    release = threading.Event()

    def stalled(blob_id: str) -> Iterator[pb.UploadBlobRequest]:
        yield header("bucket1", blob_id)
        yield pb.UploadBlobRequest(chunk=b"first part")
        release.wait(60)
        yield pb.UploadBlobRequest(chunk=b", and the rest")

    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            uploads = [
                api.buckets.UploadBlob.future(stalled(f"slow-{i}"), metadata=MD, timeout=60)
                for i in range(3)
            ]
            wait_for_uploads_in_driver(server, 3)  # each holds a worker, waiting for its client
            key = api.keys.CreateKey(
                key_pb2.CreateKeyRequest(name="while-uploads-stall"), metadata=MD, timeout=5
            )
            assert key.id == "while-uploads-stall"
            release.set()
            stored = [u.result(timeout=30) for u in uploads]
            assert sorted(b.content_length for b in stored) == [24, 24, 24]
            for i in range(3):
                assert download(api, "bucket1", f"slow-{i}")[1] == b"first part, and the rest"
    finally:
        release.set()
        server.kill()


def test_uploads_beyond_the_upload_workers_wait_and_give_up_at_their_deadline(
    tmp_path: Path,
) -> None:
    """One upload worker: a second upload waits for it; one whose deadline passes while
    it waits is refused and never stored, even once the worker is free."""
    server = ServerProcess(tmp_path, extra_args=["--upload-workers", "1"]).start()
    release = threading.Event()

    def stalled() -> Iterator[pb.UploadBlobRequest]:
        yield header("bucket1", "first")
        release.wait(60)
        yield pb.UploadBlobRequest(chunk=b"first")

    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            first = api.buckets.UploadBlob.future(stalled(), metadata=MD, timeout=60)
            wait_for_uploads_in_driver(server, 1)  # it holds the one upload worker
            stream = iter([header("bucket1", "late"), pb.UploadBlobRequest(chunk=b"late")])
            with pytest.raises(grpc.RpcError) as late:
                api.buckets.UploadBlob(stream, metadata=MD, timeout=1)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            waiting = api.buckets.UploadBlob.future(
                iter([header("bucket1", "queued"), pb.UploadBlobRequest(chunk=b"queued")]),
                metadata=MD,
                timeout=60,
            )
            time.sleep(0.3)
            assert not waiting.done()  # behind the stalled one
            assert sum(name.endswith(".part") for name in stored_files(server)) == 1
            release.set()
            assert first.result(timeout=30).content_length == 5
            assert waiting.result(timeout=30).content_length == 6
            assert "late" not in blob_ids(api, "bucket1")
            assert {"first", "queued"} <= set(blob_ids(api, "bucket1"))
    finally:
        release.set()
        server.kill()


def test_a_download_describes_the_version_it_sends_while_the_blob_is_replaced(
    api: Api,
) -> None:
    """The header of a download (length, metadata) and its content come from one version
    of the blob, however often it is replaced meanwhile: they were read by two driver
    calls, and a replace between them sent one version's header with the other's bytes
    (14 of 2,381 downloads in 3 s)."""
    bucket = new_bucket(api, f"flip-{uuid.uuid4().hex[:8]}").id
    downloads, mixed = downloads_while_replaced(api, MD, bucket, seconds=3)
    assert downloads > 20
    assert mixed == [], f"{len(mixed)} of {downloads} downloads mixed two versions"


def test_an_upload_is_answered_with_the_version_it_stored_while_others_replace_it(
    api: Api,
) -> None:
    """Two clients upload the same blob again and again: each answer describes the version
    its own upload stored (length, metadata), not the other's."""
    bucket = new_bucket(api, f"race-{uuid.uuid4().hex[:8]}").id
    uploads, wrong = uploads_racing(api, MD, bucket, seconds=3)
    assert uploads > 20
    assert wrong == [], f"{len(wrong)} of {uploads} uploads answered with another's version"


def test_a_users_stalled_transfers_wait_their_turn_and_take_nothing_from_others(
    tmp_path: Path,
) -> None:
    """--transfers-per-scope 2 with 4 upload workers: bob's four uploads that stall after
    their first byte hold two workers, the other two wait their turn, and alice's upload
    goes through at once (every worker was bob's before); once bob's clients go on, all
    four of his uploads are stored. A third download of bob's waits likewise while two of
    his are not read, and starts once one of them ends."""
    server = ServerProcess(
        tmp_path, extra_args=["--transfers-per-scope", "2", "--upload-workers", "4"]
    ).start()
    go_on = threading.Event()

    def stalled(blob_id: str) -> Iterator[pb.UploadBlobRequest]:
        yield header("bob-bucket", blob_id)
        yield pb.UploadBlobRequest(chunk=b"b")
        go_on.wait(30)
        yield pb.UploadBlobRequest(chunk=b"ob")

    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            for md, name in ((BOB, "bob-bucket"), (ALICE, "alice-bucket")):
                api.buckets.CreateBucket(pb.CreateBucketRequest(name=name), metadata=md)
            pending = [
                api.buckets.UploadBlob.future(stalled(f"bob{i}"), metadata=BOB, timeout=60)
                for i in range(4)
            ]
            time.sleep(1.0)  # all four have reached the server
            stored = api.buckets.UploadBlob(
                iter([header("alice-bucket", "a"), pb.UploadBlobRequest(chunk=b"alice")]),
                metadata=ALICE,
                timeout=10,
            )
            assert stored.content_length == 5
            go_on.set()
            done = sorted(f.result(timeout=30).id for f in pending)
            assert done == ["bob0", "bob1", "bob2", "bob3"]

            big = [header("bob-bucket", "big"), *chunks(os.urandom(8 * 1024 * 1024))]
            api.buckets.UploadBlob(iter(big), metadata=BOB, timeout=30)
            request = pb.DownloadBlobRequest(bucket_id="bob-bucket", id="big")
            unread = [api.buckets.DownloadBlob(request, metadata=BOB, timeout=60) for _ in range(2)]
            for stream in unread:
                assert next(stream).HasField("blob")  # started, then never read again
            third = api.buckets.DownloadBlob(request, metadata=BOB, timeout=60)
            first: list[pb.DownloadBlobResponse] = []
            reader = threading.Thread(target=lambda: first.append(next(third)))
            reader.start()
            reader.join(1.0)
            assert not first, "a third download of the scope started while two were unread"
            unread[0].cancel()
            reader.join(10)
            assert first and first[0].HasField("blob")
            third.cancel()
            unread[1].cancel()
    finally:
        go_on.set()
        server.kill()


def test_a_transfer_whose_client_stalls_ends_and_gives_back_its_turn(tmp_path: Path) -> None:
    """--transfer-idle-timeout 1 with one transfer per scope: an upload whose client stops
    sending ends DEADLINE_EXCEEDED (TRANSFER_IDLE), stores nothing, and the next upload of
    the scope goes on; a download whose client stops reading ends too, and the next
    download of the scope starts. Before, each held its turn and its worker for as long as
    its client kept the call open."""
    server = ServerProcess(
        tmp_path, extra_args=["--transfer-idle-timeout", "1", "--transfers-per-scope", "1"]
    ).start()
    go_on = threading.Event()

    def stalled() -> Iterator[pb.UploadBlobRequest]:
        yield header("bucket1", "stalled")
        yield pb.UploadBlobRequest(chunk=b"half")
        go_on.wait(30)

    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                api.buckets.UploadBlob(stalled(), metadata=MD, timeout=30)
            took = time.monotonic() - started
            f = failure(err.value)
            assert (f.code, f.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "TRANSFER_IDLE")
            assert f.metadata["idle_seconds"] == "1"
            assert took < 10, f"the stalled upload ended after {took:.1f} s"
            go_on.set()
            missing = failure_of(api, pb.GetBlobRequest(bucket_id="bucket1", id="stalled"))
            assert missing == grpc.StatusCode.NOT_FOUND
            # The scope's one turn is free again.
            data = os.urandom(8 * 1024 * 1024)
            stored = api.buckets.UploadBlob(
                iter([header("bucket1", "big"), *chunks(data)]), metadata=MD, timeout=30
            )
            assert stored.content_length == len(data)

            request = pb.DownloadBlobRequest(bucket_id="bucket1", id="big")
            unread = api.buckets.DownloadBlob(request, metadata=MD, timeout=60)
            assert next(unread).HasField("blob")  # started, then not read for a while
            time.sleep(3)
            second = api.buckets.DownloadBlob(request, metadata=MD, timeout=30)
            assert b"".join(r.chunk for r in second) == data  # the turn was given back
            with pytest.raises(grpc.RpcError) as err:
                for _ in unread:
                    pass
            f = failure(err.value)
            assert (f.code, f.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "TRANSFER_IDLE")
    finally:
        go_on.set()
        server.kill()


def failure_of(api: Api, request: pb.GetBlobRequest) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        api.buckets.GetBlob(request, metadata=MD)
    return err.value.code()


def test_a_blob_key_holding_a_tab_is_stored_read_and_deleted(api: Api) -> None:
    """Blob keys are not ids: S3 keeps a key with a tab. The check refusing ids with a
    control character must not refuse them, or a blob stored earlier is unreachable."""
    bucket = new_bucket(api, "tabbed")
    key = "report\t2026.csv"
    upload(api, bucket.id, key, b"a,b\n")
    got = api.buckets.GetBlob(pb.GetBlobRequest(bucket_id=bucket.id, id=key), metadata=MD)
    assert (got.id, got.content_length) == (key, 4)
    assert download(api, bucket.id, key)[1] == b"a,b\n"
    api.buckets.DeleteBlob(pb.DeleteBlobRequest(bucket_id=bucket.id, id=key), metadata=MD)
    with pytest.raises(grpc.RpcError) as caught:
        api.buckets.GetBlob(pb.GetBlobRequest(bucket_id=bucket.id, id=key), metadata=MD)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
