"""Direct tests of the mock driver class (no gRPC): fixtures, tenancy, persistence,
automatic transitions, state machine refusals, concurrency, blobs and every behaviour of
the mock's collections."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from deltacloud.drivers import (
    ActionNotAllowedError,
    AlreadyExistsError,
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    CallContext,
    ConflictError,
    Credentials,
    DriverConfig,
    DriverError,
    DriverRegistry,
    FeatureNotSupportedError,
    HardwareOverrides,
    InstanceState,
    InternalDriverError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    PropertyKind,
    PropertyValidationError,
    ResourceExhaustedError,
    ValidationError,
)
from deltacloud.drivers import models as m
from deltacloud.drivers.mock import MockDriver

MOCK = CallContext(Credentials("mockuser", "mockpassword"), "default")
ALICE = CallContext(Credentials("alice", "secret"), "default")
BOB = CallContext(Credentials("bob", "pw:with:colons"), "default")

FAST = {
    "pending_delay": "0.05",
    "stopping_delay": "0.05",
    "users": "alice:secret,bob:pw:with:colons",
}


def make_driver(data_dir: Path, **options: str) -> MockDriver:
    return MockDriver("default", DriverConfig(data_dir, {**FAST, **options}))


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[MockDriver]:
    d = make_driver(tmp_path)
    yield d
    d.close()


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[MockDriver]:
    """A driver whose transitional states last long enough to act on them."""
    d = make_driver(tmp_path, pending_delay="60", stopping_delay="60")
    yield d
    d.close()


def wait_for_state(
    d: MockDriver, ctx: CallContext, instance_id: str, state: InstanceState
) -> m.Instance:
    deadline = time.monotonic() + 3
    while True:
        inst = d.get_instance(ctx, instance_id)
        if inst.state == state or time.monotonic() > deadline:
            return inst
        time.sleep(0.02)


def create_one(d: MockDriver, ctx: CallContext = MOCK, **kwargs: object) -> m.Instance:
    opts = m.CreateInstance(image_id=str(kwargs.pop("image_id", "img1")), **kwargs)  # type: ignore[arg-type]
    return d.create_instance(ctx, opts)[0]


def running_instance(d: MockDriver, ctx: CallContext = MOCK) -> str:
    inst = create_one(d, ctx)
    assert wait_for_state(d, ctx, inst.id, InstanceState.RUNNING).state == InstanceState.RUNNING
    return inst.id


def stopped_instance(d: MockDriver, ctx: CallContext = MOCK) -> str:
    instance_id = running_instance(d, ctx)
    d.stop_instance(ctx, instance_id)
    assert wait_for_state(d, ctx, instance_id, InstanceState.STOPPED).state == InstanceState.STOPPED
    return instance_id


# ---- declaration ------------------------------------------------------------------------


def test_driver_is_registered_under_the_name_mock() -> None:
    assert DriverRegistry().load("mock") is MockDriver


def test_declares_every_collection_and_one_default_provider() -> None:
    from deltacloud.drivers import COLLECTIONS

    assert set(COLLECTIONS) == MockDriver.collections
    assert [p.id for p in MockDriver.providers()] == ["default"]
    for collection in COLLECTIONS:
        assert MockDriver.operations(collection) == list(COLLECTIONS[collection].operations)


def test_features_lack_register_to_load_balancer_and_cap_user_name() -> None:
    assert MockDriver.feature("instances", "register_to_load_balancer") is None
    for name in ("user_name", "user_data", "authentication_key", "firewalls", "instance_count"):
        assert MockDriver.feature("instances", name) is not None
    for collection, name in [
        ("images", "image_name"),
        ("images", "image_description"),
        ("keys", "import_key"),
        ("storage_volumes", "volume_name"),
        ("storage_volumes", "volume_description"),
        ("storage_volumes", "volume_from_snapshot"),
        ("buckets", "bucket_location"),
    ]:
        assert MockDriver.feature(collection, name) is not None
    user_name = MockDriver.feature("instances", "user_name")
    assert user_name is not None and user_name.constraints == {"max_length": "64"}


def test_state_machine_goes_through_pending_and_stopping() -> None:
    machine = MockDriver.instance_states
    assert machine is not None
    S = InstanceState
    assert [a.value for a in machine.allowed_actions(S.RUNNING)] == ["reboot", "stop"]
    assert [a.value for a in machine.allowed_actions(S.STOPPED)] == ["start", "destroy"]
    assert machine.allowed_actions(S.PENDING) == []
    assert machine.automatic_targets(S.PENDING) == [S.RUNNING]
    assert machine.automatic_targets(S.STOPPING) == [S.STOPPED]


def test_hardware_profiles_match_the_reference(driver: MockDriver) -> None:
    profiles = {p.id: p for p in driver.list_hardware_profiles(MOCK, {})}
    assert list(profiles) == ["m1-small", "m1-large", "m1-xlarge", "opaque"]
    small = profiles["m1-small"]
    assert all(p.kind is PropertyKind.FIXED for p in small.properties().values())
    assert [
        small.properties()[k].default for k in ("cpu", "memory", "storage", "architecture")
    ] == [
        1,
        1740.8,
        160,
        "i386",
    ]
    large = profiles["m1-large"]
    assert large.cpu is not None and (large.cpu.kind, large.cpu.first, large.cpu.last) == (
        PropertyKind.RANGE,
        1,
        6,
    )
    assert large.cpu.default == 1
    assert large.memory is not None and (large.memory.first, large.memory.last) == (7680, 15360)
    assert large.memory.default == 10240
    assert large.storage is not None and large.storage.values == (850, 1024)
    assert large.architecture_label == "x86_64"
    xlarge = profiles["m1-xlarge"]
    assert xlarge.cpu is not None and xlarge.cpu.kind is PropertyKind.FIXED
    assert xlarge.cpu.default == 4
    assert xlarge.memory is not None and (xlarge.memory.first, xlarge.memory.last) == (
        12288,
        32768,
    )
    assert xlarge.storage is not None and xlarge.storage.values == (1024, 2048, 4096)
    assert profiles["opaque"].properties() == {}
    assert [p.id for p in driver.list_hardware_profiles(MOCK, {"architecture": "x86_64"})] == [
        "m1-large",
        "m1-xlarge",
    ]
    with pytest.raises(NotFoundError):
        driver.get_hardware_profile(MOCK, "m9-huge")


def test_default_hardware_profile_is_m1_small_like_the_original(driver: MockDriver) -> None:
    assert driver.default_hardware_profile_id(MOCK, "img1") == "m1-small"
    with pytest.raises(NotFoundError):
        driver.default_hardware_profile_id(MOCK, "img99")


# ---- credentials ------------------------------------------------------------------------


def test_authenticate_accepts_mockuser_and_configured_users(driver: MockDriver) -> None:
    for ctx in (MOCK, ALICE, BOB):
        driver.authenticate(ctx)


@pytest.mark.parametrize(
    ("user", "password"),
    [("mockuser", "wrong"), ("nobody", "mockpassword"), ("", ""), ("alice", "mockpassword")],
)
def test_authenticate_refuses_bad_credentials_without_echoing_them(
    driver: MockDriver, user: str, password: str
) -> None:
    ctx = CallContext(Credentials(user, password), "default")
    with pytest.raises(AuthenticationError) as info:
        driver.authenticate(ctx)
    text = str(info.value) + repr(info.value.metadata)
    for secret in filter(None, (user, password)):
        assert secret not in text


def test_every_operation_rechecks_credentials(driver: MockDriver) -> None:
    bad = CallContext(Credentials("mockuser", "nope"), "default")
    with pytest.raises(AuthenticationError):
        driver.list_instances(bad, {})
    with pytest.raises(AuthenticationError):
        driver.create_key(bad, m.CreateKey("k"))


def test_malformed_users_option_is_refused_without_echoing_passwords(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        make_driver(tmp_path, users="alice:secret,brokenentry")
    assert "secret" not in str(info.value)
    with pytest.raises(ValueError):
        make_driver(tmp_path, pending_delay="soon")


# ---- fixtures ---------------------------------------------------------------------------


def test_realm_fixtures(driver: MockDriver) -> None:
    realms = driver.list_realms(MOCK, {})
    assert [(r.id, r.name, r.state) for r in realms] == [
        ("us", "United States", "AVAILABLE"),
        ("eu", "Europe", "AVAILABLE"),
    ]
    assert driver.get_realm(ALICE, "eu").name == "Europe"
    with pytest.raises(NotFoundError):
        driver.get_realm(MOCK, "mars")


@pytest.mark.parametrize(
    ("realm_id", "error"),
    [
        ("400", ValidationError),
        ("401", AuthenticationError),
        ("403", PermissionDeniedError),
        ("404", NotFoundError),
        ("405", ActionNotAllowedError),
        ("409", ConflictError),
        ("429", ResourceExhaustedError),
        ("500", InternalDriverError),
        ("501", NotSupportedError),
        ("502", BackendError),
        ("503", BackendUnavailableError),
        ("504", BackendTimeoutError),
    ],
)
def test_failing_realm_ids_raise_the_requested_error(
    driver: MockDriver, realm_id: str, error: type[DriverError]
) -> None:
    with pytest.raises(error) as info:
        driver.get_realm(MOCK, realm_id)
    assert type(info.value) is error
    with pytest.raises(error):
        driver.list_realms(MOCK, {"id": realm_id})


def test_failing_realm_502_carries_the_backend_code(driver: MockDriver) -> None:
    with pytest.raises(BackendError) as info:
        driver.get_realm(MOCK, "502")
    assert info.value.metadata["backend_code"] == "502"


def test_image_fixtures(driver: MockDriver) -> None:
    images = {i.id: i for i in driver.list_images(MOCK, {})}
    assert {k: (v.name, v.architecture, v.owner_id, v.state) for k, v in images.items()} == {
        "img1": ("Fedora 10", "x86_64", "fedoraproject", "AVAILABLE"),
        "img2": ("Fedora 10", "i386", "fedoraproject", "AVAILABLE"),
        "img3": ("JBoss", "i386", "mockuser", "AVAILABLE"),
    }
    assert all(i.description for i in images.values())
    assert "m1-large" in images["img1"].hardware_profile_ids
    assert "m1-small" not in images["img1"].hardware_profile_ids
    assert [i.id for i in driver.list_images(MOCK, {"owner_id": "fedoraproject"})] == [
        "img1",
        "img2",
    ]


def test_instance_fixtures(driver: MockDriver) -> None:
    instances = {i.id: i for i in driver.list_instances(MOCK, {})}
    assert list(instances) == ["inst0", "inst1", "inst2", "inst3"]
    summary = {
        i.id: (i.name, i.image_id, i.hardware_profile_id, i.realm_id, i.state, i.owner_id)
        for i in instances.values()
    }
    R = InstanceState.RUNNING
    assert summary == {
        "inst0": ("Mock Instance With Profile Change", "img1", "m1-large", "us", R, "mockuser"),
        "inst1": ("MockUserInstance", "img3", "m1-small", "us", R, "mockuser"),
        "inst2": ("AnotherInstance", "img1", "m1-large", "us", R, "mockuser"),
        "inst3": ("", "img3", "m1-small", "eu", R, "mockuser"),
    }
    assert instances["inst0"].hardware_profile_overrides == HardwareOverrides(memory=12288)
    assert not instances["inst2"].hardware_profile_overrides
    inst1 = instances["inst1"]
    assert [(a.address, a.type) for a in inst1.public_addresses] == [
        ("img3.inst1.public.com", "hostname")
    ]
    assert [(a.address, a.type) for a in inst1.private_addresses] == [
        ("img3.inst1.private.com", "hostname")
    ]
    assert inst1.storage_volume_ids == ["vol3"]
    assert instances["inst0"].storage_volume_ids == []


def test_key_fixture_has_fingerprint_and_no_private_key(driver: MockDriver) -> None:
    [key] = driver.list_keys(MOCK, {})
    assert (key.id, key.credential_type, key.pem_rsa_key) == ("test-key", "KEY", "")
    assert key.public_key.startswith("ssh-rsa ")
    assert len(key.fingerprint.split(":")) == 16


def test_volume_and_snapshot_fixtures(driver: MockDriver) -> None:
    volumes = {v.id: v for v in driver.list_storage_volumes(MOCK, {})}
    assert {
        k: (v.capacity_gb, v.state, v.realm_id, v.instance_id, v.device) for k, v in volumes.items()
    } == {
        "vol1": (1, "AVAILABLE", "us", "", ""),
        "vol2": (1, "AVAILABLE", "us", "", ""),
        "vol3": (1, "IN_USE", "us", "inst1", "/dev/sda1"),
    }
    snaps = {s.id: (s.storage_volume_id, s.state) for s in driver.list_storage_snapshots(MOCK, {})}
    assert snaps == {
        "snap1": ("vol1", "COMPLETED"),
        "snap2": ("vol2", "COMPLETED"),
        "snap3": ("vol2", "COMPLETED"),
    }


def test_address_fixtures_are_unassociated(driver: MockDriver) -> None:
    addresses = driver.list_addresses(MOCK, {})
    assert [(a.id, a.instance_id) for a in addresses] == [
        (f"192.168.0.{n}", "") for n in range(1, 5)
    ]


def test_bucket_and_blob_fixtures(driver: MockDriver) -> None:
    buckets = {b.id: b.blob_count for b in driver.list_buckets(MOCK, {})}
    assert buckets == {"bucket1": 3, "bucket2": 2}
    assert [b.id for b in driver.list_blobs(MOCK, "bucket1", {})] == ["blob1", "blob2", "blob3"]
    assert [b.id for b in driver.list_blobs(MOCK, "bucket2", {})] == ["blob4", "blob5"]
    blob1 = driver.get_blob(MOCK, "bucket1", "blob1")
    assert (blob1.content_type, blob1.content_length, blob1.user_metadata) == (
        "text/plain",
        len(b"content of blob 1"),
        {"SOMENEWKEY": "NEWVALUE"},
    )
    assert b"".join(driver.get_blob_content(MOCK, "bucket1", "blob1")) == b"content of blob 1"
    assert b"".join(driver.get_blob_content(MOCK, "bucket2", "blob5")) == b"content of blob 5"
    assert driver.get_blob(MOCK, "bucket2", "blob4").user_metadata == {}


def test_firewalls_and_load_balancers_start_empty(driver: MockDriver) -> None:
    assert driver.list_firewalls(MOCK, {}) == []
    assert driver.list_load_balancers(MOCK, {}) == []


def test_datetimes_are_timezone_aware_utc(driver: MockDriver) -> None:
    stamps = [
        driver.get_instance(MOCK, "inst0").launch_time,
        create_one(driver).launch_time,
        driver.get_image(MOCK, "img1").create_time,
        driver.get_storage_volume(MOCK, "vol1").create_time,
        driver.get_blob(MOCK, "bucket1", "blob1").last_modified,
    ]
    for stamp in stamps:
        assert stamp is not None and stamp.utcoffset() == timedelta(0)


# ---- tenancy ----------------------------------------------------------------------------


def test_other_users_see_none_of_mockusers_objects(driver: MockDriver) -> None:
    assert driver.list_instances(ALICE, {}) == []
    assert driver.list_keys(ALICE, {}) == []
    assert driver.list_storage_volumes(ALICE, {}) == []
    assert driver.list_storage_snapshots(ALICE, {}) == []
    assert driver.list_addresses(ALICE, {}) == []
    assert driver.list_buckets(ALICE, {}) == []
    for call in (
        lambda: driver.get_instance(ALICE, "inst1"),
        lambda: driver.get_key(ALICE, "test-key"),
        lambda: driver.get_storage_volume(ALICE, "vol1"),
        lambda: driver.get_storage_snapshot(ALICE, "snap1"),
        lambda: driver.get_address(ALICE, "192.168.0.1"),
        lambda: driver.get_bucket(ALICE, "bucket1"),
        lambda: driver.get_blob(ALICE, "bucket1", "blob1"),
        lambda: driver.get_blob_content(ALICE, "bucket1", "blob1"),
        lambda: driver.reboot_instance(ALICE, "inst1"),
        lambda: driver.delete_storage_volume(ALICE, "vol1"),
        lambda: driver.delete_key(ALICE, "test-key"),
        lambda: driver.associate_address(ALICE, "192.168.0.1", "inst0"),
        lambda: driver.create_image(ALICE, m.CreateImage("inst1")),
    ):
        with pytest.raises(NotFoundError):
            call()


def test_shared_collections_are_visible_to_everyone(driver: MockDriver) -> None:
    assert [i.id for i in driver.list_images(ALICE, {})] == ["img1", "img2", "img3"]
    assert [r.id for r in driver.list_realms(ALICE, {})] == ["us", "eu"]


def test_users_cannot_use_each_others_objects(driver: MockDriver) -> None:
    alice_inst = running_instance(driver, ALICE)
    driver.create_firewall(ALICE, m.CreateFirewall("web", "alice's"))
    driver.create_load_balancer(ALICE, m.CreateLoadBalancer("lb"))
    assert [i.id for i in driver.list_instances(ALICE, {})] == [alice_inst]
    assert alice_inst not in {i.id for i in driver.list_instances(MOCK, {})}
    with pytest.raises(NotFoundError):
        driver.get_instance(MOCK, alice_inst)
    with pytest.raises(NotFoundError):
        driver.get_firewall(MOCK, "web")
    with pytest.raises(NotFoundError):
        driver.get_load_balancer(BOB, "lb")
    with pytest.raises(NotFoundError):
        driver.attach_storage_volume(MOCK, "vol1", alice_inst, "/dev/sdb")
    with pytest.raises(NotFoundError):
        driver.register_instance(ALICE, "lb", "inst0")
    with pytest.raises(NotFoundError):
        create_one(driver, ALICE, key_name="test-key")


def test_names_are_per_user_so_nothing_leaks(driver: MockDriver) -> None:
    assert driver.create_bucket(ALICE, m.CreateBucket("bucket1")).blob_count == 0
    assert driver.create_key(ALICE, m.CreateKey("test-key")).id == "test-key"
    assert driver.get_bucket(MOCK, "bucket1").blob_count == 3


# ---- instances --------------------------------------------------------------------------


def test_create_lands_in_pending_then_runs_after_the_delay(driver: MockDriver) -> None:
    inst = create_one(driver)
    assert (inst.id, inst.state) == ("inst4", InstanceState.PENDING)
    assert inst.owner_id == "mockuser" and inst.realm_id == "us"
    assert [a.address for a in inst.public_addresses] == ["img1.inst4.public.com"]
    assert (
        wait_for_state(driver, MOCK, "inst4", InstanceState.RUNNING).state == InstanceState.RUNNING
    )


def test_pending_state_lasts_the_configured_delay(slow: MockDriver) -> None:
    inst = create_one(slow)
    time.sleep(0.1)
    assert slow.get_instance(MOCK, inst.id).state == InstanceState.PENDING
    assert [i.id for i in slow.list_instances(MOCK, {"state": "pending"})] == [inst.id]


def test_instance_ids_are_first_free_and_global_over_users(driver: MockDriver) -> None:
    ids = [i.id for i in driver.create_instance(MOCK, m.CreateInstance("img1", instance_count=3))]
    assert ids == ["inst4", "inst5", "inst6"]
    assert create_one(driver, ALICE).id == "inst7"
    driver.stop_instance(MOCK, wait_for_state(driver, MOCK, "inst5", InstanceState.RUNNING).id)
    wait_for_state(driver, MOCK, "inst5", InstanceState.STOPPED)
    driver.destroy_instance(MOCK, "inst5")
    assert create_one(driver, BOB).id == "inst5"


def test_create_records_options(driver: MockDriver) -> None:
    driver.create_firewall(MOCK, m.CreateFirewall("fw", "desc"))
    inst = create_one(
        driver,
        image_id="img3",
        realm_id="eu",
        hardware_profile_id="m1-large",
        hardware_profile_overrides=HardwareOverrides(cpu=4, memory=10240),
        name="web",
        key_name="test-key",
        user_data=b"#!/bin/sh\n",
        firewall_ids=["fw"],
    )
    got = driver.get_instance(MOCK, inst.id)
    assert (got.name, got.image_id, got.realm_id, got.key_name, got.firewall_ids) == (
        "web",
        "img3",
        "eu",
        "test-key",
        ["fw"],
    )
    # the default (memory 10240) is not recorded as an override
    assert got.hardware_profile_overrides == HardwareOverrides(cpu=4)
    assert got.hardware_profile_id == "m1-large"


@pytest.mark.parametrize(
    ("kwargs", "resource"),
    [
        ({"image_id": "img99"}, "image"),
        ({"realm_id": "mars"}, "realm"),
        ({"key_name": "nokey"}, "key"),
        ({"firewall_ids": ["nofw"]}, "firewall"),
    ],
)
def test_create_refuses_unknown_references(
    driver: MockDriver, kwargs: dict[str, object], resource: str
) -> None:
    with pytest.raises(NotFoundError) as info:
        create_one(driver, **kwargs)
    assert info.value.resource_type == resource
    assert [i.id for i in driver.list_instances(MOCK, {})] == ["inst0", "inst1", "inst2", "inst3"]


def test_create_enforces_the_user_name_max_length(driver: MockDriver) -> None:
    assert create_one(driver, name="x" * 64).name == "x" * 64
    with pytest.raises(ValidationError) as info:
        create_one(driver, name="x" * 65)
    assert info.value.metadata["option"] == "name"


def test_create_refuses_load_balancer_option_and_bad_profiles(driver: MockDriver) -> None:
    with pytest.raises(FeatureNotSupportedError):
        create_one(driver, load_balancer_id="lb")
    with pytest.raises(ValidationError):
        create_one(driver, hardware_profile_id="m9-huge")
    with pytest.raises(PropertyValidationError):
        create_one(
            driver,
            hardware_profile_id="m1-large",
            hardware_profile_overrides=HardwareOverrides(cpu=7),
        )
    with pytest.raises(ValidationError):
        driver.create_instance(MOCK, m.CreateInstance("img1", instance_count=0))


def test_stop_goes_through_stopping_then_start_runs_again(driver: MockDriver) -> None:
    instance_id = running_instance(driver)
    assert driver.stop_instance(MOCK, instance_id).state == InstanceState.STOPPING
    assert wait_for_state(driver, MOCK, instance_id, InstanceState.STOPPED).state == (
        InstanceState.STOPPED
    )
    assert driver.start_instance(MOCK, instance_id).state == InstanceState.RUNNING


def test_reboot_keeps_the_instance_running(driver: MockDriver) -> None:
    before = driver.get_instance(MOCK, "inst0")
    after = driver.reboot_instance(MOCK, "inst0")
    assert after == before


@pytest.mark.parametrize(
    ("action", "allowed"),
    [("start", ["reboot", "stop"]), ("destroy", ["reboot", "stop"])],
)
def test_actions_not_allowed_when_running_are_refused(
    driver: MockDriver, action: str, allowed: list[str]
) -> None:
    with pytest.raises(ActionNotAllowedError) as info:
        getattr(driver, f"{action}_instance")(MOCK, "inst0")
    assert info.value.metadata == {
        "instance_id": "inst0",
        "action": action,
        "state": "running",
        "allowed_actions": ",".join(allowed),
    }
    assert driver.get_instance(MOCK, "inst0").state == InstanceState.RUNNING


def test_no_action_is_allowed_while_pending_or_stopping(slow: MockDriver) -> None:
    inst = create_one(slow)
    for action in ("start", "stop", "reboot", "destroy"):
        with pytest.raises(ActionNotAllowedError):
            getattr(slow, f"{action}_instance")(MOCK, inst.id)
    slow.stop_instance(MOCK, "inst0")
    with pytest.raises(ActionNotAllowedError) as info:
        slow.start_instance(MOCK, "inst0")
    assert info.value.metadata["state"] == "stopping"


def test_destroy_returns_finish_and_removes_the_instance(driver: MockDriver) -> None:
    instance_id = stopped_instance(driver)
    gone = driver.destroy_instance(MOCK, instance_id)
    assert (gone.id, gone.state) == (instance_id, InstanceState.FINISH)
    with pytest.raises(NotFoundError):
        driver.get_instance(MOCK, instance_id)
    with pytest.raises(NotFoundError):
        driver.start_instance(MOCK, instance_id)


def test_destroy_releases_volumes_addresses_and_balancer_slots(driver: MockDriver) -> None:
    driver.create_load_balancer(MOCK, m.CreateLoadBalancer("lb"))
    driver.register_instance(MOCK, "lb", "inst1")
    driver.associate_address(MOCK, "192.168.0.2", "inst1")
    driver.stop_instance(MOCK, "inst1")
    wait_for_state(driver, MOCK, "inst1", InstanceState.STOPPED)
    driver.destroy_instance(MOCK, "inst1")
    vol3 = driver.get_storage_volume(MOCK, "vol3")
    assert (vol3.state, vol3.instance_id, vol3.device) == ("AVAILABLE", "", "")
    assert driver.get_address(MOCK, "192.168.0.2").instance_id == ""
    assert driver.get_load_balancer(MOCK, "lb").instance_ids == []


def test_list_instances_applies_filters(driver: MockDriver) -> None:
    assert [i.id for i in driver.list_instances(MOCK, {"realm_id": "eu"})] == ["inst3"]
    assert [i.id for i in driver.list_instances(MOCK, {"id": "inst2"})] == ["inst2"]
    assert driver.list_instances(MOCK, {"id": "inst99"}) == []
    assert driver.list_instances(ALICE, {"id": "inst2"}) == []


# ---- persistence and concurrency --------------------------------------------------------


def test_state_survives_a_new_driver_on_the_same_data_dir(tmp_path: Path) -> None:
    first = make_driver(tmp_path)
    inst = create_one(first, ALICE)
    first.create_key(MOCK, m.CreateKey("saved"))
    first.delete_key(MOCK, "test-key")
    first.put_blob(MOCK, m.PutBlob("bucket2", "kept", iter([b"abc"])))
    first.close()
    second = make_driver(tmp_path)
    try:
        assert [i.id for i in second.list_instances(ALICE, {})] == [inst.id]
        # fixtures are seeded once: a deleted fixture stays deleted
        assert [k.id for k in second.list_keys(MOCK, {})] == ["saved"]
        assert b"".join(second.get_blob_content(MOCK, "bucket2", "kept")) == b"abc"
    finally:
        second.close()
    with sqlite3.connect(tmp_path / "mock" / "mock.sqlite3") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_automatic_transitions_persist_and_resume_after_restart(tmp_path: Path) -> None:
    first = make_driver(tmp_path, pending_delay="0.2")
    inst = create_one(first)
    first.close()
    time.sleep(0.25)
    second = make_driver(tmp_path, pending_delay="0.2")
    try:
        assert second.get_instance(MOCK, inst.id).state == InstanceState.RUNNING
    finally:
        second.close()


def test_writes_survive_kill_9(tmp_path: Path) -> None:
    script = f"""
