"""StorageVolumeService and StorageSnapshotService over gRPC: the mock's volume and snapshot
fixtures, filters, create, attach/detach and delete with their refusals."""

from __future__ import annotations

import grpc
import pytest
from conftest import Api
from google.protobuf import empty_pb2

from deltacloud.v1 import image_pb2, instance_pb2
from deltacloud.v1 import storage_snapshot_pb2 as snap_pb
from deltacloud.v1 import storage_volume_pb2 as pb
from support import MD, failure

Vol = pb.StorageVolume
Snap = snap_pb.StorageSnapshot


def volumes(api: Api, **filters: object) -> dict[str, pb.StorageVolume]:
    response = api.volumes.ListStorageVolumes(pb.ListStorageVolumesRequest(**filters), metadata=MD)
    assert response.next_page_token == ""
    return {v.id: v for v in response.storage_volumes}


def volume(api: Api, volume_id: str) -> pb.StorageVolume:
    return api.volumes.GetStorageVolume(pb.GetStorageVolumeRequest(id=volume_id), metadata=MD)


def create_volume(api: Api, **fields: object) -> pb.StorageVolume:
    return api.volumes.CreateStorageVolume(pb.CreateStorageVolumeRequest(**fields), metadata=MD)


def attach(api: Api, volume_id: str, instance_id: str, device: str) -> pb.StorageVolume:
    return api.volumes.AttachStorageVolume(
        pb.AttachStorageVolumeRequest(id=volume_id, instance_id=instance_id, device=device),
        metadata=MD,
    )


def detach(api: Api, volume_id: str) -> pb.StorageVolume:
    return api.volumes.DetachStorageVolume(pb.DetachStorageVolumeRequest(id=volume_id), metadata=MD)


def instance_volume_ids(api: Api, instance_id: str) -> list[str]:
    inst = api.instances.GetInstance(instance_pb2.GetInstanceRequest(id=instance_id), metadata=MD)
    return list(inst.storage_volume_ids)


def snapshots(api: Api, **filters: object) -> dict[str, snap_pb.StorageSnapshot]:
    response = api.snapshots.ListStorageSnapshots(
        snap_pb.ListStorageSnapshotsRequest(**filters), metadata=MD
    )
    assert response.next_page_token == ""
    return {s.id: s for s in response.storage_snapshots}


def error_of(call, request) -> object:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        call(request, metadata=MD)
    return failure(err.value)


# ---- volume fixtures and filters ----------------------------------------------------


def test_volume_fixtures_vol1_vol2_available_and_vol3_attached_to_inst1(api: Api) -> None:
    found = {
        v.id: (v.capacity_gb, v.state, v.realm_id, v.instance_id, v.device)
        for v in volumes(api).values()
    }
    assert found == {
        "vol1": (1, Vol.STATE_AVAILABLE, "us", "", ""),
        "vol2": (1, Vol.STATE_AVAILABLE, "us", "", ""),
        "vol3": (1, Vol.STATE_IN_USE, "us", "inst1", "/dev/sda1"),
    }


def test_get_volume_returns_the_fixture(api: Api) -> None:
    vol3 = volume(api, "vol3")
    assert (vol3.id, vol3.state, vol3.instance_id, vol3.device) == (
        "vol3",
        Vol.STATE_IN_USE,
        "inst1",
        "/dev/sda1",
    )
    assert vol3.HasField("create_time")


def test_inst1_reports_vol3_among_its_storage_volumes(api: Api) -> None:
    assert instance_volume_ids(api, "inst1") == ["vol3"]


def test_get_unknown_volume_is_not_found(api: Api) -> None:
    f = error_of(api.volumes.GetStorageVolume, pb.GetStorageVolumeRequest(id="vol99"))
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


def test_state_filter_keeps_only_volumes_in_that_state(api: Api) -> None:
    assert sorted(volumes(api, state=Vol.STATE_IN_USE)) == ["vol3"]
    assert sorted(volumes(api, state=Vol.STATE_AVAILABLE)) == ["vol1", "vol2"]
    assert volumes(api, state=Vol.STATE_ERROR) == {}


