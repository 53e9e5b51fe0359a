"""The names a client chooses are held to AWS's rules by the EC2 driver, through the real
server against moto's standalone server (which takes names AWS refuses): a create naming
something AWS would refuse is INVALID_ARGUMENT (INVALID_NAME) before any request, and makes
nothing; a lookup of a name no object can have is NOT_FOUND without asking the cloud, even
where moto holds an object by that name (made behind our back, as AWS could not have)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import pytest
from conftest import Api
from ec2_support import MotoServer
from test_ec2_driver import EC2, X86_IMAGE, create, ec2_server, refusal, serving

from deltacloud.v1 import (
    bucket_pb2,
    firewall_pb2,
    image_pb2,
    instance_pb2,
    key_pb2,
    load_balancer_pb2,
    storage_snapshot_pb2,
    storage_volume_pb2,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def ec2_api(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from serving(ec2_server(tmp_path_factory.mktemp("ec2-names"), moto))


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _refused_as_invalid_name(
    call: Callable[..., Any], request: object, option: str, *words: str
) -> None:
    """``call`` is refused INVALID_ARGUMENT (INVALID_NAME) naming ``option``, its message in
    our words (naming the rule: each of ``words``), not the cloud's."""
    f = refusal(call, request)
    assert (f.code, f.reason, f.metadata.get("option")) == (INVALID, "INVALID_NAME", option), (
        request,
        f.code,
        f.reason,
        f.message,
    )
    for word in words:
        assert word in f.message, (word, f.message)
    assert "backend_code" not in f.metadata and len(f.message) < 300, f.message


def _not_found(call: Callable[..., Any], request: object, kind: str, name: str) -> None:
    f = refusal(call, request)
    named = f.metadata.get("resource_id", "")[:500]  # the server clips long values
    assert (f.code, f.metadata.get("resource_type"), named) == (NOT_FOUND, kind, name[:500]), (
        request,
        f.code,
        f.message,
    )
    assert "backend_code" not in f.metadata, f.message


def _asked_about(requests: Sequence[dict[str, Any]], *names: str) -> list[str]:
    """The recorded requests to the cloud that carry one of ``names``."""
    return [
        str(r.get("url"))
        for r in requests
        for name in names
        if name in str(r.get("url")) or name in str(r.get("body") or "")
    ]


# ---- buckets -----------------------------------------------------------------------------


BAD_BUCKETS = [
    ("UPPER", "lower-case"),
    ("192.168.1.1", "IP address"),
    ("ab", "3 to 63"),
    ("b" * 64, "3 to 63"),
    ("my_bucket", "lower-case"),
    ("my..bucket", "adjacent dots"),
    ("-front", "begin and end"),
    ("back-", "begin and end"),
    ("xn--abc", "xn--"),
    ("sthree-abc", "sthree-"),
    ("abc-s3alias", "-s3alias"),
    ("abc--ol-s3", "--ol-s3"),
]


def test_bucket_names_are_held_to_s3s_naming_rules(ec2_api: Api, moto: MotoServer) -> None:
    # moto made "UPPER" and "192.168.1.1" (and refused "ab" in its own words).
    longest = ("n" + uuid.uuid4().hex * 2)[:62] + "9"  # 63 characters
    shortest = f"{uuid.uuid4().hex[0]}.9"  # 3 characters, a dot inside
    made = []
    for name in (longest, shortest):
        made.append(
            ec2_api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name=name), metadata=EC2)
        )
    assert [b.id for b in made] == [longest, shortest]
    for name, rule in BAD_BUCKETS:
        request = bucket_pb2.CreateBucketRequest(name=name)
        _refused_as_invalid_name(ec2_api.buckets.CreateBucket, request, "name", name[:20], rule)
    held = {b["Name"] for b in moto.client("s3").list_buckets()["Buckets"]}
    assert not held & {name for name, _ in BAD_BUCKETS}
    for bucket in made:
        ec2_api.buckets.DeleteBucket(bucket_pb2.DeleteBucketRequest(id=bucket.id), metadata=EC2)


def _bucket_lookups(api: Api, name: str) -> list[tuple[Callable[..., Any], object]]:
    buckets = api.buckets
    return [
        (buckets.GetBucket, bucket_pb2.GetBucketRequest(id=name)),
        (buckets.ListBlobs, bucket_pb2.ListBlobsRequest(bucket_id=name)),
        (buckets.GetBlob, bucket_pb2.GetBlobRequest(bucket_id=name, id="b")),
        (
            lambda request, **kw: list(buckets.DownloadBlob(request, **kw)),
            bucket_pb2.DownloadBlobRequest(bucket_id=name, id="b"),
        ),
        (
            buckets.UpdateBlobMetadata,
            bucket_pb2.UpdateBlobMetadataRequest(bucket_id=name, id="b", user_metadata={"k": "v"}),
        ),
        (buckets.DeleteBlob, bucket_pb2.DeleteBlobRequest(bucket_id=name, id="b")),
        (buckets.DeleteBucket, bucket_pb2.DeleteBucketRequest(id=name)),
    ]


