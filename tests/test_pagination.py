"""Paging of every list over gRPC: complete walks in natural id order, stability while
items come and go, page_size rules, and refusal of any token not issued for the request."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import Api, ServerProcess

from deltacloud.v1 import address_pb2 as addr_pb
from deltacloud.v1 import bucket_pb2 as bucket_pb
from deltacloud.v1 import common_pb2
from deltacloud.v1 import instance_pb2 as inst_pb
from deltacloud.v1 import key_pb2 as key_pb
from deltacloud.v1 import realm_pb2 as realm_pb
from support import ALICE, BOB, MD, failure

KEY_NAMES = [f"key{n}" for n in range(1, 24)]


def list_keys(api: Api, page_size: int = 0, page_token: str = "", **filters: Any) -> Any:
    return api.keys.ListKeys(
        key_pb.ListKeysRequest(page_size=page_size, page_token=page_token, **filters), metadata=MD
    )


def list_instances(api: Api, page_size: int = 0, page_token: str = "", **filters: Any) -> Any:
    return api.instances.ListInstances(
        inst_pb.ListInstancesRequest(page_size=page_size, page_token=page_token, **filters),
        metadata=MD,
    )


def walk(
    fetch: Callable[..., Any], items_of: Callable[[Any], list[str]], page_size: int, **filters: Any
) -> list[list[str]]:
    """Every page of a list, following next_page_token to the end."""
    pages: list[list[str]] = []
    token = ""
    while True:
        response = fetch(page_size=page_size, page_token=token, **filters)
        pages.append(items_of(response))
        token = response.next_page_token
        if not token:
            return pages
        assert len(pages) < 1000, "the walk does not end"


def key_ids(response: Any) -> list[str]:
    return [k.id for k in response.keys]


def instance_ids(response: Any) -> list[str]:
    return [i.id for i in response.instances]


def page_error(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    f = failure(err.value)
    return f.code, f.reason


@pytest.fixture(scope="module")
def keyed(server: ServerProcess) -> Iterator[Api]:
    """The module server with key1..key23 created next to the fixture test-key, and
    instances inst4..inst13 next to the fixtures inst0..inst3."""
    channel = grpc.insecure_channel(server.target)
    api = Api(channel)
    for name in reversed(KEY_NAMES):  # creation order must not matter
        api.keys.CreateKey(key_pb.CreateKeyRequest(name=name), metadata=MD)
    created = api.instances.CreateInstance(
        inst_pb.CreateInstanceRequest(image_id="img1", instance_count=10), metadata=MD
    )
    assert [i.id for i in created.instances] == [f"inst{n}" for n in range(4, 14)]
    yield api
    channel.close()


# ---- complete walks -----------------------------------------------------------------


def test_walk_in_pages_of_5_serves_every_key_once_in_natural_order(keyed: Api) -> None:
    pages = walk(lambda **kw: list_keys(keyed, **kw), key_ids, 5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 4]
    served = [key for page in pages for key in page]
    # Natural order: key2 before key10, and every keyN before test-key.
    assert served == [*KEY_NAMES, "test-key"]


def test_last_page_has_an_empty_token_and_an_exact_fit_ends_there_too(keyed: Api) -> None:
    first = list_keys(keyed, page_size=24)
    assert (len(first.keys), first.next_page_token) == (24, "")
    pages = walk(lambda **kw: list_keys(keyed, **kw), key_ids, 12)
    assert [len(p) for p in pages] == [12, 12]


def test_instances_page_in_natural_id_order_inst2_before_inst10(keyed: Api) -> None:
    pages = walk(lambda **kw: list_instances(keyed, **kw), instance_ids, 3)
    assert [len(p) for p in pages] == [3, 3, 3, 3, 2]
    assert [i for page in pages for i in page] == [f"inst{n}" for n in range(14)]


def test_filtered_walk_pages_over_the_matching_items_only(keyed: Api) -> None:
    pages = walk(lambda **kw: list_instances(keyed, **kw), instance_ids, 2, realm_id="eu")
    assert pages == [["inst3"]]
    pages = walk(
        lambda **kw: list_instances(keyed, **kw),
        instance_ids,
        2,
        state=common_pb2.INSTANCE_STATE_UNSPECIFIED,
        realm_id="us",
    )
    served = [i for page in pages for i in page]
    assert served == [f"inst{n}" for n in range(14) if n != 3]


def test_addresses_page_in_numeric_order(fresh_api: Api) -> None:
    for _ in range(8):
        fresh_api.addresses.CreateAddress(addr_pb.CreateAddressRequest(), metadata=MD)
    pages = walk(
        lambda **kw: fresh_api.addresses.ListAddresses(
            addr_pb.ListAddressesRequest(**kw), metadata=MD
        ),
        lambda r: [a.id for a in r.addresses],
        5,
    )
    assert pages == [
        [f"192.168.0.{n}" for n in range(1, 6)],
        [f"192.168.0.{n}" for n in range(6, 11)],
        ["192.168.0.11", "192.168.0.12"],
    ]


# ---- stability ----------------------------------------------------------------------


def test_walk_stays_complete_and_duplicate_free_while_items_come_and_go(fresh_api: Api) -> None:
    names = [f"k{n}" for n in range(1, 21)]
    for name in names:
        fresh_api.keys.CreateKey(key_pb.CreateKeyRequest(name=name), metadata=MD)

    first = list_keys(fresh_api, page_size=5)
    assert key_ids(first) == ["k1", "k2", "k3", "k4", "k5"]
    served = key_ids(first)
    token = first.next_page_token

    # Between pages: delete one served and one not yet served item, add one before the
    # cursor and one after it.
    fresh_api.keys.DeleteKey(key_pb.DeleteKeyRequest(id="k2"), metadata=MD)
    fresh_api.keys.DeleteKey(key_pb.DeleteKeyRequest(id="k12"), metadata=MD)
    fresh_api.keys.CreateKey(key_pb.CreateKeyRequest(name="k0"), metadata=MD)
    fresh_api.keys.CreateKey(key_pb.CreateKeyRequest(name="k15a"), metadata=MD)

    second = list_keys(fresh_api, page_size=5, page_token=token)
    assert key_ids(second) == ["k6", "k7", "k8", "k9", "k10"]
    served += key_ids(second)
    token = second.next_page_token

    # Delete the very item the cursor points at: the walk must go on after it.
    fresh_api.keys.DeleteKey(key_pb.DeleteKeyRequest(id="k10"), metadata=MD)
    while token:
        response = list_keys(fresh_api, page_size=5, page_token=token)
        served += key_ids(response)
        token = response.next_page_token

    assert len(served) == len(set(served)), "an item was served twice"
    present_throughout = set(names) - {"k2", "k12", "k10"} | {"test-key"}
    assert present_throughout <= set(served)
    assert "k12" not in served  # deleted before its page
    assert "k0" not in served  # created behind the cursor
    assert "k15a" in served  # created ahead of the cursor
    assert served == sorted(served, key=natural)


def test_ids_that_differ_only_in_leading_zeros_are_each_served_once(fresh_api: Api) -> None:
    # Read as numbers, "a01b1" and "a1b01" sort alike; the walk must still serve both,
    # in one order, whatever the page size (a cursor on one of them skipped the other).
    # Digits other than ASCII ones are text ("a1²" failed the whole list as INTERNAL).
    names = ["a01b1", "a1b01", "a1b1", "a001b001", "a01b01", "a1²", "a1٣"]
    for name in names:
        fresh_api.keys.CreateKey(key_pb.CreateKeyRequest(name=name), metadata=MD)
    whole = [i for page in walk(lambda **kw: list_keys(fresh_api, **kw), key_ids, 50) for i in page]
    assert sorted(whole) == sorted([*names, "test-key"])
    for size in (1, 2, 3):
        pages = walk(lambda **kw: list_keys(fresh_api, **kw), key_ids, size)
        assert [i for page in pages for i in page] == whole, f"page_size {size}"


def natural(text: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p]


# ---- page size ----------------------------------------------------------------------


@pytest.fixture
def many_keys(fresh_api: Api) -> Api:
    """A pristine server with 1004 keys: key1..key1003 and the fixture test-key."""
    futures = [
        fresh_api.keys.CreateKey.future(
            key_pb.CreateKeyRequest(name=f"key{n}"), metadata=MD, timeout=30
        )
        for n in range(1, 1004)
    ]
    for future in futures:
        future.result()
    return fresh_api


def test_page_size_0_means_50_and_above_1000_means_1000(many_keys: Api) -> None:
    default = list_keys(many_keys)
    assert key_ids(default) == [f"key{n}" for n in range(1, 51)]
    assert default.next_page_token != ""

    clamped = list_keys(many_keys, page_size=5000)
    assert key_ids(clamped) == [f"key{n}" for n in range(1, 1001)]
    rest = list_keys(many_keys, page_size=5000, page_token=clamped.next_page_token)
    assert (key_ids(rest), rest.next_page_token) == (
        ["key1001", "key1002", "key1003", "test-key"],
        "",
    )
    exact = list_keys(many_keys, page_size=1000)
    assert key_ids(exact) == key_ids(clamped)


@pytest.mark.parametrize("page_size", [-1, -1000])
def test_negative_page_size_is_invalid_argument(api: Api, page_size: int) -> None:
    code, reason = page_error(lambda: list_keys(api, page_size=page_size))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_SIZE")
    code, reason = page_error(
        lambda: api.buckets.ListBuckets(
            bucket_pb.ListBucketsRequest(page_size=page_size), metadata=MD
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_SIZE")


# ---- tokens -------------------------------------------------------------------------


def _flip(token: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[(alphabet.index(token[index]) + 1) % len(alphabet)]
    return token[:index] + replacement + token[index + 1 :]


def _tampered(token: str) -> dict[str, str]:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    forged_payload = raw[:16] + raw[16:].replace(b'"a":"key5"', b'"a":"key9"')
    assert forged_payload != raw, "the token's cursor layout changed; update this test"
    return {
        "first character flipped": _flip(token, 0),
        "middle character flipped": _flip(token, len(token) // 2),
        "last character flipped": _flip(token, len(token) - 1),
        "truncated": token[:-6],
        "extended": token + "AAAA",
        "stray character inserted": token[:10] + "!" + token[10:],
        "random base64": base64.urlsafe_b64encode(os.urandom(48)).decode().rstrip("="),
        "not base64": "!!!not-a-token!!!",
        "cursor changed, signature kept": base64.urlsafe_b64encode(forged_payload)
        .decode()
        .rstrip("="),
    }


def test_tampered_tokens_are_invalid_page_token(keyed: Api) -> None:
    token = list_keys(keyed, page_size=5).next_page_token
    assert token
    for label, bad in _tampered(token).items():
        code, reason = page_error(lambda bad=bad: list_keys(keyed, page_size=5, page_token=bad))
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"), label
    # The genuine token still works.
    assert key_ids(list_keys(keyed, page_size=5, page_token=token)) == KEY_NAMES[5:10]


def test_token_of_another_collection_is_invalid_page_token(keyed: Api) -> None:
    address_token = keyed.addresses.ListAddresses(
        addr_pb.ListAddressesRequest(page_size=2), metadata=MD
    ).next_page_token
    assert address_token
    code, reason = page_error(lambda: list_keys(keyed, page_size=2, page_token=address_token))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")

    blob_token = keyed.buckets.ListBlobs(
        bucket_pb.ListBlobsRequest(bucket_id="bucket1", page_size=1), metadata=MD
    ).next_page_token
    assert blob_token
    code, reason = page_error(
        lambda: keyed.buckets.ListBuckets(
            bucket_pb.ListBucketsRequest(page_size=1, page_token=blob_token), metadata=MD
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


def test_token_reused_with_other_filters_is_invalid_page_token(keyed: Api) -> None:
    api = keyed
    token = list_instances(api, page_size=2, realm_id="us").next_page_token
    assert token
    for filters in [
        {},
        {"realm_id": "eu"},
        {"realm_id": "us", "owner_id": "mockuser"},
        {"realm_id": "us", "state": common_pb2.INSTANCE_STATE_RUNNING},
    ]:
        code, reason = page_error(
            lambda filters=filters: list_instances(api, page_size=2, page_token=token, **filters)
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"), filters
    # The same filters (and another page size) keep working.
    assert instance_ids(list_instances(api, page_size=3, page_token=token, realm_id="us")) == [
        "inst2",
        "inst4",
        "inst5",
    ]

    blob_token = api.buckets.ListBlobs(
        bucket_pb.ListBlobsRequest(bucket_id="bucket1", prefix="blob", page_size=1), metadata=MD
    ).next_page_token
    for request in [
        bucket_pb.ListBlobsRequest(bucket_id="bucket1", prefix="blob1", page_token=blob_token),
        bucket_pb.ListBlobsRequest(bucket_id="bucket2", prefix="blob", page_token=blob_token),
    ]:
        code, reason = page_error(
            lambda request=request: api.buckets.ListBlobs(request, metadata=MD)
        )
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


def test_token_of_another_caller_is_invalid_page_token(fresh_api: Api) -> None:
    """A token names its caller too: alice's token is refused to bob (it would have served
    him his own list from alice's cursor), and still serves alice."""
    for name in ("a1", "a2", "a3"):
        fresh_api.keys.CreateKey(key_pb.CreateKeyRequest(name=name), metadata=ALICE)
    request = key_pb.ListKeysRequest(page_size=1)
    token = fresh_api.keys.ListKeys(request, metadata=ALICE).next_page_token
    assert token
    request.page_token = token
    code, reason = page_error(lambda: fresh_api.keys.ListKeys(request, metadata=BOB))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
    assert [k.id for k in fresh_api.keys.ListKeys(request, metadata=ALICE).keys] == ["a2"]