def test_realm_filter_keeps_only_volumes_of_that_realm(api: Api) -> None:
    assert sorted(volumes(api, realm_id="us")) == ["vol1", "vol2", "vol3"]
    assert volumes(api, realm_id="eu") == {}


def test_id_filter_and_combined_filters(api: Api) -> None:
    assert list(volumes(api, id="vol2")) == ["vol2"]
    assert volumes(api, id="vol2", state=Vol.STATE_IN_USE) == {}
    assert list(volumes(api, realm_id="us", state=Vol.STATE_IN_USE)) == ["vol3"]


# ---- snapshot fixtures --------------------------------------------------------------


def test_snapshot_fixtures_are_completed_snapshots_of_vol1_and_vol2(api: Api) -> None:
    found = {s.id: (s.storage_volume_id, s.state) for s in snapshots(api).values()}
    assert found == {
        "snap1": ("vol1", Snap.STATE_COMPLETED),
        "snap2": ("vol2", Snap.STATE_COMPLETED),
        "snap3": ("vol2", Snap.STATE_COMPLETED),
    }


def test_snapshot_volume_filter(api: Api) -> None:
    assert sorted(snapshots(api, storage_volume_id="vol2")) == ["snap2", "snap3"]
    assert sorted(snapshots(api, storage_volume_id="vol1")) == ["snap1"]
    assert snapshots(api, storage_volume_id="vol3") == {}
    assert list(snapshots(api, id="snap3")) == ["snap3"]


def test_get_snapshot_and_unknown_snapshot(api: Api) -> None:
    snap = api.snapshots.GetStorageSnapshot(
        snap_pb.GetStorageSnapshotRequest(id="snap1"), metadata=MD
    )
    assert (snap.id, snap.storage_volume_id, snap.state) == ("snap1", "vol1", Snap.STATE_COMPLETED)
    f = error_of(api.snapshots.GetStorageSnapshot, snap_pb.GetStorageSnapshotRequest(id="snap99"))
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


# ---- volume create ------------------------------------------------------------------


def test_create_volume_with_capacity_realm_name_and_description(api: Api) -> None:
    vol = create_volume(
        api, capacity_gb=5, realm_id="eu", name="data", description="for the database"
    )
    assert vol.id.startswith("vol") and vol.id not in {"vol1", "vol2", "vol3"}
    assert (vol.capacity_gb, vol.realm_id, vol.name, vol.description) == (
        5,
        "eu",
        "data",
        "for the database",
    )
    assert (vol.state, vol.instance_id, vol.device) == (Vol.STATE_AVAILABLE, "", "")
    assert volume(api, vol.id) == vol
    assert vol.id in volumes(api, realm_id="eu")


@pytest.mark.parametrize("bad", ["two\nlines", "bell\x07", "x" * 256])
@pytest.mark.parametrize("what", ["volume name", "snapshot name", "image name", "device"])
def test_names_and_devices_with_control_characters_or_too_long_are_refused(
    api: Api, what: str, bad: str
) -> None:
    """A line break in a name broke every table and log showing it; a name had no bound."""
    calls = {
        "volume name": (
            api.volumes.CreateStorageVolume,
            pb.CreateStorageVolumeRequest(capacity_gb=1, name=bad),
        ),
        "snapshot name": (
            api.snapshots.CreateStorageSnapshot,
            snap_pb.CreateStorageSnapshotRequest(storage_volume_id="vol1", name=bad),
        ),
        "image name": (
            api.images.CreateImage,
            image_pb2.CreateImageRequest(instance_id="inst0", name=bad),
        ),
        "device": (
            api.volumes.AttachStorageVolume,
            pb.AttachStorageVolumeRequest(id="vol1", instance_id="inst0", device=bad),
        ),
    }
    before = (set(volumes(api)), set(snapshots(api)))
    f = error_of(*calls[what])
    field = what.split()[-1]
    if len(bad) > 255:  # the mock's bound
        assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")
        assert f.metadata["option"] == field
    else:  # the server's check, for every driver
        assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TEXT")
        assert f.metadata["field"] == field
    assert bad not in f.message
    assert (set(volumes(api)), set(snapshots(api))) == before
    assert volume(api, "vol1").state == Vol.STATE_AVAILABLE


