"""The Foo driver (examples/foo-driver, a separate package registered through the
``deltacloud.drivers`` entry point ``foo``) through the real server: discovery, its
start-stopped state machine, no reboot, its range/enum hardware profile, its features, and
its file-backed state across a restart. The conformance kit covers the generic contract
(tests/test_conformance_foo.py); this covers what is particular to Foo."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from pathlib import Path

import grpc
import pytest
from conftest import Api, ServerProcess

from deltacloud.v1 import (
    common_pb2,
    discovery_pb2,
    hardware_profile_pb2,
    instance_pb2,
    key_pb2,
    realm_pb2,
)
from support import Failure, failure, metadata

S = common_pb2.InstanceState
A = common_pb2.InstanceAction
PENDING_DELAY = 0.3
FOO = metadata("demo", "demo-secret", driver="foo")
WEST = metadata("demo", "demo-secret", driver="foo", provider="west")


@pytest.fixture(scope="session")
def foo_installed() -> None:
    """Fails (never skips) when the example package is not installed."""
    if "foo" not in {ep.name for ep in entry_points(group="deltacloud.drivers")}:
        pytest.fail("the foo driver (examples/foo-driver) is not installed: run `make setup`")


def _foo_server(data_dir: Path, state_file: Path) -> ServerProcess:
    return ServerProcess(
        data_dir,
        extra_args=[
            "--driver-option",
            f"foo.state_file={state_file}",
            "--driver-option",
            f"foo.pending_delay={PENDING_DELAY}",
            "--driver-option",
            f"foo.stopping_delay={PENDING_DELAY}",
        ],
    )


@pytest.fixture(scope="module")
def foo_server(
    foo_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("foo")
    server = _foo_server(root / "data", root / "cloud" / "foo.json").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def foo(foo_server: ServerProcess) -> Iterator[Api]:
    channel = grpc.insecure_channel(foo_server.target)
    try:
        yield Api(channel)
    finally:
        channel.close()


def refusal(call: object, request: object, md: object = FOO) -> Failure:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=md, timeout=10)  # type: ignore[operator]
    return failure(caught.value)


def create(api: Api, md: list[tuple[str, str]] = FOO, **fields: object) -> instance_pb2.Instance:
    request = instance_pb2.CreateInstanceRequest(image_id="debian-12", **fields)  # type: ignore[arg-type]
    return api.instances.CreateInstance(request, metadata=md).instances[0]


def settle(api: Api, instance_id: str, md: list[tuple[str, str]] = FOO) -> instance_pb2.Instance:
    deadline = time.monotonic() + 10
    while True:
        got = api.instances.GetInstance(
            instance_pb2.GetInstanceRequest(id=instance_id), metadata=md
        )
        if got.state not in (S.INSTANCE_STATE_PENDING, S.INSTANCE_STATE_STOPPING):
            return got
        assert time.monotonic() < deadline, f"{instance_id} stuck in {got.state}"
        time.sleep(0.05)


# ---- discovery ---------------------------------------------------------------------------


def test_foo_is_listed_with_its_providers(foo: Api) -> None:
    drivers = foo.discovery.ListDrivers(discovery_pb2.ListDriversRequest(id="foo")).drivers
    assert [(d.id, d.description) for d in drivers] == [
        ("foo", "Foo, an imaginary cloud whose instances start stopped")
    ]
    assert list(drivers[0].providers) == [
        discovery_pb2.Provider(id="east", name="Foo East", endpoint="https://east.foo.example/api"),
        discovery_pb2.Provider(id="west", name="Foo West", endpoint="https://west.foo.example/api"),
    ]
    everything = foo.discovery.ListDrivers(discovery_pb2.ListDriversRequest()).drivers
    assert {"mock", "foo"} <= {d.id for d in everything}


def test_capabilities_of_foo(foo: Api) -> None:
    caps = foo.discovery.GetCapabilities(discovery_pb2.GetCapabilitiesRequest(), metadata=FOO)
    assert (caps.driver_id, caps.provider_id) == ("foo", "east")
    assert [c.name for c in caps.collections] == [
        "realms",
        "hardware_profiles",
        "images",
        "instances",
        "keys",
        "instance_states",
    ]
    instances = next(c for c in caps.collections if c.name == "instances")
    assert "RebootInstance" not in instances.operations
    assert {f.name: dict(f.constraints) for f in instances.features} == {
        "user_name": {"max_length": "32"},
        "authentication_key": {},
    }


def test_each_provider_has_its_own_realms_and_instances(foo: Api) -> None:
    def realms(md: list[tuple[str, str]]) -> list[str]:
        reply = foo.realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=md)
        return [r.id for r in reply.realms]

    assert realms(FOO) == ["east-1a", "east-1b"]
    assert realms(WEST) == ["west-1a"]
    east = create(foo)
    assert east.realm_id == "east-1a"
    west_ids = [
        i.id
        for i in foo.instances.ListInstances(
            instance_pb2.ListInstancesRequest(), metadata=WEST
        ).instances
    ]
    assert east.id not in west_ids


def test_wrong_password_is_unauthenticated(foo: Api) -> None:
    wrong = metadata("demo", "not-the-secret", driver="foo")
    f = refusal(foo.realms.ListRealms, realm_pb2.ListRealmsRequest(), wrong)
    assert f.code == grpc.StatusCode.UNAUTHENTICATED
    assert "not-the-secret" not in f.message


# ---- the state machine -------------------------------------------------------------------


def test_a_new_instance_ends_stopped_and_can_only_be_started_or_destroyed(foo: Api) -> None:
    created = create(foo)
    assert created.state == S.INSTANCE_STATE_PENDING
    assert list(created.actions) == []
    time.sleep(PENDING_DELAY)
    stopped = settle(foo, created.id)
    assert stopped.state == S.INSTANCE_STATE_STOPPED
    assert list(stopped.actions) == [A.INSTANCE_ACTION_START, A.INSTANCE_ACTION_DESTROY]
    f = refusal(foo.instances.StopInstance, instance_pb2.StopInstanceRequest(id=created.id))
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACTION_NOT_ALLOWED")
    started = foo.instances.StartInstance(
        instance_pb2.StartInstanceRequest(id=created.id), metadata=FOO
    )
    assert started.state == S.INSTANCE_STATE_RUNNING
    assert list(started.actions) == [A.INSTANCE_ACTION_STOP]
    # Running: destroy is not allowed; it must be stopped first.
    f = refusal(foo.instances.DeleteInstance, instance_pb2.DeleteInstanceRequest(id=created.id))
    assert f.reason == "ACTION_NOT_ALLOWED"
    assert f.metadata["allowed_actions"] == "stop"
    stopping = foo.instances.StopInstance(
        instance_pb2.StopInstanceRequest(id=created.id), metadata=FOO
    )
    assert stopping.state == S.INSTANCE_STATE_STOPPING
    assert settle(foo, created.id).state == S.INSTANCE_STATE_STOPPED
    gone = foo.instances.DeleteInstance(
        instance_pb2.DeleteInstanceRequest(id=created.id), metadata=FOO
    )
    assert gone.state == S.INSTANCE_STATE_FINISH
    f = refusal(foo.instances.GetInstance, instance_pb2.GetInstanceRequest(id=created.id))
    assert f.code == grpc.StatusCode.NOT_FOUND


def test_reboot_is_operation_not_supported(foo: Api) -> None:
    instance = create(foo)
    f = refusal(foo.instances.RebootInstance, instance_pb2.RebootInstanceRequest(id=instance.id))
    assert (f.code, f.reason) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "OPERATION_NOT_SUPPORTED",
    )
    assert f.metadata == {
        "driver": "foo",
        "provider": "east",
        "collection": "instances",
        "operation": "reboot",
    }


def test_the_declared_machine_has_no_reboot(foo: Api) -> None:
    machine = foo.instances.ListInstanceStates(
        instance_pb2.ListInstanceStatesRequest(), metadata=FOO
    )
    actions = {t.action for node in machine.states for t in node.transitions if not t.automatic}
    assert A.INSTANCE_ACTION_REBOOT not in actions
    pending = next(n for n in machine.states if n.state == S.INSTANCE_STATE_PENDING)
    assert [(t.to, t.automatic) for t in pending.transitions] == [(S.INSTANCE_STATE_STOPPED, True)]


# ---- hardware profiles -------------------------------------------------------------------


def test_flex_profile_has_ranges_and_enums(foo: Api) -> None:
    flex = foo.hardware_profiles.GetHardwareProfile(
        hardware_profile_pb2.GetHardwareProfileRequest(id="foo-flex"), metadata=FOO
    )
    K = common_pb2.HardwareProperty
    assert (flex.cpu.kind, flex.cpu.first.number, flex.cpu.last.number) == (K.KIND_RANGE, 1, 16)
    assert flex.cpu.default_value.number == 2
    assert (flex.memory.first.number, flex.memory.last.number) == (512, 65536)
    assert flex.memory.default_value.number == 2048
    assert flex.storage.kind == K.KIND_ENUM
    assert [v.number for v in flex.storage.values] == [20, 50, 100]
    assert [v.text for v in flex.architecture.values] == ["x86_64", "arm64"]
    arm = foo.hardware_profiles.ListHardwareProfiles(
        hardware_profile_pb2.ListHardwareProfilesRequest(architecture="arm64"), metadata=FOO
    )
    assert [p.id for p in arm.hardware_profiles] == ["foo-flex"]


def test_overrides_of_the_flex_profile_are_recorded(foo: Api) -> None:
    instance = create(
        foo,
        hardware_profile_id="foo-flex",
        hardware_profile_overrides=common_pb2.HardwareProfileOverrides(
            cpu=8, memory=4096, storage=50
        ),
    )
    assert instance.hardware_profile_id == "foo-flex"
    overrides = instance.hardware_profile_overrides
    assert (overrides.cpu, overrides.memory, overrides.storage) == (8, 4096, 50)
    assert not overrides.HasField("architecture")  # the default, x86_64, like the image
    got = foo.instances.GetInstance(instance_pb2.GetInstanceRequest(id=instance.id), metadata=FOO)
    assert got.hardware_profile_overrides == overrides


def test_the_default_profile_follows_the_image_architecture(foo: Api) -> None:
    x86 = create(foo)
    assert (x86.hardware_profile_id, x86.hardware_profile_overrides.HasField("cpu")) == (
        "foo-small",
        False,
    )
    arm = foo.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(image_id="debian-12-arm"), metadata=FOO
    ).instances[0]
    assert arm.hardware_profile_id == "foo-flex"
    assert arm.hardware_profile_overrides.architecture == "arm64"


@pytest.mark.parametrize(
    ("profile", "overrides", "prop"),
    [
        ("foo-flex", common_pb2.HardwareProfileOverrides(cpu=17), "cpu"),
        ("foo-flex", common_pb2.HardwareProfileOverrides(memory=256), "memory"),
        ("foo-flex", common_pb2.HardwareProfileOverrides(storage=30), "storage"),
        ("foo-flex", common_pb2.HardwareProfileOverrides(architecture="riscv64"), "architecture"),
        ("foo-small", common_pb2.HardwareProfileOverrides(cpu=2), "cpu"),
    ],
)
def test_overrides_outside_the_profile_are_refused(
    foo: Api, profile: str, overrides: common_pb2.HardwareProfileOverrides, prop: str
) -> None:
    request = instance_pb2.CreateInstanceRequest(
        image_id="debian-12", hardware_profile_id=profile, hardware_profile_overrides=overrides
    )
    f = refusal(foo.instances.CreateInstance, request)
    assert (f.code, f.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_HARDWARE_PROFILE_OVERRIDE",
    )
    assert f.metadata["property"] == prop
    assert f.metadata["hardware_profile_id"] == profile


def test_an_architecture_other_than_the_image_is_refused_by_the_driver(foo: Api) -> None:
    request = instance_pb2.CreateInstanceRequest(
        image_id="debian-12",
        hardware_profile_id="foo-flex",
        hardware_profile_overrides=common_pb2.HardwareProfileOverrides(architecture="arm64"),
    )
    f = refusal(foo.instances.CreateInstance, request)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "ARCHITECTURE_MISMATCH")


# ---- features ----------------------------------------------------------------------------


def test_name_is_limited_to_32_characters(foo: Api) -> None:
    assert create(foo, name="n" * 32).name == "n" * 32
    f = refusal(
        foo.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id="debian-12", name="n" * 33),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CONSTRAINT_VIOLATED")


@pytest.mark.parametrize(
    ("fields", "feature"),
    [
        ({"user_data": b"#cloud-config"}, "user_data"),
        ({"instance_count": 2}, "instance_count"),
        ({"firewall_ids": ["default"]}, "firewalls"),
    ],
)
def test_options_without_their_feature_are_refused(
    foo: Api, fields: dict[str, object], feature: str
) -> None:
    request = instance_pb2.CreateInstanceRequest(image_id="debian-12", **fields)  # type: ignore[arg-type]
    f = refusal(foo.instances.CreateInstance, request)
    assert (f.code, f.reason) == (grpc.StatusCode.UNIMPLEMENTED, "FEATURE_NOT_SUPPORTED")
    assert f.metadata["feature"] == feature


def test_a_key_is_installed_at_create(foo: Api) -> None:
    key = foo.keys.CreateKey(key_pb2.CreateKeyRequest(name="laptop"), metadata=FOO)
    assert key.pem_rsa_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert key.fingerprint.startswith("SHA256:")
    assert create(foo, key_name="laptop").key_name == "laptop"
    f = refusal(
        foo.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id="debian-12", key_name="no-such-key"),
    )
    assert (f.code, f.metadata["resource_type"]) == (grpc.StatusCode.NOT_FOUND, "key")
    f = refusal(foo.keys.CreateKey, key_pb2.CreateKeyRequest(name="laptop"))
    assert f.code == grpc.StatusCode.ALREADY_EXISTS


# ---- concurrency and persistence ---------------------------------------------------------


def test_concurrent_creates_get_distinct_ids(foo: Api) -> None:
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda _: create(foo).id, range(32)))
    assert len(set(ids)) == 32


def test_state_survives_a_restart(foo_installed: None, tmp_path: Path) -> None:
    state_file = tmp_path / "cloud" / "foo.json"
    server = _foo_server(tmp_path / "data", state_file).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            running = create(api, name="survivor")
            settle(api, running.id)
            api.instances.StartInstance(
                instance_pb2.StartInstanceRequest(id=running.id), metadata=FOO
            )
            pending = create(api, name="booting")
            api.keys.CreateKey(
                key_pb2.CreateKeyRequest(name="imported", public_key="ssh-ed25519 AAAA me"),
                metadata=FOO,
            )
        assert server.stop() == 0
        # The file is the whole cloud: plain JSON, no temporary file left behind.
        saved = json.loads(state_file.read_text())
        assert set(saved["providers"]["east"]["instances"]) == {running.id, pending.id}
        assert [p.name for p in state_file.parent.iterdir()] == ["foo.json"]
        time.sleep(PENDING_DELAY)
        server.restart()
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            got = {
                i.id: i
                for i in api.instances.ListInstances(
                    instance_pb2.ListInstancesRequest(), metadata=FOO
                ).instances
            }
            assert got[running.id].state == S.INSTANCE_STATE_RUNNING
            assert got[running.id].name == "survivor"
            # Automatic transitions are computed from timestamps: it went on while down.
            assert got[pending.id].state == S.INSTANCE_STATE_STOPPED
            key = api.keys.GetKey(key_pb2.GetKeyRequest(id="imported"), metadata=FOO)
            assert key.public_key == "ssh-ed25519 AAAA me"
            # Ids are never reused after a restart.
            assert create(api).id not in got
    finally:
        server.kill()