import os, signal
from pathlib import Path
from deltacloud.drivers import CallContext, Credentials, DriverConfig
from deltacloud.drivers import models as m
from deltacloud.drivers.mock import MockDriver
d = MockDriver("default", DriverConfig(Path({str(tmp_path)!r}), {{}}))
ctx = CallContext(Credentials("mockuser", "mockpassword"), "default")
d.create_key(ctx, m.CreateKey("durable"))
d.put_blob(ctx, m.PutBlob("bucket1", "durable", iter([b"x" * 1000])))
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    d = make_driver(tmp_path)
    try:
        assert driver_has_key(d, "durable")
        assert b"".join(d.get_blob_content(MOCK, "bucket1", "durable")) == b"x" * 1000
    finally:
        d.close()


def driver_has_key(d: MockDriver, key_id: str) -> bool:
    return key_id in {k.id for k in d.list_keys(MOCK, {})}


PER_THREAD = 10


def test_concurrent_creates_get_distinct_ids_and_all_persist(driver: MockDriver) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)
    driver.list_instances(MOCK, {})  # open the store first, as a running server would have

    def work(n: int) -> None:
        ctx = (MOCK, ALICE)[n % 2]
        try:
            barrier.wait()
            for _ in range(PER_THREAD):
                ids = [i.id for i in driver.create_instance(ctx, m.CreateInstance("img1"))]
                addr = driver.create_address(ctx).id
                with lock:
                    results.extend([*ids, addr])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    instance_ids = [r for r in results if r.startswith("inst")]
    ips = [r for r in results if not r.startswith("inst")]
    assert len(instance_ids) == len(set(instance_ids)) == 8 * PER_THREAD
    assert len(ips) == len(set(ips)) == 8 * PER_THREAD
    present = {i.id for i in driver.list_instances(MOCK, {})} | {
        i.id for i in driver.list_instances(ALICE, {})
    }
    assert set(instance_ids) <= present
    assert len(present) == 4 + 8 * PER_THREAD