def test_create_volume_without_realm_uses_the_first_realm(api: Api) -> None:
    vol = create_volume(api, capacity_gb=2)
    assert (vol.capacity_gb, vol.realm_id) == (2, "us")


def test_create_volume_from_a_snapshot_takes_the_source_volume_size(api: Api) -> None:
    vol = create_volume(api, snapshot_id="snap1")
    assert (vol.capacity_gb, vol.state) == (1, Vol.STATE_AVAILABLE)


def test_a_snapshot_keeps_its_size_and_its_volume_id_is_never_given_again(fresh_api: Api) -> None:
    api = fresh_api
    big = create_volume(api, capacity_gb=50)
    snap = api.snapshots.CreateStorageSnapshot(
        snap_pb.CreateStorageSnapshotRequest(storage_volume_id=big.id), metadata=MD
    )
    api.snapshots.DeleteStorageSnapshot(
        snap_pb.DeleteStorageSnapshotRequest(id="snap3"), metadata=MD
    )
    api.volumes.DeleteStorageVolume(pb.DeleteStorageVolumeRequest(id=big.id), metadata=MD)
    # The volume is gone: a volume made of its snapshot still gets the size taken (it got
    # 1 GB), and a new volume or snapshot does not take a deleted one's id.
    assert create_volume(api, snapshot_id=snap.id).capacity_gb == 50
    newcomer = create_volume(api, capacity_gb=500)
    assert newcomer.id != big.id
    assert snapshots(api, storage_volume_id=newcomer.id) == {}
    again = api.snapshots.CreateStorageSnapshot(
        snap_pb.CreateStorageSnapshotRequest(storage_volume_id="vol1"), metadata=MD
    )
    assert again.id not in {"snap3", snap.id}
    assert set(snapshots(api, storage_volume_id=big.id)) == {snap.id}


