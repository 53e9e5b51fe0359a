"""Credentials and tenancy over gRPC: missing, wrong and malformed credentials are refused
before any driver work, and every user's objects are invisible and untouchable to the
others, while the catalog (realms, hardware profiles, images) is shared."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from conftest import Api, ServerProcess

from deltacloud.v1 import address_pb2 as addr_pb
from deltacloud.v1 import bucket_pb2 as bucket_pb
from deltacloud.v1 import common_pb2
from deltacloud.v1 import firewall_pb2 as fw_pb
from deltacloud.v1 import hardware_profile_pb2 as hwp_pb
from deltacloud.v1 import image_pb2 as image_pb
from deltacloud.v1 import instance_pb2 as inst_pb
from deltacloud.v1 import key_pb2 as key_pb
from deltacloud.v1 import load_balancer_pb2 as lb_pb
from deltacloud.v1 import realm_pb2 as realm_pb
from deltacloud.v1 import storage_snapshot_pb2 as snap_pb
from deltacloud.v1 import storage_volume_pb2 as vol_pb
from support import ALICE, BOB, EXTRA_USERS, MD, failure, metadata

Metadata = list[tuple[str, str]]


def rpc_failure(call: Callable[..., Any], request: Any, md: Metadata) -> Any:
    with pytest.raises(grpc.RpcError) as err:
        result = call(request, metadata=md)
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)  # a server stream fails when read
    return failure(err.value)


def key_names(api: Api, md: Metadata = MD) -> list[str]:
    return [k.id for k in api.keys.ListKeys(key_pb.ListKeysRequest(), metadata=md).keys]


# ---- credentials --------------------------------------------------------------------


def test_a_call_without_authorization_is_unauthenticated(api: Api) -> None:
    f = rpc_failure(api.realms.ListRealms, realm_pb.ListRealmsRequest(), [])
    assert (f.code, f.reason, f.domain) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "AUTHENTICATION_FAILED",
        "deltacloud",
    )


def test_an_empty_authorization_value_is_unauthenticated(api: Api) -> None:
    f = rpc_failure(api.keys.ListKeys, key_pb.ListKeysRequest(), [("authorization", "")])
    assert f.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("mockuser", "Wr0ng-Passw0rd-xyz"),
        ("alice", EXTRA_USERS["bob"]),  # another user's password
        ("mallory-the-unknown", "mockpassword"),
        ("", "mockpassword"),
        ("mockuser", ""),
    ],
)
def test_wrong_credentials_are_refused_without_echoing_them(
    api: Api, user: str, password: str
) -> None:
    md = metadata(user, password)
    f = rpc_failure(api.keys.ListKeys, key_pb.ListKeysRequest(), md)
    assert (f.code, f.reason) == (grpc.StatusCode.UNAUTHENTICATED, "AUTHENTICATION_FAILED")
    everything = f.message + repr(f.metadata)
    for secret in (user, password, md[0][1], md[0][1].split(" ")[1]):
        if len(secret) >= 3:
            assert secret not in everything


@pytest.mark.parametrize(
    "value",
    [
        "Basic !!!",
        "Bearer x",
        "Basic " + base64.b64encode(b"mockuser-without-colon").decode(),
        "Basic",
        "Digest " + base64.b64encode(b"mockuser:mockpassword").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),  # not UTF-8
        # Control characters (RFC 7617): "mock\0user" + "x" must not be "mock" + "user\0x".
        "Basic " + base64.b64encode(b"mock\x00user:mockpassword").decode(),
        "Basic " + base64.b64encode(b"mockuser:mockpassword\n").decode(),
    ],
)
def test_malformed_authorization_is_unauthenticated_malformed(api: Api, value: str) -> None:
    f = rpc_failure(api.keys.ListKeys, key_pb.ListKeysRequest(), [("authorization", value)])
    assert (f.code, f.reason) == (grpc.StatusCode.UNAUTHENTICATED, "MALFORMED_AUTHORIZATION")
    assert "mockpassword" not in f.message


def test_scheme_name_is_case_insensitive(api: Api) -> None:
    value = "basic " + base64.b64encode(b"mockuser:mockpassword").decode()
    assert "test-key" in key_names(api, [("authorization", value)])


def test_a_password_containing_colons_is_taken_whole(api: Api) -> None:
    # mockuser's password is "mockpassword"; "mockpassword:extra" must not pass.
    f = rpc_failure(
        api.keys.ListKeys, key_pb.ListKeysRequest(), metadata("mockuser", "mockpassword:extra")
    )
    assert f.code == grpc.StatusCode.UNAUTHENTICATED


def test_bad_credentials_create_nothing(api: Api, server: ServerProcess) -> None:
    bad = metadata("mockuser", "nope")
    f = rpc_failure(api.keys.CreateKey, key_pb.CreateKeyRequest(name="sneaky"), bad)
    assert f.code == grpc.StatusCode.UNAUTHENTICATED
    f = rpc_failure(api.buckets.CreateBucket, bucket_pb.CreateBucketRequest(name="sneaky"), bad)
    assert f.code == grpc.StatusCode.UNAUTHENTICATED
    f = rpc_failure(
        api.instances.CreateInstance, inst_pb.CreateInstanceRequest(image_id="img1"), bad
    )
    assert f.code == grpc.StatusCode.UNAUTHENTICATED
    f = rpc_failure(api.addresses.CreateAddress, addr_pb.CreateAddressRequest(), bad)
    assert f.code == grpc.StatusCode.UNAUTHENTICATED

    assert "sneaky" not in key_names(api)
    buckets = api.buckets.ListBuckets(bucket_pb.ListBucketsRequest(), metadata=MD).buckets
    assert "sneaky" not in [b.id for b in buckets]
    instances = api.instances.ListInstances(inst_pb.ListInstancesRequest(), metadata=MD)
    assert [i.id for i in instances.instances] == ["inst0", "inst1", "inst2", "inst3"]
    addresses = api.addresses.ListAddresses(addr_pb.ListAddressesRequest(), metadata=MD)
    assert len(addresses.addresses) == 4


def test_bad_credentials_are_refused_before_an_upload_is_read(api: Api) -> None:
    def stream() -> Iterator[bucket_pb.UploadBlobRequest]:
        yield bucket_pb.UploadBlobRequest(
            header=bucket_pb.UploadBlobHeader(bucket_id="bucket1", blob_id="blob1")
        )
        yield bucket_pb.UploadBlobRequest(chunk=b"overwritten!")

    with pytest.raises(grpc.RpcError) as err:
        api.buckets.UploadBlob(stream(), metadata=metadata("mockuser", "nope"))
    assert failure(err.value).code == grpc.StatusCode.UNAUTHENTICATED
    content = b"".join(
        m.chunk
        for m in api.buckets.DownloadBlob(
            bucket_pb.DownloadBlobRequest(bucket_id="bucket1", id="blob1"), metadata=MD
        )
    )
    assert content == b"content of blob 1"


def test_bad_credentials_are_refused_even_for_a_missing_object(api: Api) -> None:
    """No probing of ids without valid credentials: NOT_FOUND is never revealed."""
    f = rpc_failure(
        api.instances.GetInstance,
        inst_pb.GetInstanceRequest(id="inst99"),
        metadata("mockuser", "nope"),
    )
    assert f.code == grpc.StatusCode.UNAUTHENTICATED


def test_the_same_channel_serves_each_call_with_its_own_credentials(api: Api) -> None:
    assert "test-key" in key_names(api, MD)
    f = rpc_failure(api.keys.ListKeys, key_pb.ListKeysRequest(), metadata("mockuser", "x"))
    assert f.code == grpc.StatusCode.UNAUTHENTICATED
    assert "test-key" not in key_names(api, ALICE)
    assert "test-key" in key_names(api, MD)


# ---- tenancy: alice's objects -------------------------------------------------------


@dataclass
class World:
    """What alice owns on the module server."""

    instance: str
    key: str
    volume: str
    snapshot: str
    address: str
    bucket: str
    blob: str
    firewall: str
    load_balancer: str


@pytest.fixture(scope="module")
def alice(server: ServerProcess) -> Iterator[World]:
    channel = grpc.insecure_channel(server.target)
    api = Api(channel)
    instance = api.instances.CreateInstance(
        inst_pb.CreateInstanceRequest(image_id="img1", name="alice-vm"), metadata=ALICE
    ).instances[0]
    api.keys.CreateKey(key_pb.CreateKeyRequest(name="alice-key"), metadata=ALICE)
    volume = api.volumes.CreateStorageVolume(
        vol_pb.CreateStorageVolumeRequest(capacity_gb=2), metadata=ALICE
    )
    snapshot = api.snapshots.CreateStorageSnapshot(
        snap_pb.CreateStorageSnapshotRequest(storage_volume_id=volume.id), metadata=ALICE
    )
    address = api.addresses.CreateAddress(addr_pb.CreateAddressRequest(), metadata=ALICE)
    api.buckets.CreateBucket(bucket_pb.CreateBucketRequest(name="alice-bucket"), metadata=ALICE)
    api.buckets.UploadBlob(
        iter(
            [
                bucket_pb.UploadBlobRequest(
                    header=bucket_pb.UploadBlobHeader(
                        bucket_id="alice-bucket", blob_id="diary", user_metadata={"who": "alice"}
                    )
                ),
                bucket_pb.UploadBlobRequest(chunk=b"dear diary"),
            ]
        ),
        metadata=ALICE,
    )
    api.firewalls.CreateFirewall(
        fw_pb.CreateFirewallRequest(name="alice-fw", description="alice's"), metadata=ALICE
    )
    api.load_balancers.CreateLoadBalancer(
        lb_pb.CreateLoadBalancerRequest(
            name="alice-lb",
            realm_ids=["us"],
            listeners=[lb_pb.Listener(protocol="HTTP", load_balancer_port=80, instance_port=80)],
        ),
        metadata=ALICE,
    )
    yield World(
        instance=instance.id,
        key="alice-key",
        volume=volume.id,
        snapshot=snapshot.id,
        address=address.id,
        bucket="alice-bucket",
        blob="diary",
        firewall="alice-fw",
        load_balancer="alice-lb",
    )
    channel.close()


def lists(api: Api, md: Metadata) -> dict[str, set[str]]:
    """The ids every per-user list shows to one user."""
    return {
        "instances": {
            i.id
            for i in api.instances.ListInstances(
                inst_pb.ListInstancesRequest(), metadata=md
            ).instances
        },
        "keys": set(key_names(api, md)),
        "volumes": {
            v.id
            for v in api.volumes.ListStorageVolumes(
                vol_pb.ListStorageVolumesRequest(), metadata=md
            ).storage_volumes
        },
        "snapshots": {
            s.id
            for s in api.snapshots.ListStorageSnapshots(
                snap_pb.ListStorageSnapshotsRequest(), metadata=md
            ).storage_snapshots
        },
        "addresses": {
            a.id
            for a in api.addresses.ListAddresses(
                addr_pb.ListAddressesRequest(), metadata=md
            ).addresses
        },
        "buckets": {
            b.id
            for b in api.buckets.ListBuckets(bucket_pb.ListBucketsRequest(), metadata=md).buckets
        },
        "firewalls": {
            f.id
            for f in api.firewalls.ListFirewalls(
                fw_pb.ListFirewallsRequest(), metadata=md
            ).firewalls
        },
        "load_balancers": {
            b.id
            for b in api.load_balancers.ListLoadBalancers(
                lb_pb.ListLoadBalancersRequest(), metadata=md
            ).load_balancers
        },
    }


def test_alice_lists_exactly_her_own_objects(api: Api, alice: World) -> None:
    assert lists(api, ALICE) == {
        "instances": {alice.instance},
        "keys": {alice.key},
        "volumes": {alice.volume},
        "snapshots": {alice.snapshot},
        "addresses": {alice.address},
        "buckets": {alice.bucket},
        "firewalls": {alice.firewall},
        "load_balancers": {alice.load_balancer},
    }


def test_bob_with_nothing_of_his_own_lists_nothing(api: Api, alice: World) -> None:
    assert lists(api, BOB) == {name: set() for name in lists(api, ALICE)}


def test_mockuser_lists_its_fixtures_and_none_of_alices_objects(api: Api, alice: World) -> None:
    seen = lists(api, MD)
    assert seen["instances"] == {"inst0", "inst1", "inst2", "inst3"}
    assert seen["keys"] == {"test-key"}
    assert seen["volumes"] == {"vol1", "vol2", "vol3"}
    assert seen["snapshots"] == {"snap1", "snap2", "snap3"}
    assert seen["addresses"] == {f"192.168.0.{n}" for n in range(1, 5)}
    assert seen["buckets"] == {"bucket1", "bucket2"}
    assert seen["firewalls"] == set()
    assert seen["load_balancers"] == set()


def others_calls(api: Api, w: World) -> list[tuple[str, Callable[..., Any], Any]]:
    """Every get, delete and action on alice's objects, by name."""
    b = api.buckets
    upload = bucket_pb.UploadBlobRequest
    return [
        ("GetInstance", api.instances.GetInstance, inst_pb.GetInstanceRequest(id=w.instance)),
        ("StopInstance", api.instances.StopInstance, inst_pb.StopInstanceRequest(id=w.instance)),
        (
            "RebootInstance",
            api.instances.RebootInstance,
            inst_pb.RebootInstanceRequest(id=w.instance),
        ),
        ("StartInstance", api.instances.StartInstance, inst_pb.StartInstanceRequest(id=w.instance)),
        (
            "DeleteInstance",
            api.instances.DeleteInstance,
            inst_pb.DeleteInstanceRequest(id=w.instance),
        ),
        (
            "CreateImage",
            api.images.CreateImage,
            image_pb.CreateImageRequest(instance_id=w.instance),
        ),
        ("GetKey", api.keys.GetKey, key_pb.GetKeyRequest(id=w.key)),
        ("DeleteKey", api.keys.DeleteKey, key_pb.DeleteKeyRequest(id=w.key)),
        (
            "GetStorageVolume",
            api.volumes.GetStorageVolume,
            vol_pb.GetStorageVolumeRequest(id=w.volume),
        ),
        (
            "DeleteStorageVolume",
            api.volumes.DeleteStorageVolume,
            vol_pb.DeleteStorageVolumeRequest(id=w.volume),
        ),
        (
            "AttachStorageVolume",
            api.volumes.AttachStorageVolume,
            vol_pb.AttachStorageVolumeRequest(id=w.volume, instance_id="inst1", device="/dev/sdz"),
        ),
        (
            "DetachStorageVolume",
            api.volumes.DetachStorageVolume,
            vol_pb.DetachStorageVolumeRequest(id=w.volume),
        ),
        (
            "CreateStorageVolume from snapshot",
            api.volumes.CreateStorageVolume,
            vol_pb.CreateStorageVolumeRequest(snapshot_id=w.snapshot),
        ),
        (
            "GetStorageSnapshot",
            api.snapshots.GetStorageSnapshot,
            snap_pb.GetStorageSnapshotRequest(id=w.snapshot),
        ),
        (
            "DeleteStorageSnapshot",
            api.snapshots.DeleteStorageSnapshot,
            snap_pb.DeleteStorageSnapshotRequest(id=w.snapshot),
        ),
        (
            "CreateStorageSnapshot",
            api.snapshots.CreateStorageSnapshot,
            snap_pb.CreateStorageSnapshotRequest(storage_volume_id=w.volume),
        ),
        ("GetAddress", api.addresses.GetAddress, addr_pb.GetAddressRequest(id=w.address)),
        ("DeleteAddress", api.addresses.DeleteAddress, addr_pb.DeleteAddressRequest(id=w.address)),
        (
            "AssociateAddress",
            api.addresses.AssociateAddress,
            addr_pb.AssociateAddressRequest(id=w.address, instance_id="inst1"),
        ),
        (
            "DisassociateAddress",
            api.addresses.DisassociateAddress,
            addr_pb.DisassociateAddressRequest(id=w.address),
        ),
        ("GetBucket", b.GetBucket, bucket_pb.GetBucketRequest(id=w.bucket)),
        ("DeleteBucket", b.DeleteBucket, bucket_pb.DeleteBucketRequest(id=w.bucket)),
        ("ListBlobs", b.ListBlobs, bucket_pb.ListBlobsRequest(bucket_id=w.bucket)),
        ("GetBlob", b.GetBlob, bucket_pb.GetBlobRequest(bucket_id=w.bucket, id=w.blob)),
        (
            "DownloadBlob",
            b.DownloadBlob,
            bucket_pb.DownloadBlobRequest(bucket_id=w.bucket, id=w.blob),
        ),
        (
            "GetBlobMetadata",
            b.GetBlobMetadata,
            bucket_pb.GetBlobMetadataRequest(bucket_id=w.bucket, id=w.blob),
        ),
        (
            "UpdateBlobMetadata",
            b.UpdateBlobMetadata,
            bucket_pb.UpdateBlobMetadataRequest(
                bucket_id=w.bucket, id=w.blob, user_metadata={"who": "intruder"}
            ),
        ),
        ("DeleteBlob", b.DeleteBlob, bucket_pb.DeleteBlobRequest(bucket_id=w.bucket, id=w.blob)),
        (
            "UploadBlob",
            lambda req, metadata: b.UploadBlob(iter(req), metadata=metadata),
            [
                upload(header=bucket_pb.UploadBlobHeader(bucket_id=w.bucket, blob_id=w.blob)),
                upload(chunk=b"overwritten"),
            ],
        ),
        ("GetFirewall", api.firewalls.GetFirewall, fw_pb.GetFirewallRequest(id=w.firewall)),
        (
            "DeleteFirewall",
            api.firewalls.DeleteFirewall,
            fw_pb.DeleteFirewallRequest(id=w.firewall),
        ),
        (
            "CreateFirewallRule",
            api.firewalls.CreateFirewallRule,
            fw_pb.CreateFirewallRuleRequest(
                firewall_id=w.firewall,
                protocol="tcp",
                port_from=1,
                port_to=1,
                sources=[fw_pb.FirewallRuleSource(cidr="0.0.0.0/0")],
            ),
        ),
        (
            "GetLoadBalancer",
            api.load_balancers.GetLoadBalancer,
            lb_pb.GetLoadBalancerRequest(id=w.load_balancer),
        ),
        (
            "DeleteLoadBalancer",
            api.load_balancers.DeleteLoadBalancer,
            lb_pb.DeleteLoadBalancerRequest(id=w.load_balancer),
        ),
        (
            "RegisterInstance",
            api.load_balancers.RegisterInstance,
            lb_pb.RegisterInstanceRequest(id=w.load_balancer, instance_id="inst1"),
        ),
        (
            "UnregisterInstance",
            api.load_balancers.UnregisterInstance,
            lb_pb.UnregisterInstanceRequest(id=w.load_balancer, instance_id="inst1"),
        ),
    ]