# ---- keys -------------------------------------------------------------------------------


def test_generated_key_returns_the_private_key_only_once(driver: MockDriver) -> None:
    key = driver.create_key(MOCK, m.CreateKey("gen"))
    assert key.pem_rsa_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert key.pem_rsa_key.rstrip().endswith("-----END RSA PRIVATE KEY-----")
    assert driver.create_key(MOCK, m.CreateKey("gen2")).pem_rsa_key != key.pem_rsa_key
    assert driver.get_key(MOCK, "gen").pem_rsa_key == ""
    assert all(k.pem_rsa_key == "" for k in driver.list_keys(MOCK, {}))
    assert key.fingerprint == driver.get_key(MOCK, "gen").fingerprint


def test_imported_key_is_stored_with_its_md5_fingerprint(driver: MockDriver) -> None:
    import base64

    blob = b"\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x03\x01\x00\x01\x00\x00\x00\x40" + bytes(range(64))
    public = f"ssh-rsa {base64.b64encode(blob).decode()} me@host"
    key = driver.create_key(MOCK, m.CreateKey("mine", public_key=public))
    digest = hashlib.md5(blob).hexdigest()
    expected = ":".join(digest[i : i + 2] for i in range(0, 32, 2))
    assert (key.public_key, key.fingerprint, key.pem_rsa_key) == (public, expected, "")
    assert driver.get_key(MOCK, "mine").public_key == public