def test_lookups_of_a_bucket_name_no_bucket_can_have_are_not_found_unasked(
    ec2_api: Api, moto: MotoServer
) -> None:
    """No bucket of AWS can be named as an IP address, have 2 characters or begin with a
    hyphen, even under the rules of us-east-1 before 2018: such a lookup is NOT_FOUND and
    S3 is not asked (moto held the IP-named bucket, and answered the lookups of it)."""
    s3 = moto.client("s3")
    octet = int(uuid.uuid4().hex[:2], 16)
    impossible = f"10.{octet}.{octet}.9"
    legacy = f"Legacy_{_tag()}"  # upper case and an underscore: a bucket of before 2018
    for name in (impossible, legacy):
        s3.create_bucket(Bucket=name)
    try:
        with moto.recording() as requests:
            for name in (impossible, "zq", "-zqlead"):
                for call, request in _bucket_lookups(ec2_api, name):
                    _not_found(call, request, "bucket", name)
        assert not _asked_about(requests, impossible, "/zq", "-zqlead")
        # A name only the old rules allowed is still looked up: such buckets exist.
        got = ec2_api.buckets.GetBucket(bucket_pb2.GetBucketRequest(id=legacy), metadata=EC2)
        assert got.id == legacy
    finally:
        for name in (impossible, legacy):
            s3.delete_bucket(Bucket=name)


# ---- blobs and their metadata ------------------------------------------------------------


def _upload(api: Api, bucket: str, blob: str, **header: Any) -> bucket_pb2.Blob:
    first = bucket_pb2.UploadBlobHeader(bucket_id=bucket, blob_id=blob, **header)
    requests = [
        bucket_pb2.UploadBlobRequest(header=first),
        bucket_pb2.UploadBlobRequest(chunk=b"x"),
    ]
    return api.buckets.UploadBlob(iter(requests), metadata=EC2, timeout=30)  # type: ignore[no-any-return]


@pytest.fixture
def bucket(ec2_api: Api) -> str:
    name = f"names-{_tag()}"
    ec2_api.buckets.CreateBucket(bucket_pb2.CreateBucketRequest(name=name), metadata=EC2)
    return name


def test_blob_ids_are_at_most_1024_bytes_of_utf8(ec2_api: Api, bucket: str) -> None:
    longest = "k" * 1022 + "\u00e9"  # 1023 characters, 1024 bytes
    assert _upload(ec2_api, bucket, longest).id == longest
    buckets = ec2_api.buckets
    for blob in ("k" * 1025, "\u00e9" * 513, "\u2603" * 342):  # 1025, 1026, 1026 bytes
        header = bucket_pb2.UploadBlobHeader(bucket_id=bucket, blob_id=blob)
        requests = iter([bucket_pb2.UploadBlobRequest(header=header)])
        _refused_as_invalid_name(buckets.UploadBlob, requests, "blob_id", "1024 bytes")
        for call, request in [
            (buckets.GetBlob, bucket_pb2.GetBlobRequest(bucket_id=bucket, id=blob)),
            (buckets.DeleteBlob, bucket_pb2.DeleteBlobRequest(bucket_id=bucket, id=blob)),
            (
                lambda request, **kw: list(buckets.DownloadBlob(request, **kw)),
                bucket_pb2.DownloadBlobRequest(bucket_id=bucket, id=blob),
            ),
            (
                buckets.UpdateBlobMetadata,
                bucket_pb2.UpdateBlobMetadataRequest(
                    bucket_id=bucket, id=blob, user_metadata={"k": "v"}
                ),
            ),
        ]:
            _not_found(call, request, "blob", blob)
    listed = buckets.ListBlobs(bucket_pb2.ListBlobsRequest(bucket_id=bucket), metadata=EC2)
    assert [b.id for b in listed.blobs] == [longest]