@pytest.mark.parametrize("intruder", [MD, BOB], ids=["mockuser", "bob"])
def test_other_users_get_not_found_for_every_use_of_alices_objects(
    api: Api, alice: World, intruder: Metadata
) -> None:
    wrong: dict[str, str] = {}
    for name, call, request in others_calls(api, alice):
        f = rpc_failure(call, request, intruder)
        if (f.code, f.reason) != (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND"):
            wrong[name] = f"{f.code.name} {f.reason}"
    assert wrong == {}


def test_alices_objects_are_intact_after_the_intrusions(api: Api, alice: World) -> None:
    # (runs after the intrusion attempts in file order; checks what they could have changed)
    instance = api.instances.GetInstance(
        inst_pb.GetInstanceRequest(id=alice.instance), metadata=ALICE
    )
    assert (instance.name, instance.owner_id) == ("alice-vm", "alice")
    assert instance.state in (common_pb2.INSTANCE_STATE_PENDING, common_pb2.INSTANCE_STATE_RUNNING)
    assert list(instance.storage_volume_ids) == []
    blob_messages = list(
        api.buckets.DownloadBlob(
            bucket_pb.DownloadBlobRequest(bucket_id=alice.bucket, id=alice.blob), metadata=ALICE
        )
    )
    assert dict(blob_messages[0].blob.user_metadata) == {"who": "alice"}
    assert b"".join(m.chunk for m in blob_messages[1:]) == b"dear diary"
    volume = api.volumes.GetStorageVolume(
        vol_pb.GetStorageVolumeRequest(id=alice.volume), metadata=ALICE
    )
    assert (volume.state, volume.instance_id) == (vol_pb.StorageVolume.STATE_AVAILABLE, "")
    address = api.addresses.GetAddress(addr_pb.GetAddressRequest(id=alice.address), metadata=ALICE)
    assert address.instance_id == ""
    fw = api.firewalls.GetFirewall(fw_pb.GetFirewallRequest(id=alice.firewall), metadata=ALICE)
    assert list(fw.rules) == []
    lb = api.load_balancers.GetLoadBalancer(
        lb_pb.GetLoadBalancerRequest(id=alice.load_balancer), metadata=ALICE
    )
    assert list(lb.instance_ids) == []
    assert lists(api, ALICE)["snapshots"] == {alice.snapshot}
    assert lists(api, ALICE)["volumes"] == {alice.volume}
    assert lists(api, MD)["volumes"] == {"vol1", "vol2", "vol3"}
    assert lists(api, MD)["snapshots"] == {"snap1", "snap2", "snap3"}


def test_alice_cannot_use_mockusers_objects(api: Api, alice: World) -> None:
    calls = [
        (api.instances.GetInstance, inst_pb.GetInstanceRequest(id="inst1")),
        (api.instances.StopInstance, inst_pb.StopInstanceRequest(id="inst1")),
        (api.keys.GetKey, key_pb.GetKeyRequest(id="test-key")),
        (
            api.volumes.AttachStorageVolume,
            vol_pb.AttachStorageVolumeRequest(
                id="vol1", instance_id=alice.instance, device="/dev/sdb"
            ),
        ),
        (
            api.volumes.AttachStorageVolume,
            vol_pb.AttachStorageVolumeRequest(
                id=alice.volume, instance_id="inst1", device="/dev/sdb"
            ),
        ),
        (api.volumes.DetachStorageVolume, vol_pb.DetachStorageVolumeRequest(id="vol3")),
        (
            api.snapshots.CreateStorageSnapshot,
            snap_pb.CreateStorageSnapshotRequest(storage_volume_id="vol1"),
        ),
        (
            api.addresses.AssociateAddress,
            addr_pb.AssociateAddressRequest(id="192.168.0.1", instance_id=alice.instance),
        ),
        (
            api.addresses.AssociateAddress,
            addr_pb.AssociateAddressRequest(id=alice.address, instance_id="inst1"),
        ),
        (api.buckets.GetBlob, bucket_pb.GetBlobRequest(bucket_id="bucket1", id="blob1")),
        (
            api.load_balancers.RegisterInstance,
            lb_pb.RegisterInstanceRequest(id=alice.load_balancer, instance_id="inst0"),
        ),
        (
            api.instances.CreateInstance,
            inst_pb.CreateInstanceRequest(image_id="img1", key_name="test-key"),
        ),
    ]
    for call, request in calls:
        f = rpc_failure(call, request, ALICE)
        assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND"), request
    vol3 = api.volumes.GetStorageVolume(vol_pb.GetStorageVolumeRequest(id="vol3"), metadata=MD)
    assert vol3.instance_id == "inst1"


def test_names_are_per_user_so_alice_may_reuse_mockusers_names(api: Api, alice: World) -> None:
    key = api.keys.CreateKey(key_pb.CreateKeyRequest(name="test-key"), metadata=BOB)
    mock_key = api.keys.GetKey(key_pb.GetKeyRequest(id="test-key"), metadata=MD)
    assert key.id == "test-key" and key.fingerprint != mock_key.fingerprint
    bucket = api.buckets.CreateBucket(bucket_pb.CreateBucketRequest(name="bucket1"), metadata=BOB)
    assert bucket.blob_count == 0
    assert (
        api.buckets.GetBucket(bucket_pb.GetBucketRequest(id="bucket1"), metadata=MD).blob_count == 3
    )
    api.buckets.DeleteBucket(bucket_pb.DeleteBucketRequest(id="bucket1"), metadata=BOB)
    api.keys.DeleteKey(key_pb.DeleteKeyRequest(id="test-key"), metadata=BOB)
    assert key_names(api, MD) == ["test-key"]


def test_addresses_are_never_shared_between_users(api: Api, alice: World) -> None:
    assert alice.address not in {f"192.168.0.{n}" for n in range(1, 5)}
    bobs = api.addresses.CreateAddress(addr_pb.CreateAddressRequest(), metadata=BOB)
    assert bobs.id not in lists(api, ALICE)["addresses"] | lists(api, MD)["addresses"]
    api.addresses.DeleteAddress(addr_pb.DeleteAddressRequest(id=bobs.id), metadata=BOB)


# ---- the shared catalog -------------------------------------------------------------


@pytest.mark.parametrize("user", [MD, ALICE, BOB], ids=["mockuser", "alice", "bob"])
def test_realms_profiles_and_images_are_visible_to_every_user(api: Api, user: Metadata) -> None:
    realms = api.realms.ListRealms(realm_pb.ListRealmsRequest(), metadata=user).realms
    assert [(r.id, r.name) for r in realms] == [("eu", "Europe"), ("us", "United States")]
    profiles = api.hardware_profiles.ListHardwareProfiles(
        hwp_pb.ListHardwareProfilesRequest(), metadata=user
    ).hardware_profiles
    assert sorted(p.id for p in profiles) == ["m1-large", "m1-small", "m1-xlarge", "opaque"]
    images = api.images.ListImages(image_pb.ListImagesRequest(), metadata=user).images
    assert [(i.id, i.owner_id) for i in images][:3] == [
        ("img1", "fedoraproject"),
        ("img2", "fedoraproject"),
        ("img3", "mockuser"),
    ]
    assert api.images.GetImage(image_pb.GetImageRequest(id="img3"), metadata=user).name == "JBoss"
    assert api.realms.GetRealm(realm_pb.GetRealmRequest(id="eu"), metadata=user).name == "Europe"


def test_alice_can_launch_from_the_shared_catalog_in_a_shared_realm(api: Api, alice: World) -> None:
    instance = api.instances.GetInstance(
        inst_pb.GetInstanceRequest(id=alice.instance), metadata=ALICE
    )
    assert (instance.image_id, instance.realm_id, instance.hardware_profile_id) == (
        "img1",
        "us",
        "m1-small",
    )