def test_duplicate_key_name_is_refused_and_delete_works(driver: MockDriver) -> None:
    with pytest.raises(AlreadyExistsError):
        driver.create_key(MOCK, m.CreateKey("test-key"))
    with pytest.raises(ValidationError):
        driver.create_key(MOCK, m.CreateKey(""))
    driver.delete_key(MOCK, "test-key")
    with pytest.raises(NotFoundError):
        driver.get_key(MOCK, "test-key")
    with pytest.raises(NotFoundError):
        driver.delete_key(MOCK, "test-key")


# ---- storage volumes and snapshots ------------------------------------------------------


def test_create_volume_takes_next_id_and_defaults(driver: MockDriver) -> None:
    vol = driver.create_storage_volume(
        MOCK, m.CreateStorageVolume(capacity_gb=5, name="data", description="d")
    )
    assert (vol.id, vol.capacity_gb, vol.realm_id, vol.state, vol.name, vol.description) == (
        "vol4",
        5,
        "us",
        "AVAILABLE",
        "data",
        "d",
    )
    with pytest.raises(NotFoundError):
        driver.create_storage_volume(MOCK, m.CreateStorageVolume(realm_id="mars"))
    from_snap = driver.create_storage_volume(MOCK, m.CreateStorageVolume(snapshot_id="snap1"))
    assert from_snap.capacity_gb == 1
    with pytest.raises(NotFoundError) as info:
        driver.create_storage_volume(MOCK, m.CreateStorageVolume(snapshot_id="snap99"))
    assert info.value.resource_type == "storage_snapshot"


