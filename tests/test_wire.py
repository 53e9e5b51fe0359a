"""server/wire.py: counting a map's entries from a request's bytes, without parsing it, must
agree with protobuf's parse for every message protobuf accepts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from deltacloud.server.wire import TooManyEntries, count_entries, guarded
from deltacloud.v1 import bucket_pb2 as pb

texts = st.text(max_size=20)
maps = st.dictionaries(texts, texts, max_size=30)


@settings(max_examples=200, deadline=None)
@given(maps, texts, texts, st.one_of(st.none(), st.integers(0, 2**62)))
def test_the_count_of_an_upload_header_agrees_with_the_parse(
    metadata: dict[str, str], bucket: str, blob: str, length: int | None
) -> None:
    header = pb.UploadBlobHeader(bucket_id=bucket, blob_id=blob, user_metadata=metadata)
    if length is not None:
        header.content_length = length
    data = pb.UploadBlobRequest(header=header).SerializeToString()
    assert count_entries(data, (1, 4), 1000) == len(metadata)


@settings(max_examples=200, deadline=None)
@given(maps, maps)
def test_a_map_given_in_two_pieces_counts_as_protobuf_merges_it(
    first: dict[str, str], second: dict[str, str]
) -> None:
    """A message field given twice is merged by the parse: both pieces' entries count (the
    same key twice counts twice: a bound on the parse, never less than the map)."""
    data = (
        pb.UploadBlobRequest(header=pb.UploadBlobHeader(user_metadata=first)).SerializeToString()
        + pb.UploadBlobRequest(header=pb.UploadBlobHeader(user_metadata=second)).SerializeToString()
    )
    parsed = pb.UploadBlobRequest.FromString(data)
    assert count_entries(data, (1, 4), 1000) == len(first) + len(second)
    assert len(parsed.header.user_metadata) <= len(first) + len(second)


def test_counting_stops_just_past_the_limit() -> None:
    request = pb.UpdateBlobMetadataRequest(
        bucket_id="b", id="x", user_metadata={f"k{i}": "" for i in range(5000)}
    )
    data = request.SerializeToString()
    assert count_entries(data, (3,), 100_000) == 5000
    assert count_entries(data, (3,), 10) == 11
    # chunks are not headers
    assert count_entries(pb.UploadBlobRequest(chunk=data).SerializeToString(), (1, 4), 10) == 0


def test_malformed_bytes_count_nothing_and_are_left_to_the_parse() -> None:
    data = pb.UpdateBlobMetadataRequest(user_metadata={"a": "b"}).SerializeToString()
    for broken in (data[:-1], b"\xff" * 12, b"\x1b", b"\x1a\x7f"):
        assert count_entries(broken, (3,), 10) == 0


def test_the_guard_hands_the_handler_a_refusal_instead_of_parsing() -> None:
    parsed: list[bytes] = []

    def parse(data: bytes) -> pb.UpdateBlobMetadataRequest:
        parsed.append(data)
        return pb.UpdateBlobMetadataRequest.FromString(data)

    deserialize = guarded(parse, (3,), 2, lambda count: ValueError(count))
    small = pb.UpdateBlobMetadataRequest(user_metadata={"a": "1", "b": "2"}).SerializeToString()
    big = pb.UpdateBlobMetadataRequest(
        user_metadata={"a": "1", "b": "2", "c": "3", "d": "4"}
    ).SerializeToString()
    assert isinstance(deserialize(small), pb.UpdateBlobMetadataRequest)
    refused = deserialize(big)
    assert isinstance(refused, TooManyEntries) and refused.error.args == (3,)
    assert parsed == [small]