def test_token_of_another_server_is_invalid_page_token(keyed: Api, fresh_api: Api) -> None:
    """Each data directory signs with its own key."""
    token = list_keys(keyed, page_size=5).next_page_token
    code, reason = page_error(lambda: list_keys(fresh_api, page_size=5, page_token=token))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


def test_servers_sharing_a_page_token_key_continue_each_others_lists(tmp_path: Path) -> None:
    """Two servers behind one address (each its own data directory, one mock cloud) given
    the same --page-token-key: a walk whose pages alternate between them is whole."""
    key = tmp_path / "page-token.key"
    key.write_bytes(os.urandom(32))
    cloud = tmp_path / "cloud"
    servers = [
        ServerProcess(
            tmp_path / name,
            extra_args=["--page-token-key", str(key), "--driver-option", f"mock.data_dir={cloud}"],
        ).start()
        for name in ("a", "b")
    ]
    channels = [s.channel() for s in servers]
    try:
        apis = [Api(c) for c in channels]
        for n in range(1, 8):
            apis[0].keys.CreateKey(key_pb.CreateKeyRequest(name=f"s{n}"), metadata=MD)
        seen: list[str] = []
        token = ""
        for page in range(10):
            response = list_keys(apis[page % 2], page_size=2, page_token=token)
            seen += key_ids(response)
            token = response.next_page_token
            if not token:
                break
        assert seen == [f"s{n}" for n in range(1, 8)] + ["test-key"]
        assert not (servers[0].data_dir / "page-token.key").exists()
    finally:
        for channel in channels:
            channel.close()
        for server in servers:
            server.kill()