def test_attach_and_detach_update_volume_and_instance(driver: MockDriver) -> None:
    vol = driver.attach_storage_volume(MOCK, "vol1", "inst0", "/dev/sdb")
    assert (vol.state, vol.instance_id, vol.device) == ("IN_USE", "inst0", "/dev/sdb")
    assert driver.get_instance(MOCK, "inst0").storage_volume_ids == ["vol1"]
    with pytest.raises(ConflictError) as info:
        driver.attach_storage_volume(MOCK, "vol1", "inst2", "/dev/sdc")
    assert info.value.reason == "VOLUME_IN_USE"
    with pytest.raises(ConflictError) as info:
        driver.delete_storage_volume(MOCK, "vol1")
    assert info.value.reason == "VOLUME_IN_USE"
    vol = driver.detach_storage_volume(MOCK, "vol1")
    assert (vol.state, vol.instance_id, vol.device) == ("AVAILABLE", "", "")
    with pytest.raises(ConflictError) as info:
        driver.detach_storage_volume(MOCK, "vol1")
    assert info.value.reason == "VOLUME_NOT_ATTACHED"
    with pytest.raises(NotFoundError):
        driver.attach_storage_volume(MOCK, "vol1", "inst99", "/dev/sdb")
    driver.delete_storage_volume(MOCK, "vol1")
    with pytest.raises(NotFoundError):
        driver.get_storage_volume(MOCK, "vol1")


def test_snapshots_create_and_delete(driver: MockDriver) -> None:
    snap = driver.create_storage_snapshot(MOCK, m.CreateStorageSnapshot("vol3", name="s"))
    assert (snap.id, snap.storage_volume_id, snap.state, snap.name) == (
        "snap4",
        "vol3",
        "COMPLETED",
        "s",
    )
    with pytest.raises(NotFoundError):
        driver.create_storage_snapshot(MOCK, m.CreateStorageSnapshot("vol99"))
    driver.delete_storage_snapshot(MOCK, "snap4")
    with pytest.raises(NotFoundError):
        driver.delete_storage_snapshot(MOCK, "snap4")


# ---- buckets and blobs ------------------------------------------------------------------