def test_a_volume_smaller_than_its_snapshot_is_invalid_capacity(api: Api) -> None:
    big = create_volume(api, capacity_gb=8)
    snap = api.snapshots.CreateStorageSnapshot(
        snap_pb.CreateStorageSnapshotRequest(storage_volume_id=big.id), metadata=MD
    )
    f = error_of(
        api.volumes.CreateStorageVolume,
        pb.CreateStorageVolumeRequest(snapshot_id=snap.id, capacity_gb=4),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CAPACITY")
    assert create_volume(api, snapshot_id=snap.id, capacity_gb=16).capacity_gb == 16


def test_create_volume_with_negative_capacity_is_invalid_argument(api: Api) -> None:
    before = sorted(volumes(api))
    f = error_of(api.volumes.CreateStorageVolume, pb.CreateStorageVolumeRequest(capacity_gb=-1))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f.reason == "INVALID_CAPACITY"
    assert sorted(volumes(api)) == before


def test_create_volume_without_capacity_or_snapshot_is_invalid_argument(api: Api) -> None:
    before = sorted(volumes(api))
    f = error_of(api.volumes.CreateStorageVolume, pb.CreateStorageVolumeRequest(realm_id="us"))
    assert (f.code, f.reason, f.metadata.get("field")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        "capacity_gb",
    )
    assert sorted(volumes(api)) == before


def test_create_volume_in_unknown_realm_or_from_unknown_snapshot_is_not_found(api: Api) -> None:
    f = error_of(
        api.volumes.CreateStorageVolume,
        pb.CreateStorageVolumeRequest(capacity_gb=1, realm_id="mars"),
    )
    assert (f.code, f.metadata.get("resource_type")) == (grpc.StatusCode.NOT_FOUND, "realm")
    f = error_of(
        api.volumes.CreateStorageVolume, pb.CreateStorageVolumeRequest(snapshot_id="snap99")
    )
    assert (f.code, f.metadata.get("resource_id")) == (grpc.StatusCode.NOT_FOUND, "snap99")


# ---- attach and detach --------------------------------------------------------------


def test_attach_marks_the_volume_in_use_and_the_instance_lists_it(api: Api) -> None:
    vol = create_volume(api, capacity_gb=1)
    attached = attach(api, vol.id, "inst2", "/dev/sdf")
    assert (attached.id, attached.state, attached.instance_id, attached.device) == (
        vol.id,
        Vol.STATE_IN_USE,
        "inst2",
        "/dev/sdf",
    )
    assert volume(api, vol.id) == attached
    assert vol.id in instance_volume_ids(api, "inst2")
    assert vol.id in volumes(api, state=Vol.STATE_IN_USE)


def test_attach_an_in_use_volume_is_refused_with_volume_in_use(api: Api) -> None:
    f = error_of(
        api.volumes.AttachStorageVolume,
        pb.AttachStorageVolumeRequest(id="vol3", instance_id="inst2", device="/dev/sdg"),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VOLUME_IN_USE")
    vol3 = volume(api, "vol3")
    assert (vol3.instance_id, vol3.device) == ("inst1", "/dev/sda1")


def test_attach_to_an_unknown_instance_is_not_found(api: Api) -> None:
    vol = create_volume(api, capacity_gb=1)
    f = error_of(
        api.volumes.AttachStorageVolume,
        pb.AttachStorageVolumeRequest(id=vol.id, instance_id="inst99", device="/dev/sdf"),
    )
    assert (f.code, f.metadata.get("resource_id")) == (grpc.StatusCode.NOT_FOUND, "inst99")
    assert volume(api, vol.id).state == Vol.STATE_AVAILABLE


def test_attach_to_an_instance_in_another_realm_is_refused(api: Api) -> None:
    vol = create_volume(api, capacity_gb=1, realm_id="eu")
    f = error_of(
        api.volumes.AttachStorageVolume,
        pb.AttachStorageVolumeRequest(id=vol.id, instance_id="inst2", device="/dev/sdf"),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REALM_MISMATCH")
    assert volume(api, vol.id).state == Vol.STATE_AVAILABLE
    # inst3 is in eu: the same volume attaches there.
    assert attach(api, vol.id, "inst3", "/dev/sdf").instance_id == "inst3"


@pytest.mark.parametrize("missing", ["id", "instance_id", "device"])
def test_attach_without_a_required_field_is_invalid_argument(api: Api, missing: str) -> None:
    fields = {"id": "vol1", "instance_id": "inst2", "device": "/dev/sdf"} | {missing: ""}
    f = error_of(api.volumes.AttachStorageVolume, pb.AttachStorageVolumeRequest(**fields))
    assert (f.code, f.reason, f.metadata.get("field")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        missing,
    )


def test_detach_clears_instance_and_device_and_the_instance_no_longer_lists_it(
    api: Api,
) -> None:
    vol = create_volume(api, capacity_gb=1)
    attach(api, vol.id, "inst0", "/dev/sdh")
    assert vol.id in instance_volume_ids(api, "inst0")
    detached = detach(api, vol.id)
    assert (detached.state, detached.instance_id, detached.device) == (Vol.STATE_AVAILABLE, "", "")
    assert volume(api, vol.id) == detached
    assert vol.id not in instance_volume_ids(api, "inst0")


def test_detach_a_free_volume_is_refused_with_volume_not_attached(api: Api) -> None:
    f = error_of(api.volumes.DetachStorageVolume, pb.DetachStorageVolumeRequest(id="vol1"))
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VOLUME_NOT_ATTACHED")
    assert volume(api, "vol1").state == Vol.STATE_AVAILABLE


def test_detach_unknown_volume_is_not_found(api: Api) -> None:
    f = error_of(api.volumes.DetachStorageVolume, pb.DetachStorageVolumeRequest(id="vol99"))
    assert f.code == grpc.StatusCode.NOT_FOUND


# ---- delete -------------------------------------------------------------------------


def test_delete_an_in_use_volume_is_refused(api: Api) -> None:
    f = error_of(api.volumes.DeleteStorageVolume, pb.DeleteStorageVolumeRequest(id="vol3"))
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "VOLUME_IN_USE")
    assert volume(api, "vol3").state == Vol.STATE_IN_USE


def test_delete_a_free_volume_removes_it(api: Api) -> None:
    vol = create_volume(api, capacity_gb=3)
    result = api.volumes.DeleteStorageVolume(pb.DeleteStorageVolumeRequest(id=vol.id), metadata=MD)
    assert result == empty_pb2.Empty()
    assert vol.id not in volumes(api)
    f = error_of(api.volumes.GetStorageVolume, pb.GetStorageVolumeRequest(id=vol.id))
    assert f.code == grpc.StatusCode.NOT_FOUND
    f = error_of(api.volumes.DeleteStorageVolume, pb.DeleteStorageVolumeRequest(id=vol.id))
    assert f.code == grpc.StatusCode.NOT_FOUND


# ---- snapshot create and delete -----------------------------------------------------


def test_create_snapshot_of_a_volume(api: Api) -> None:
    snap = api.snapshots.CreateStorageSnapshot(
        snap_pb.CreateStorageSnapshotRequest(
            storage_volume_id="vol1", name="nightly", description="before upgrade"
        ),
        metadata=MD,
    )
    assert snap.id.startswith("snap") and snap.id not in {"snap1", "snap2", "snap3"}
    assert (snap.storage_volume_id, snap.name, snap.description, snap.state) == (
        "vol1",
        "nightly",
        "before upgrade",
        Snap.STATE_COMPLETED,
    )
    assert sorted(snapshots(api, storage_volume_id="vol1")) == sorted(["snap1", snap.id])


def test_create_snapshot_of_unknown_volume_is_not_found(api: Api) -> None:
    before = sorted(snapshots(api))
    f = error_of(
        api.snapshots.CreateStorageSnapshot,
        snap_pb.CreateStorageSnapshotRequest(storage_volume_id="vol99"),
    )
    assert (f.code, f.reason, f.metadata.get("resource_id")) == (
        grpc.StatusCode.NOT_FOUND,
        "RESOURCE_NOT_FOUND",
        "vol99",
    )
    assert sorted(snapshots(api)) == before


def test_create_snapshot_without_volume_is_invalid_argument(api: Api) -> None:
    f = error_of(api.snapshots.CreateStorageSnapshot, snap_pb.CreateStorageSnapshotRequest())
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MISSING_FIELD")


def test_delete_snapshot_removes_it(api: Api) -> None:
    snap = api.snapshots.CreateStorageSnapshot(
        snap_pb.CreateStorageSnapshotRequest(storage_volume_id="vol2"), metadata=MD
    )
    api.snapshots.DeleteStorageSnapshot(
        snap_pb.DeleteStorageSnapshotRequest(id=snap.id), metadata=MD
    )
    assert sorted(snapshots(api, storage_volume_id="vol2")) == ["snap2", "snap3"]
    f = error_of(
        api.snapshots.DeleteStorageSnapshot, snap_pb.DeleteStorageSnapshotRequest(id=snap.id)
    )
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")


def test_fixture_volumes_and_snapshots_are_unchanged_at_the_end(api: Api) -> None:
    """Runs last: the mutating tests above used volumes and snapshots of their own."""
    vols = volumes(api)
    assert {
        k: (v.state, v.instance_id) for k, v in vols.items() if k in ("vol1", "vol2", "vol3")
    } == {
        "vol1": (Vol.STATE_AVAILABLE, ""),
        "vol2": (Vol.STATE_AVAILABLE, ""),
        "vol3": (Vol.STATE_IN_USE, "inst1"),
    }
    assert {"snap1", "snap2", "snap3"} <= set(snapshots(api))


def test_an_absurd_capacity_is_invalid_argument_not_a_crash(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.volumes.CreateStorageVolume(
            pb.CreateStorageVolumeRequest(capacity_gb=2**63 - 1), metadata=MD
        )
    f = failure(caught.value)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CAPACITY")