@pytest.mark.parametrize(
    ("content", "says"), [(None, "No such file"), (b"short", "5 bytes; a key needs at least 16")]
)
def test_an_unusable_page_token_key_stops_the_start(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    key = tmp_path / "key"
    if content is not None:
        key.write_bytes(content)
    server = ServerProcess(tmp_path / "data", extra_args=["--page-token-key", str(key)])
    with pytest.raises(RuntimeError) as failed:
        server.start()
    assert f"deltacloud-server: --page-token-key {key}: {says}" in str(failed.value)
    assert "Traceback" not in str(failed.value)


def test_token_stays_valid_across_a_server_restart(fresh_server: ServerProcess) -> None:
    channel = grpc.insecure_channel(fresh_server.target)
    api = Api(channel)
    for n in range(1, 8):
        api.keys.CreateKey(key_pb.CreateKeyRequest(name=f"r{n}"), metadata=MD)
    first = list_keys(api, page_size=3)
    assert key_ids(first) == ["r1", "r2", "r3"]
    channel.close()

    assert fresh_server.stop() == 0
    fresh_server.restart()

    channel = grpc.insecure_channel(fresh_server.target)
    try:
        api = Api(channel)
        second = list_keys(api, page_size=3, page_token=first.next_page_token)
        assert key_ids(second) == ["r4", "r5", "r6"]
        third = list_keys(api, page_size=3, page_token=second.next_page_token)
        assert (key_ids(third), third.next_page_token) == (["r7", "test-key"], "")
    finally:
        channel.close()


def test_a_page_too_large_for_one_message_is_cut_short_with_a_token_for_the_rest(
    tmp_path: Path,
) -> None:
    """page_size asks for at most so many items: when they would not fit in the server's
    largest message, the page holds fewer, and its token continues after the last one (a
    response over the limit failed the whole call with RESOURCE_EXHAUSTED)."""
    limit = 500  # the four instances take 527 bytes in one response
    server = ServerProcess(tmp_path, extra_args=["--max-message-bytes", str(limit)]).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            sizes: list[int] = []

            def fetch(**request: Any) -> Any:
                response = list_instances(api, **request)
                sizes.append(response.ByteSize())
                return response

            pages = walk(fetch, instance_ids, page_size=1000)
            assert len(pages) > 1 and all(pages)
            assert [i for page in pages for i in page] == ["inst0", "inst1", "inst2", "inst3"]
            assert max(sizes) <= limit
    finally:
        server.kill()


def test_one_item_larger_than_a_message_is_resource_exhausted_with_error_info(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path, extra_args=["--max-message-bytes", "200"]).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            with pytest.raises(grpc.RpcError) as err:
                list_instances(api, page_size=1)
            f = failure(err.value)
            assert (f.code, f.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RESPONSE_TOO_LARGE")
            assert f.metadata["collection"] == "instances"
            assert int(f.metadata["item_bytes"]) > 150
            realms = api.realms.ListRealms(realm_pb.ListRealmsRequest(), metadata=MD)
            assert realms.realms  # small enough: served
    finally:
        server.kill()


def test_pages_near_the_message_limit_hold_what_fits_with_their_token(tmp_path: Path) -> None:
    """A page is cut where its items and the token for the rest fit in the largest message:
    one item that fits alone is served (a fixed 4 KiB kept for the token refused it, and
    every page reaching it), and a long token is counted at its real size (ids of 400
    characters make tokens of 6 KiB or more, more than was kept: the response broke the
    limit)."""
    limit = 9_500
    server = ServerProcess(tmp_path, extra_args=["--max-message-bytes", str(limit)]).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            api.buckets.CreateBucket(bucket_pb.CreateBucketRequest(name="near"), metadata=MD)

            def put(blob_id: str, metadata: dict[str, str]) -> None:
                head = bucket_pb.UploadBlobHeader(
                    bucket_id="near", blob_id=blob_id, user_metadata=metadata
                )
                api.buckets.UploadBlob(
                    iter([bucket_pb.UploadBlobRequest(header=head)]), metadata=MD
                )

            put("a-big", {"k": "v" * (limit - 1_500)})
            long_ids = [f"b{n}-" + "\U0001d11e" * 400 for n in range(5)]
            for blob_id in long_ids:
                put(blob_id, {})
            sizes: list[int] = []

            def fetch(**request: Any) -> Any:
                response = api.buckets.ListBlobs(
                    bucket_pb.ListBlobsRequest(bucket_id="near", **request), metadata=MD
                )
                sizes.append(response.ByteSize())
                return response

            pages = walk(fetch, lambda r: [b.id for b in r.blobs], page_size=50)
            assert [i for page in pages for i in page] == ["a-big", *long_ids]
            assert max(sizes) <= limit
    finally:
        server.kill()