def test_bucket_create_duplicate_and_delete_rules(driver: MockDriver) -> None:
    bucket = driver.create_bucket(MOCK, m.CreateBucket("new", location="eu"))
    assert (bucket.id, bucket.location, bucket.blob_count) == ("new", "eu", 0)
    with pytest.raises(AlreadyExistsError):
        driver.create_bucket(MOCK, m.CreateBucket("bucket1"))
    with pytest.raises(ConflictError) as info:
        driver.delete_bucket(MOCK, "bucket1")
    assert info.value.reason == "BUCKET_NOT_EMPTY"
    driver.delete_bucket(MOCK, "new")
    with pytest.raises(NotFoundError):
        driver.get_bucket(MOCK, "new")
    for blob_id in ("blob4", "blob5"):
        driver.delete_blob(MOCK, "bucket2", blob_id)
    driver.delete_bucket(MOCK, "bucket2")


def test_five_mib_blob_streams_in_and_out_in_chunks(driver: MockDriver) -> None:
    piece = os.urandom(1024 * 1024)
    pulled: list[int] = []

    def chunks() -> Iterator[bytes]:
        for n in range(5):
            pulled.append(n)
            yield piece

    blob = driver.put_blob(
        MOCK,
        m.PutBlob(
            "bucket1",
            "big",
            chunks(),
            content_type="application/x-big",
            user_metadata={"k": "v"},
            content_length=5 * len(piece),
        ),
    )
    assert (blob.content_length, blob.content_type, blob.user_metadata) == (
        5 * 1024 * 1024,
        "application/x-big",
        {"k": "v"},
    )
    out = list(driver.get_blob_content(MOCK, "bucket1", "big"))
    assert all(len(c) <= 64 * 1024 for c in out) and len(out) == 80
    assert b"".join(out) == piece * 5
    assert driver.get_bucket(MOCK, "bucket1").blob_count == 4


def test_failed_upload_leaves_the_old_version_and_no_partial_blob(
    driver: MockDriver, tmp_path: Path
) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        driver.put_blob(MOCK, m.PutBlob("bucket1", "blob1", broken()))
    with pytest.raises(ConnectionError):
        driver.put_blob(MOCK, m.PutBlob("bucket1", "fresh", broken()))
    with pytest.raises(ValidationError):
        driver.put_blob(MOCK, m.PutBlob("bucket1", "fresh", iter([b"abc"]), content_length=4))
    assert b"".join(driver.get_blob_content(MOCK, "bucket1", "blob1")) == b"content of blob 1"
    with pytest.raises(NotFoundError):
        driver.get_blob(MOCK, "bucket1", "fresh")
    assert list((tmp_path / "mock" / "tmp").iterdir()) == []
    assert len(list((tmp_path / "mock" / "blobs").iterdir())) == 5


def test_replacing_a_blob_swaps_content_and_removes_the_old_file(
    driver: MockDriver, tmp_path: Path
) -> None:
    reader = driver.get_blob_content(MOCK, "bucket1", "blob2")
    blob = driver.put_blob(MOCK, m.PutBlob("bucket1", "blob2", iter([b"new ", b"body"])))
    assert blob.content_length == 8 and blob.content_type == "application/octet-stream"
    assert b"".join(driver.get_blob_content(MOCK, "bucket1", "blob2")) == b"new body"
    # a download started before the replace still reads the old version
    assert b"".join(reader) == b"content of blob 2"
    assert len(list((tmp_path / "mock" / "blobs").iterdir())) == 5


def test_blob_files_no_record_names_are_removed_at_open_once_old(tmp_path: Path) -> None:
    """A crash between an upload's rename into blobs/ and its commit (or between a delete's
    commit and its unlink) left a file no blob names, for ever. An hour-old one goes at the
    next open; a fresh one may be another process's upload about to commit: it stays."""
    d = make_driver(tmp_path)
    d.put_blob(MOCK, m.PutBlob("bucket1", "kept", iter([b"kept body"])))
    d.close()
    blobs = tmp_path / "mock" / "blobs"
    named = sorted(p.name for p in blobs.iterdir())
    old_orphan, fresh_orphan = blobs / ("0" * 32), blobs / ("f" * 32)
    old_orphan.write_bytes(b"orphan")
    fresh_orphan.write_bytes(b"about to be committed")
    hours_ago = time.time() - 7200
    os.utime(old_orphan, (hours_ago, hours_ago))
    for name in named:  # named files as old: their age alone must not remove them
        os.utime(blobs / name, (hours_ago, hours_ago))
    d = make_driver(tmp_path)
    try:
        assert b"".join(d.get_blob_content(MOCK, "bucket1", "kept")) == b"kept body"
        assert sorted(p.name for p in blobs.iterdir()) == sorted([*named, fresh_orphan.name])
    finally:
        d.close()


def test_put_into_a_missing_bucket_reads_nothing(driver: MockDriver) -> None:
    pulled: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        pulled.append(b"x")
        yield b"x"

    with pytest.raises(NotFoundError):
        driver.put_blob(MOCK, m.PutBlob("nobucket", "b", chunks()))
    assert pulled == []


def test_blob_metadata_update_and_delete(driver: MockDriver, tmp_path: Path) -> None:
    assert driver.update_blob_metadata(MOCK, "bucket1", "blob1", {"a": "1"}) == {"a": "1"}
    assert driver.get_blob(MOCK, "bucket1", "blob1").user_metadata == {"a": "1"}
    driver.delete_blob(MOCK, "bucket1", "blob1")
    with pytest.raises(NotFoundError):
        driver.get_blob(MOCK, "bucket1", "blob1")
    with pytest.raises(NotFoundError):
        driver.delete_blob(MOCK, "bucket1", "blob1")
    assert len(list((tmp_path / "mock" / "blobs").iterdir())) == 4


# ---- addresses --------------------------------------------------------------------------


def test_new_address_takes_the_next_free_ip(driver: MockDriver) -> None:
    assert driver.create_address(MOCK).id == "192.168.0.5"
    assert driver.create_address(ALICE).id == "192.168.0.6"
    driver.delete_address(MOCK, "192.168.0.5")
    with pytest.raises(NotFoundError):
        driver.get_address(MOCK, "192.168.0.5")


def test_address_in_use_cannot_be_destroyed_or_reassociated(driver: MockDriver) -> None:
    addr = driver.associate_address(MOCK, "192.168.0.1", "inst0")
    assert addr.instance_id == "inst0"
    assert "192.168.0.1" in [a.address for a in driver.get_instance(MOCK, "inst0").public_addresses]
    for call in (
        lambda: driver.delete_address(MOCK, "192.168.0.1"),
        lambda: driver.associate_address(MOCK, "192.168.0.1", "inst2"),
    ):
        with pytest.raises(ConflictError) as info:
            call()
        assert info.value.reason == "ADDRESS_IN_USE"
    assert driver.disassociate_address(MOCK, "192.168.0.1").instance_id == ""
    with pytest.raises(ConflictError) as info:
        driver.disassociate_address(MOCK, "192.168.0.1")
    assert info.value.reason == "ADDRESS_NOT_ASSOCIATED"
    with pytest.raises(NotFoundError):
        driver.associate_address(MOCK, "192.168.0.1", "inst99")