def test_user_metadata_s3_would_merge_or_refuse_is_refused(ec2_api: Api, bucket: str) -> None:
    # S3 keeps 2 KB of keys and values, and keys differing in case as one header; moto kept
    # both as given.
    largest = {"colour": "x" * 2042}  # 6 + 2042 = 2048 bytes
    assert dict(_upload(ec2_api, bucket, "b", user_metadata=largest).user_metadata) == largest
    for metadata, reason in [
        ({"colour": "x" * 2043}, "METADATA_TOO_LARGE"),
        ({"a": "x" * 1000, "b": "y" * 1047}, "METADATA_TOO_LARGE"),  # 2049 bytes
        ({"Colour": "blue", "colour": "red"}, "INVALID_METADATA_KEY"),
    ]:
        header = bucket_pb2.UploadBlobHeader(bucket_id=bucket, blob_id="c", user_metadata=metadata)
        f = refusal(ec2_api.buckets.UploadBlob, iter([bucket_pb2.UploadBlobRequest(header=header)]))
        assert (f.code, f.reason, f.metadata.get("option")) == (INVALID, reason, "user_metadata")
        f = refusal(
            ec2_api.buckets.UpdateBlobMetadata,
            bucket_pb2.UpdateBlobMetadataRequest(bucket_id=bucket, id="b", user_metadata=metadata),
        )
        assert (f.code, f.reason, f.metadata.get("option")) == (INVALID, reason, "user_metadata")
    got = ec2_api.buckets.GetBlob(bucket_pb2.GetBlobRequest(bucket_id=bucket, id="b"), metadata=EC2)
    assert dict(got.user_metadata) == largest
    f = refusal(ec2_api.buckets.GetBlob, bucket_pb2.GetBlobRequest(bucket_id=bucket, id="c"))
    assert f.code == NOT_FOUND


# ---- load balancers ----------------------------------------------------------------------


def _balancer(name: str) -> load_balancer_pb2.CreateLoadBalancerRequest:
    return load_balancer_pb2.CreateLoadBalancerRequest(
        name=name,
        realm_ids=["us-east-1a"],
        listeners=[
            load_balancer_pb2.Listener(protocol="tcp", load_balancer_port=80, instance_port=80)
        ],
    )


def test_load_balancer_names_are_held_to_elbs_rules(ec2_api: Api, moto: MotoServer) -> None:
    balancers = ec2_api.load_balancers
    longest = f"L-{uuid.uuid4().hex[:29]}9"  # 32 characters
    made = balancers.CreateLoadBalancer(_balancer(longest), metadata=EC2, timeout=15)
    assert made.id == longest
    bad = [
        ("bad!name", "letters, digits and hyphens"),
        ("under_score", "letters, digits and hyphens"),
        ("dot.name", "letters, digits and hyphens"),
        ("with space", "letters, digits and hyphens"),
        ("L" * 33, "1 to 32"),
        ("-front", "hyphen"),
        ("back-", "hyphen"),
    ]
    for name, rule in bad:
        _refused_as_invalid_name(balancers.CreateLoadBalancer, _balancer(name), "name", rule)
    held = moto.client("elb").describe_load_balancers()["LoadBalancerDescriptions"]
    assert not {d["LoadBalancerName"] for d in held} & {name for name, _ in bad}
    balancers.DeleteLoadBalancer(
        load_balancer_pb2.DeleteLoadBalancerRequest(id=longest), metadata=EC2
    )


def test_lookups_of_a_load_balancer_name_elb_refuses_are_not_found(
    ec2_api: Api, moto: MotoServer
) -> None:
    elb = moto.client("elb")
    odd = f"odd_{_tag()}!"
    elb.create_load_balancer(
        LoadBalancerName=odd,
        Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 80}],
        AvailabilityZones=["us-east-1a"],
    )
    balancers = ec2_api.load_balancers
    try:
        for call, request in [
            (balancers.GetLoadBalancer, load_balancer_pb2.GetLoadBalancerRequest(id=odd)),
            (balancers.DeleteLoadBalancer, load_balancer_pb2.DeleteLoadBalancerRequest(id=odd)),
            (
                balancers.RegisterInstance,
                load_balancer_pb2.RegisterInstanceRequest(id=odd, instance_id="i-0"),
            ),
        ]:
            _not_found(call, request, "load_balancer", odd)
    finally:
        elb.delete_load_balancer(LoadBalancerName=odd)


# ---- firewalls ---------------------------------------------------------------------------


def test_firewall_names_and_descriptions_are_held_to_ec2s_rules(ec2_api: Api) -> None:
    firewalls = ec2_api.firewalls
    punctuation = " ._-:/()#,@[]+=&;{}!$*"
    name = (f"web{punctuation}{_tag()}" + "n" * 255)[:255]
    description = (f"Web servers{punctuation}" + "d" * 255)[:255]
    made = firewalls.CreateFirewall(
        firewall_pb2.CreateFirewallRequest(name=name, description=description), metadata=EC2
    )
    assert (made.name, made.description) == (name, description)
    for bad, rule in [
        ("f" * 300, "at most 255"),
        ("f" * 256, "at most 255"),
        ("sg-web", "sg-"),
        ("caf\u00e9", "ASCII"),
        ("pipe|name", "letters, digits, spaces"),
        ("quote'name", "letters, digits, spaces"),
    ]:
        request = firewall_pb2.CreateFirewallRequest(name=bad, description="d")
        _refused_as_invalid_name(firewalls.CreateFirewall, request, "name", rule)
    for bad, rule in [
        ("d" * 256, "at most 255"),
        ("two\nlines", "letters, digits, spaces"),  # the server lets descriptions break lines
        ("na\u00efve", "ASCII"),
    ]:
        request = firewall_pb2.CreateFirewallRequest(name=f"ok-{_tag()}", description=bad)
        _refused_as_invalid_name(firewalls.CreateFirewall, request, "description", rule)
    firewalls.DeleteFirewall(firewall_pb2.DeleteFirewallRequest(id=made.id), metadata=EC2)