# ---- images -----------------------------------------------------------------------------


def test_image_from_instance_is_owned_by_the_caller(driver: MockDriver) -> None:
    image = driver.create_image(MOCK, m.CreateImage("inst1", name="mine", description="d"))
    assert (image.id, image.owner_id, image.architecture, image.name, image.description) == (
        "img4",
        "mockuser",
        "i386",
        "mine",
        "d",
    )
    alice_inst = create_one(driver, ALICE, image_id="img1")
    alice_image = driver.create_image(ALICE, m.CreateImage(alice_inst.id))
    assert (alice_image.id, alice_image.owner_id, alice_image.architecture) == (
        "img5",
        "alice",
        "x86_64",
    )
    assert "img5" in {i.id for i in driver.list_images(MOCK, {})}


def test_inst3_cannot_be_imaged(driver: MockDriver) -> None:
    with pytest.raises(ConflictError) as info:
        driver.create_image(MOCK, m.CreateImage("inst3"))
    assert info.value.reason == "IMAGE_CREATION_NOT_ALLOWED"


def test_only_the_owner_may_delete_an_image(driver: MockDriver) -> None:
    with pytest.raises(PermissionDeniedError):
        driver.delete_image(MOCK, "img1")
    with pytest.raises(PermissionDeniedError):
        driver.delete_image(ALICE, "img3")
    driver.delete_image(MOCK, "img3")
    with pytest.raises(NotFoundError):
        driver.get_image(ALICE, "img3")
    with pytest.raises(NotFoundError):
        driver.delete_image(MOCK, "img3")


# ---- firewalls --------------------------------------------------------------------------


def test_firewall_lifecycle_and_rules(driver: MockDriver) -> None:
    fw = driver.create_firewall(MOCK, m.CreateFirewall("web", "web servers"))
    assert (fw.id, fw.name, fw.owner_id, fw.rules) == ("web", "web", "mockuser", [])
    with pytest.raises(AlreadyExistsError):
        driver.create_firewall(MOCK, m.CreateFirewall("web", "again"))
    with pytest.raises(ValidationError):
        driver.create_firewall(MOCK, m.CreateFirewall("nodesc", ""))
    fw = driver.create_firewall_rule(
        MOCK, "web", m.CreateFirewallRule("TCP", 80, 80, [m.RuleSource(cidr="10.0.0.1/8")])
    )
    fw = driver.create_firewall_rule(
        MOCK, "web", m.CreateFirewallRule("tcp", 443, 443, [m.RuleSource(firewall_id="web")])
    )
    assert [(r.id, r.protocol, r.port_from) for r in fw.rules] == [
        ("rule1", "tcp", 80),
        ("rule2", "tcp", 443),
    ]
    assert fw.rules[0].sources == [m.RuleSource(cidr="10.0.0.0/8")]
    with pytest.raises(AlreadyExistsError):
        driver.create_firewall_rule(
            MOCK, "web", m.CreateFirewallRule("tcp", 80, 80, [m.RuleSource(cidr="10.0.0.0/8")])
        )
    with pytest.raises(ValidationError):
        driver.create_firewall_rule(MOCK, "web", m.CreateFirewallRule("tcp", 90, 80))
    with pytest.raises(NotFoundError):
        driver.create_firewall_rule(
            MOCK, "web", m.CreateFirewallRule("tcp", 1, 2, [m.RuleSource(firewall_id="x")])
        )
    fw = driver.delete_firewall_rule(MOCK, "web", "rule1")
    assert [r.id for r in fw.rules] == ["rule2"]
    with pytest.raises(NotFoundError) as info:
        driver.delete_firewall_rule(MOCK, "web", "rule1")
    assert info.value.resource_type == "firewall_rule"
    assert [f.id for f in driver.list_firewalls(MOCK, {})] == ["web"]
    driver.delete_firewall(MOCK, "web")
    with pytest.raises(NotFoundError):
        driver.get_firewall(MOCK, "web")


def test_firewall_used_by_an_instance_cannot_be_deleted(driver: MockDriver) -> None:
    driver.create_firewall(MOCK, m.CreateFirewall("db", "database"))
    inst = create_one(driver, firewall_ids=["db"])
    with pytest.raises(ConflictError) as info:
        driver.delete_firewall(MOCK, "db")
    assert info.value.reason == "FIREWALL_IN_USE"
    wait_for_state(driver, MOCK, inst.id, InstanceState.RUNNING)
    driver.stop_instance(MOCK, inst.id)
    wait_for_state(driver, MOCK, inst.id, InstanceState.STOPPED)
    driver.destroy_instance(MOCK, inst.id)
    driver.delete_firewall(MOCK, "db")


# ---- load balancers ---------------------------------------------------------------------


def test_load_balancer_lifecycle(driver: MockDriver) -> None:
    lb = driver.create_load_balancer(
        MOCK,
        m.CreateLoadBalancer("front", ["us", "eu"], [m.Listener("http", 80, 8080)]),
    )
    assert (lb.id, lb.realm_ids, lb.instance_ids) == ("front", ["us", "eu"], [])
    assert lb.listeners == [m.Listener("HTTP", 80, 8080)] and lb.public_addresses
    with pytest.raises(AlreadyExistsError):
        driver.create_load_balancer(MOCK, m.CreateLoadBalancer("front"))
    with pytest.raises(NotFoundError) as info:
        driver.create_load_balancer(MOCK, m.CreateLoadBalancer("other", ["mars"]))
    assert info.value.resource_type == "realm"
    assert driver.register_instance(MOCK, "front", "inst0").instance_ids == ["inst0"]
    assert driver.register_instance(MOCK, "front", "inst2").instance_ids == ["inst0", "inst2"]
    with pytest.raises(NotFoundError):
        driver.register_instance(MOCK, "front", "inst99")
    assert driver.unregister_instance(MOCK, "front", "inst0").instance_ids == ["inst2"]
    with pytest.raises(NotFoundError):
        driver.unregister_instance(MOCK, "front", "inst0")
    assert [b.id for b in driver.list_load_balancers(MOCK, {})] == ["front"]
    driver.delete_load_balancer(MOCK, "front")
    with pytest.raises(NotFoundError):
        driver.get_load_balancer(MOCK, "front")


def test_close_releases_the_database(tmp_path: Path) -> None:
    d = make_driver(tmp_path)
    d.list_keys(MOCK, {})
    d.close()
    # usable again after close (reopens lazily), and the data is still there
    assert [k.id for k in d.list_keys(MOCK, {})] == ["test-key"]
    d.close()


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (OSError(28, "No space left on device"), True),
        (OSError(122, "Disk quota exceeded"), True),
        (OSError(27, "File too large"), True),
        (OSError(5, "Input/output error"), False),
        (sqlite3.OperationalError("database or disk is full"), True),
        (sqlite3.OperationalError("disk I/O error"), False),
    ],
)
def test_a_full_disk_is_resource_exhausted_and_other_storage_failures_internal(
    error: BaseException, full: bool
) -> None:
    from deltacloud.drivers.mock.store import storage_failure

    if isinstance(error, sqlite3.Error):  # set by SQLite on its errors
        error.sqlite_errorcode = sqlite3.SQLITE_FULL if full else sqlite3.SQLITE_IOERR  # type: ignore[attr-defined]
    mapped = storage_failure(error)
    if full:
        assert (type(mapped).__name__, mapped.reason) == ("ResourceExhaustedError", "STORAGE_FULL")
    else:
        assert type(mapped).__name__ == "InternalDriverError"
    assert "SQLite" not in mapped.message and "errno" not in mapped.message


def test_creates_with_a_request_id_are_done_once_per_owner(
    driver: MockDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mock keeps a create's request id with what it made, as EC2 does a ClientToken."""
    token = dataclasses.replace(MOCK, request_id="8f14e45f-ceea-4672-9d8b-0b5a3b2c1e00")
    opts = m.CreateInstance("img1", instance_count=2, user_data=b"\x00\xff")
    first = driver.create_instance(token, opts)
    count = len(driver.list_instances(MOCK, {}))
    assert driver.create_instance(token, opts) == first
    assert len(driver.list_instances(MOCK, {})) == count
    with pytest.raises(ValidationError) as reused:
        driver.create_instance(token, dataclasses.replace(opts, name="other"))
    assert reused.value.reason == "REQUEST_ID_REUSED"
    # The same id is another owner's own; and without an id every create creates.
    alice = dataclasses.replace(ALICE, request_id=token.request_id)
    assert {i.id for i in driver.create_instance(alice, opts)}.isdisjoint(i.id for i in first)
    assert driver.create_instance(MOCK, opts) != first
    volume = m.CreateStorageVolume(capacity_gb=3, name="v")
    assert driver.create_storage_volume(token, volume) == driver.create_storage_volume(
        token, volume
    )
    snapshot = m.CreateStorageSnapshot(storage_volume_id="vol1")
    assert driver.create_storage_snapshot(token, snapshot).id == (
        driver.create_storage_snapshot(token, snapshot).id
    )
    assert driver.create_address(token) == driver.create_address(token)
    # Tokens expire (a day): then the id is a new request.
    monkeypatch.setattr("deltacloud.drivers.mock.tokens.TOKEN_SECONDS", -1.0)
    assert driver.create_address(token) != driver.create_address(token)


def test_the_read_cache_takes_only_what_this_process_wrote_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a write of this process the cache reads again only the records it changed
    (a create among 2,000 instances made the next GetInstance read all 2,000: 16.7 ms,
    0.8 ms since); snapshots handed out before keep their view; a write of another
    process (another store on the same directory) makes it read everything again."""
    from deltacloud.drivers.mock import store as store_module

    driver = make_driver(tmp_path)
    other = make_driver(tmp_path)
    try:
        before = {i.id for i in driver.list_instances(MOCK, {})}
        driver.list_keys(MOCK, {})
        snapshot = driver._store.snapshot([("instance", "mockuser")])
        reads: list[tuple[str, str]] = []
        real_select = store_module._select

        def counted(reader: sqlite3.Connection, table: tuple[str, str]) -> Any:
            reads.append(table)
            return real_select(reader, table)

        monkeypatch.setattr(store_module, "_select", counted)
        made = [
            i.id for i in driver.create_instance(MOCK, m.CreateInstance("img1", instance_count=3))
        ]
        driver.stop_instance(MOCK, "inst1")
        assert {i.id for i in driver.list_instances(MOCK, {})} == before | set(made)
        assert driver.get_instance(MOCK, "inst1").state != InstanceState.RUNNING
        driver.create_key(MOCK, m.CreateKey(name="cached"))
        assert "cached" in {k.id for k in driver.list_keys(MOCK, {})}
        driver.delete_key(MOCK, "cached")
        assert "cached" not in {k.id for k in driver.list_keys(MOCK, {})}
        assert reads == [], "only the changed records were read again"
        # A snapshot taken before the writes still shows the state it was taken at.
        assert {r["id"] for r in snapshot.list("instance", "mockuser")} == before

        foreign = other.create_instance(MOCK, m.CreateInstance("img1"))[0].id
        time.sleep(0.02)  # another process's commits are seen within OTHER_WRITERS_LAG
        assert foreign in {i.id for i in driver.list_instances(MOCK, {})}
        assert ("instance", "mockuser") in reads, "another process's write: all read again"
    finally:
        driver.close()
        other.close()


def test_reads_from_memory_hand_out_the_same_models_until_what_they_show_changes(
    driver: MockDriver,
) -> None:
    """An instance read from memory is built once per version of what it is made of (its
    record, the volumes and the addresses that hold its attachments) and handed out again
    until one of those changes (GetInstance on the loop: 7.5 to 2.9 us; the server keeps
    the message made for it too). Every change shows, and automatic transitions still
    happen when due, whether read by id or listed."""
    inline = CallContext(MOCK.credentials, MOCK.provider, None, True)
    first = driver.get_instance(MOCK, "inst0")  # reads the tables in (off the loop)
    assert driver.get_instance(inline, "inst0") is first
    listed = driver.list_instances(inline, {})
    assert next(i for i in listed if i.id == "inst0") is first
    assert driver.list_instances(inline, {"id": "inst0"}) == [first]
    assert driver.list_instances(inline, {}) is not listed, "callers get lists of their own"

    driver.attach_storage_volume(MOCK, "vol1", "inst0", "/dev/sdb")
    attached = driver.get_instance(MOCK, "inst0")  # after a write: off the loop first
    assert attached is not first and attached.storage_volume_ids == ["vol1"]
    assert driver.get_instance(inline, "inst0") is attached
    driver.associate_address(MOCK, "192.168.0.1", "inst0")
    associated = driver.get_instance(MOCK, "inst0")
    assert "192.168.0.1" in [a.address for a in associated.public_addresses]
    assert [i for i in driver.list_instances(inline, {}) if i.id == "inst0"] == [associated]
    # Models handed out before are left as they were.
    assert (first.storage_volume_ids, attached.public_addresses) == ([], first.public_addresses)

    driver.stop_instance(MOCK, "inst0")
    stopping = driver.get_instance(MOCK, "inst0")
    assert stopping.state == InstanceState.STOPPING
    time.sleep(0.1)  # the stopping delay (0.05 s) passes with nothing written meanwhile
    listed_states = {i.id: i.state for i in driver.list_instances(MOCK, {})}
    assert listed_states["inst0"] == InstanceState.STOPPED
    made = create_one(driver)
    assert driver.get_instance(MOCK, made.id).state == InstanceState.PENDING
    time.sleep(0.1)
    assert driver.get_instance(MOCK, made.id).state == InstanceState.RUNNING