# ---- keys --------------------------------------------------------------------------------


def test_key_names_are_at_most_255_ascii_characters(ec2_api: Api) -> None:
    keys = ec2_api.keys
    longest = (f"key {_tag()} " + "k" * 255)[:255]
    made = keys.CreateKey(key_pb2.CreateKeyRequest(name=longest), metadata=EC2)
    assert made.id == longest
    for bad, rule in [
        ("k" * 256, "1 to 255"),
        ("cl\u00e9", "ASCII"),
        ("\u043a\u043b\u044e\u0447", "ASCII"),
    ]:
        _refused_as_invalid_name(keys.CreateKey, key_pb2.CreateKeyRequest(name=bad), "name", rule)
        imported = key_pb2.CreateKeyRequest(name=bad, public_key="ssh-ed25519 AAAA me@laptop")
        _refused_as_invalid_name(keys.CreateKey, imported, "name", rule)
    keys.DeleteKey(key_pb2.DeleteKeyRequest(id=longest), metadata=EC2)


def test_lookups_of_a_key_name_ec2_refuses_are_not_found(ec2_api: Api, moto: MotoServer) -> None:
    ec2 = moto.client("ec2")
    odd = f"cl\u00e9-{_tag()}"
    ec2.create_key_pair(KeyName=odd)
    try:
        _not_found(ec2_api.keys.GetKey, key_pb2.GetKeyRequest(id=odd), "key", odd)
        _not_found(ec2_api.keys.DeleteKey, key_pb2.DeleteKeyRequest(id=odd), "key", odd)
        request = instance_pb2.CreateInstanceRequest(image_id=X86_IMAGE, key_name=odd)
        _not_found(ec2_api.instances.CreateInstance, request, "key", odd)
    finally:
        ec2.delete_key_pair(KeyName=odd)


# ---- images ------------------------------------------------------------------------------


def test_image_names_are_held_to_ec2s_rules(ec2_api: Api, moto: MotoServer) -> None:
    instance = create(ec2_api)
    try:
        longest = (f"web ()[]./-'@_{_tag()}" + "i" * 128)[:128]
        request = image_pb2.CreateImageRequest(instance_id=instance.id, name=longest)
        image = ec2_api.images.CreateImage(request, metadata=EC2, timeout=15)
        assert image.name == longest
        for bad, rule in [
            ("ab", "3 to 128"),
            ("web!1", "letters, digits, spaces"),
            ("n\u00e9v", "ASCII"),
            ("a,b,c", "letters, digits, spaces"),
        ]:
            request = image_pb2.CreateImageRequest(instance_id=instance.id, name=bad)
            _refused_as_invalid_name(ec2_api.images.CreateImage, request, "name", rule)
        ec2_api.images.DeleteImage(image_pb2.DeleteImageRequest(id=image.id), metadata=EC2)
    finally:
        moto.client("ec2").terminate_instances(InstanceIds=[instance.id])


# ---- names kept as tags ------------------------------------------------------------------


def test_a_snapshot_name_is_a_tag_value_of_at_most_256_characters(ec2_api: Api) -> None:
    # Instances' and volumes' names are held to it by their features' max_length (the
    # server's CONSTRAINT_VIOLATED); a snapshot's name has no feature, and moto kept 300.
    volume = ec2_api.volumes.CreateStorageVolume(
        storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=1), metadata=EC2, timeout=15
    )
    longest = (f"nightly {_tag()} " + "s" * 256)[:256]
    snapshot = ec2_api.snapshots.CreateStorageSnapshot(
        storage_snapshot_pb2.CreateStorageSnapshotRequest(
            storage_volume_id=volume.id, name=longest
        ),
        metadata=EC2,
        timeout=15,
    )
    assert snapshot.name == longest
    for bad in ("s" * 257, "s" * 300):
        request = storage_snapshot_pb2.CreateStorageSnapshotRequest(
            storage_volume_id=volume.id, name=bad
        )
        _refused_as_invalid_name(
            ec2_api.snapshots.CreateStorageSnapshot, request, "name", "256 characters"
        )
    snapshots = ec2_api.snapshots.ListStorageSnapshots(
        storage_snapshot_pb2.ListStorageSnapshotsRequest(storage_volume_id=volume.id),
        metadata=EC2,
    ).storage_snapshots
    assert [s.id for s in snapshots] == [snapshot.id]
