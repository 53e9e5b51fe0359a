"""InstanceService through the generated stubs: the mock's instance fixtures, list filters,
create (defaults, hardware-profile overrides, refusals), the automatic lifecycle, and the
server's enforcement of the driver's state machine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from conftest import PENDING_DELAY, STOPPING_DELAY, Api, ServerProcess, _api

from deltacloud.v1 import common_pb2, instance_pb2
from support import MD, MOCK_SCOPE, failure

S = common_pb2.InstanceState
A = common_pb2.InstanceAction
HOSTNAME = instance_pb2.InstanceAddress.TYPE_HOSTNAME
SCOPE = {"driver": "mock", "provider": "default"}
#: How long a test waits for an automatic transition before failing (delays are 0.3 s).
WAIT = 10.0


def ids(instances: object) -> list[str]:
    return [i.id for i in instances]  # type: ignore[attr-defined]


def list_ids(api: Api, **filters: object) -> list[str]:
    reply = api.instances.ListInstances(instance_pb2.ListInstancesRequest(**filters), metadata=MD)
    return ids(reply.instances)


def get(api: Api, instance_id: str) -> instance_pb2.Instance:
    return api.instances.GetInstance(instance_pb2.GetInstanceRequest(id=instance_id), metadata=MD)


def create(api: Api, **fields: object) -> list[instance_pb2.Instance]:
    request = instance_pb2.CreateInstanceRequest(**fields)
    return list(api.instances.CreateInstance(request, metadata=MD).instances)


def wait_for_state(api: Api, instance_id: str, state: int) -> instance_pb2.Instance:
    """Poll GetInstance until the instance is in ``state``; fail after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        instance = get(api, instance_id)
        if instance.state == state:
            return instance
        assert time.monotonic() < deadline, (
            f"{instance_id} still {S.Name(instance.state)}, expected {S.Name(state)}"
        )
        time.sleep(0.02)


REQUESTS = {
    "StartInstance": instance_pb2.StartInstanceRequest,
    "StopInstance": instance_pb2.StopInstanceRequest,
    "RebootInstance": instance_pb2.RebootInstanceRequest,
    "DeleteInstance": instance_pb2.DeleteInstanceRequest,
}


def refusal(call: object, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=MD)  # type: ignore[operator]
    return caught.value


@pytest.fixture(scope="module")
def slow_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server whose transitional states last a minute, so a test can act on an instance
    while it is PENDING or STOPPING without racing the automatic transition."""
    slow = ServerProcess(
        tmp_path_factory.mktemp("slow"),
        extra_args=[
            "--driver-option",
            "mock.pending_delay=60",
            "--driver-option",
            "mock.stopping_delay=60",
        ],
    )
    for started in _server_of(slow):
        yield from _api(started)


def _server_of(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        server.kill()


# ---- fixtures ---------------------------------------------------------------------------


def test_the_mock_starts_with_exactly_inst0_to_inst3(api: Api) -> None:
    assert list_ids(api) == ["inst0", "inst1", "inst2", "inst3"]


def test_inst0_is_an_m1_large_of_img1_with_a_memory_override_of_12288(api: Api) -> None:
    inst0 = get(api, "inst0")
    assert inst0 == instance_pb2.Instance(
        id="inst0",
        name="Mock Instance With Profile Change",
        owner_id="mockuser",
        image_id="img1",
        realm_id="us",
        state=S.INSTANCE_STATE_RUNNING,
        actions=[A.INSTANCE_ACTION_REBOOT, A.INSTANCE_ACTION_STOP],
        public_addresses=[
            instance_pb2.InstanceAddress(address="img1.inst0.public.com", type=HOSTNAME)
        ],
        private_addresses=[
            instance_pb2.InstanceAddress(address="img1.inst0.private.com", type=HOSTNAME)
        ],
        hardware_profile_id="m1-large",
        hardware_profile_overrides=common_pb2.HardwareProfileOverrides(memory=12288),
        launch_time=inst0.launch_time,
        key_name="",
    )
    assert inst0.launch_time.ToDatetime(tzinfo=UTC) == datetime(2010, 1, 1, tzinfo=UTC)
    assert not inst0.hardware_profile_overrides.HasField("cpu")
    assert not inst0.hardware_profile_overrides.HasField("storage")


@pytest.mark.parametrize(
    ("instance_id", "name", "image_id", "profile_id", "realm_id"),
    [
        ("inst1", "MockUserInstance", "img3", "m1-small", "us"),
        ("inst2", "AnotherInstance", "img1", "m1-large", "us"),
        ("inst3", "", "img3", "m1-small", "eu"),
    ],
)
def test_fixture_instances_have_their_name_image_profile_realm_and_no_overrides(
    api: Api, instance_id: str, name: str, image_id: str, profile_id: str, realm_id: str
) -> None:
    instance = get(api, instance_id)
    assert (instance.id, instance.name, instance.image_id) == (instance_id, name, image_id)
    assert (instance.hardware_profile_id, instance.realm_id) == (profile_id, realm_id)
    assert instance.hardware_profile_overrides == common_pb2.HardwareProfileOverrides()
    assert instance.owner_id == "mockuser"


def test_every_fixture_instance_is_running_with_actions_reboot_and_stop(api: Api) -> None:
    reply = api.instances.ListInstances(instance_pb2.ListInstancesRequest(), metadata=MD)
    assert [(i.id, i.state, list(i.actions)) for i in reply.instances] == [
        (f"inst{n}", S.INSTANCE_STATE_RUNNING, [A.INSTANCE_ACTION_REBOOT, A.INSTANCE_ACTION_STOP])
        for n in range(4)
    ]


def test_fixture_addresses_are_hostnames_built_from_image_and_instance(api: Api) -> None:
    reply = api.instances.ListInstances(instance_pb2.ListInstancesRequest(), metadata=MD)
    assert [
        (
            [(a.address, a.type) for a in i.public_addresses],
            [(a.address, a.type) for a in i.private_addresses],
        )
        for i in reply.instances
    ] == [
        ([(f"{image}.{inst}.public.com", HOSTNAME)], [(f"{image}.{inst}.private.com", HOSTNAME)])
        for inst, image in [
            ("inst0", "img1"),
            ("inst1", "img3"),
            ("inst2", "img1"),
            ("inst3", "img3"),
        ]
    ]


def test_inst1_lists_the_volume_attached_to_it(api: Api) -> None:
    assert list(get(api, "inst1").storage_volume_ids) == ["vol3"]
    assert list(get(api, "inst0").storage_volume_ids) == []


# ---- list filters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"state": S.INSTANCE_STATE_RUNNING}, ["inst0", "inst1", "inst2", "inst3"]),
        ({"state": S.INSTANCE_STATE_STOPPED}, []),
        ({"realm_id": "eu"}, ["inst3"]),
        ({"realm_id": "us"}, ["inst0", "inst1", "inst2"]),
        ({"realm_id": "nowhere"}, []),
        ({"id": "inst2"}, ["inst2"]),
        ({"id": "inst99"}, []),
        ({"owner_id": "mockuser"}, ["inst0", "inst1", "inst2", "inst3"]),
        ({"owner_id": "fedoraproject"}, []),
        ({"realm_id": "us", "id": "inst3"}, []),
        ({"realm_id": "eu", "state": S.INSTANCE_STATE_RUNNING}, ["inst3"]),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_list_instances_filters(api: Api, filters: dict[str, object], expected: list[str]) -> None:
    assert list_ids(api, **filters) == expected


# ---- get --------------------------------------------------------------------------------


def test_get_unknown_instance_is_not_found_naming_the_instance(api: Api) -> None:
    error = refusal(api.instances.GetInstance, instance_pb2.GetInstanceRequest(id="inst99"))
    f = failure(error)
    assert f.code == grpc.StatusCode.NOT_FOUND
    assert f.reason == "RESOURCE_NOT_FOUND"
    assert f.domain == "deltacloud"
    assert f.metadata == {**SCOPE, "resource_type": "instance", "resource_id": "inst99"}


def test_get_instance_without_id_is_missing_field(api: Api) -> None:
    f = failure(refusal(api.instances.GetInstance, instance_pb2.GetInstanceRequest()))
    assert (f.code, f.reason, f.metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        "id",
    )


# ---- create -----------------------------------------------------------------------------


def test_create_defaults_to_first_free_id_realm_us_and_m1_small(fresh_api: Api) -> None:
    [created] = create(fresh_api, image_id="img1")
    assert created.id == "inst4"
    assert created.realm_id == "us"
    assert created.hardware_profile_id == "m1-small"
    assert created.hardware_profile_overrides == common_pb2.HardwareProfileOverrides()
    assert created.image_id == "img1"
    assert created.owner_id == "mockuser"
    assert created.state == S.INSTANCE_STATE_PENDING
    assert list(created.actions) == []
    assert [a.address for a in created.public_addresses] == ["img1.inst4.public.com"]
    assert [a.address for a in created.private_addresses] == ["img1.inst4.private.com"]
    assert list_ids(fresh_api) == ["inst0", "inst1", "inst2", "inst3", "inst4"]


def test_create_takes_the_first_free_id_left_by_a_destroyed_instance(fresh_api: Api) -> None:
    fresh_api.instances.StopInstance(instance_pb2.StopInstanceRequest(id="inst1"), metadata=MD)
    wait_for_state(fresh_api, "inst1", S.INSTANCE_STATE_STOPPED)
    fresh_api.instances.DeleteInstance(instance_pb2.DeleteInstanceRequest(id="inst1"), metadata=MD)
    assert ids(create(fresh_api, image_id="img2")) == ["inst1"]
    assert ids(create(fresh_api, image_id="img2")) == ["inst4"]


def test_create_with_explicit_realm_profile_name_and_overrides_records_them(
    fresh_api: Api,
) -> None:
    overrides = common_pb2.HardwareProfileOverrides(cpu=4, memory=8192, storage=1024)
    [created] = create(
        fresh_api,
        image_id="img1",
        realm_id="eu",
        hardware_profile_id="m1-large",
        hardware_profile_overrides=overrides,
        name="big one",
    )
    assert (created.realm_id, created.hardware_profile_id, created.name) == (
        "eu",
        "m1-large",
        "big one",
    )
    assert created.hardware_profile_overrides == overrides
    # Recorded, not only echoed: a later read sees the same choice.
    again = get(fresh_api, created.id)
    assert again.hardware_profile_overrides == overrides
    assert (again.realm_id, again.hardware_profile_id, again.name) == ("eu", "m1-large", "big one")


def test_create_accepts_range_bounds_and_enum_values(fresh_api: Api) -> None:
    overrides = common_pb2.HardwareProfileOverrides(memory=32768, storage=4096)
    [created] = create(
        fresh_api,
        image_id="img1",
        hardware_profile_id="m1-xlarge",
        hardware_profile_overrides=overrides,
    )
    assert created.hardware_profile_overrides == overrides


def test_an_override_equal_to_the_default_is_not_recorded(fresh_api: Api) -> None:
    [created] = create(
        fresh_api,
        image_id="img1",
        hardware_profile_id="m1-large",
        hardware_profile_overrides=common_pb2.HardwareProfileOverrides(cpu=1, memory=10240),
    )
    assert created.hardware_profile_overrides == common_pb2.HardwareProfileOverrides()


@pytest.mark.parametrize(
    ("profile_id", "overrides", "prop", "value", "allowed"),
    [
        ("m1-large", {"cpu": 7}, "cpu", "7", "1..6"),
        ("m1-large", {"cpu": 0}, "cpu", "0", "1..6"),
        ("m1-large", {"memory": 15361}, "memory", "15361", "7680..15360"),
        ("m1-large", {"storage": 900}, "storage", "900", "one of 850, 1024"),
        ("m1-xlarge", {"memory": 12287}, "memory", "12287", "12288..32768"),
        ("m1-xlarge", {"cpu": 8}, "cpu", "8", "only 4"),
        ("m1-small", {"memory": 2048}, "memory", "2048", "only 1740.8"),
        ("m1-large", {"architecture": "i386"}, "architecture", "i386", "only x86_64"),
        ("opaque", {"cpu": 2}, "cpu", "2", "nothing: the profile does not describe it"),
    ],
)
def test_create_refuses_an_override_the_profile_does_not_allow(
    api: Api,
    profile_id: str,
    overrides: dict[str, object],
    prop: str,
    value: str,
    allowed: str,
) -> None:
    before = list_ids(api)
    request = instance_pb2.CreateInstanceRequest(
        image_id="img1",
        hardware_profile_id=profile_id,
        hardware_profile_overrides=common_pb2.HardwareProfileOverrides(**overrides),
    )
    f = failure(refusal(api.instances.CreateInstance, request))
    assert f.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f.reason == "INVALID_HARDWARE_PROFILE_OVERRIDE"
    assert f.metadata == {
        **SCOPE,
        "hardware_profile_id": profile_id,
        "property": prop,
        "value": value,
        "allowed": allowed,
    }
    assert list_ids(api) == before


def test_create_with_unknown_profile_is_unknown_hardware_profile(api: Api) -> None:
    request = instance_pb2.CreateInstanceRequest(image_id="img1", hardware_profile_id="m9-huge")
    f = failure(refusal(api.instances.CreateInstance, request))
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_HARDWARE_PROFILE")
    assert f.metadata == {**SCOPE, "hardware_profile_id": "m9-huge"}


@pytest.mark.parametrize("profile_id", ["", "m1-small"], ids=["default profile", "m1-small"])
def test_create_from_unknown_image_is_not_found(api: Api, profile_id: str) -> None:
    before = list_ids(api)
    request = instance_pb2.CreateInstanceRequest(image_id="img99", hardware_profile_id=profile_id)
    f = failure(refusal(api.instances.CreateInstance, request))
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert f.metadata == {**SCOPE, "resource_type": "image", "resource_id": "img99"}
    assert list_ids(api) == before


def test_create_in_unknown_realm_is_not_found(api: Api) -> None:
    request = instance_pb2.CreateInstanceRequest(image_id="img1", realm_id="mars")
    f = failure(refusal(api.instances.CreateInstance, request))
    assert (f.code, f.metadata["resource_type"], f.metadata["resource_id"]) == (
        grpc.StatusCode.NOT_FOUND,
        "realm",
        "mars",
    )


def test_create_without_image_id_is_missing_field(api: Api) -> None:
    request = instance_pb2.CreateInstanceRequest(realm_id="us")
    f = failure(refusal(api.instances.CreateInstance, request))
    assert (f.code, f.reason, f.metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        {"field": "image_id", **MOCK_SCOPE},
    )


def test_instance_count_creates_that_many_instances(fresh_api: Api) -> None:
    created = create(fresh_api, image_id="img3", instance_count=3, name="web")
    assert ids(created) == ["inst4", "inst5", "inst6"]
    assert {(i.name, i.image_id, i.state) for i in created} == {
        ("web", "img3", S.INSTANCE_STATE_PENDING)
    }
    assert list_ids(fresh_api) == [f"inst{n}" for n in range(7)]


def test_instance_count_above_the_maximum_is_refused(api: Api) -> None:
    before = list_ids(api)
    request = instance_pb2.CreateInstanceRequest(image_id="img1", instance_count=101)
    f = failure(refusal(api.instances.CreateInstance, request))
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_INSTANCE_COUNT")
    assert list_ids(api) == before


def test_load_balancer_id_is_refused_as_unsupported_and_creates_nothing(api: Api) -> None:
    before = list_ids(api)
    request = instance_pb2.CreateInstanceRequest(image_id="img1", load_balancer_id="lb1")
    f = failure(refusal(api.instances.CreateInstance, request))
    assert f.code == grpc.StatusCode.UNIMPLEMENTED
    assert f.reason == "FEATURE_NOT_SUPPORTED"
    assert f.metadata == {
        **SCOPE,
        "collection": "instances",
        "feature": "register_to_load_balancer",
        "option": "load_balancer_id",
    }
    assert list_ids(api) == before


# ---- lifecycle --------------------------------------------------------------------------


def test_full_lifecycle_through_the_api(fresh_api: Api) -> None:
    api = fresh_api
    started = time.monotonic()
    [created] = create(api, image_id="img1", name="life")
    assert created.state == S.INSTANCE_STATE_PENDING

    running = wait_for_state(api, created.id, S.INSTANCE_STATE_RUNNING)
    # Not before the configured delay (small allowance for clock granularity).
    assert time.monotonic() - started >= PENDING_DELAY - 0.05
    assert list(running.actions) == [A.INSTANCE_ACTION_REBOOT, A.INSTANCE_ACTION_STOP]

    started = time.monotonic()
    stopping = api.instances.StopInstance(
        instance_pb2.StopInstanceRequest(id=created.id), metadata=MD
    )
    assert (stopping.state, list(stopping.actions)) == (S.INSTANCE_STATE_STOPPING, [])
    stopped = wait_for_state(api, created.id, S.INSTANCE_STATE_STOPPED)
    assert time.monotonic() - started >= STOPPING_DELAY - 0.05
    assert list(stopped.actions) == [A.INSTANCE_ACTION_START, A.INSTANCE_ACTION_DESTROY]

    restarted = api.instances.StartInstance(
        instance_pb2.StartInstanceRequest(id=created.id), metadata=MD
    )
    assert restarted.state == S.INSTANCE_STATE_RUNNING
    assert get(api, created.id).state == S.INSTANCE_STATE_RUNNING

    rebooted = api.instances.RebootInstance(
        instance_pb2.RebootInstanceRequest(id=created.id), metadata=MD
    )
    assert rebooted.state == S.INSTANCE_STATE_RUNNING
    assert get(api, created.id).state == S.INSTANCE_STATE_RUNNING

    api.instances.StopInstance(instance_pb2.StopInstanceRequest(id=created.id), metadata=MD)
    wait_for_state(api, created.id, S.INSTANCE_STATE_STOPPED)
    finished = api.instances.DeleteInstance(
        instance_pb2.DeleteInstanceRequest(id=created.id), metadata=MD
    )
    assert (finished.id, finished.state, list(finished.actions)) == (
        created.id,
        S.INSTANCE_STATE_FINISH,
        [],
    )
    f = failure(refusal(api.instances.GetInstance, instance_pb2.GetInstanceRequest(id=created.id)))
    assert (f.code, f.metadata["resource_id"]) == (grpc.StatusCode.NOT_FOUND, created.id)
    assert created.id not in list_ids(api)


def test_the_list_shows_automatic_transitions_too(fresh_api: Api) -> None:
    [created] = create(fresh_api, image_id="img2")
    deadline = time.monotonic() + WAIT
    while list_ids(fresh_api, state=S.INSTANCE_STATE_RUNNING) != [f"inst{n}" for n in range(5)]:
        assert time.monotonic() < deadline, "inst4 never listed as RUNNING"
        time.sleep(0.02)
    assert list_ids(fresh_api, state=S.INSTANCE_STATE_PENDING) == []
    assert created.id == "inst4"


@pytest.mark.parametrize(
    "rpc", ["StartInstance", "StopInstance", "RebootInstance", "DeleteInstance"]
)
def test_actions_on_an_unknown_instance_are_not_found(api: Api, rpc: str) -> None:
    request_type = REQUESTS[rpc]
    f = failure(refusal(getattr(api.instances, rpc), request_type(id="inst99")))
    assert (f.code, f.metadata["resource_id"]) == (grpc.StatusCode.NOT_FOUND, "inst99")


@pytest.mark.parametrize(
    "rpc", ["StartInstance", "StopInstance", "RebootInstance", "DeleteInstance"]
)
def test_actions_without_id_are_missing_field(api: Api, rpc: str) -> None:
    request_type = REQUESTS[rpc]
    f = failure(refusal(getattr(api.instances, rpc), request_type()))
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MISSING_FIELD")


# ---- state machine enforcement ----------------------------------------------------------


def _not_allowed(api: Api, rpc: str, instance_id: str) -> dict[str, str]:
    request_type = REQUESTS[rpc]
    f = failure(refusal(getattr(api.instances, rpc), request_type(id=instance_id)))
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACTION_NOT_ALLOWED")
    return f.metadata


@pytest.mark.parametrize(
    ("rpc", "action"), [("StartInstance", "start"), ("DeleteInstance", "destroy")]
)
def test_running_instance_refuses_start_and_destroy(api: Api, rpc: str, action: str) -> None:
    assert _not_allowed(api, rpc, "inst2") == {
        **SCOPE,
        "instance_id": "inst2",
        "action": action,
        "state": "running",
        "allowed_actions": "reboot,stop",
    }
    assert get(api, "inst2").state == S.INSTANCE_STATE_RUNNING


@pytest.mark.parametrize(
    ("rpc", "action"),
    [
        ("StartInstance", "start"),
        ("StopInstance", "stop"),
        ("RebootInstance", "reboot"),
        ("DeleteInstance", "destroy"),
    ],
)
def test_pending_instance_refuses_every_action(slow_api: Api, rpc: str, action: str) -> None:
    [created] = create(slow_api, image_id="img1")
    assert _not_allowed(slow_api, rpc, created.id) == {
        **SCOPE,
        "instance_id": created.id,
        "action": action,
        "state": "pending",
        "allowed_actions": "",
    }
    assert get(slow_api, created.id).state == S.INSTANCE_STATE_PENDING


@pytest.mark.parametrize(
    ("rpc", "action"),
    [("StartInstance", "start"), ("StopInstance", "stop"), ("DeleteInstance", "destroy")],
)
def test_stopping_instance_refuses_every_action(slow_api: Api, rpc: str, action: str) -> None:
    # inst0 stays STOPPING for a minute once stopped; the first case stops it.
    if get(slow_api, "inst0").state == S.INSTANCE_STATE_RUNNING:
        slow_api.instances.StopInstance(instance_pb2.StopInstanceRequest(id="inst0"), metadata=MD)
    assert get(slow_api, "inst0").state == S.INSTANCE_STATE_STOPPING
    assert _not_allowed(slow_api, rpc, "inst0") == {
        **SCOPE,
        "instance_id": "inst0",
        "action": action,
        "state": "stopping",
        "allowed_actions": "",
    }


@pytest.mark.parametrize(
    ("rpc", "action"), [("StopInstance", "stop"), ("RebootInstance", "reboot")]
)
def test_stopped_instance_refuses_stop_and_reboot(fresh_api: Api, rpc: str, action: str) -> None:
    fresh_api.instances.StopInstance(instance_pb2.StopInstanceRequest(id="inst3"), metadata=MD)
    wait_for_state(fresh_api, "inst3", S.INSTANCE_STATE_STOPPED)
    assert _not_allowed(fresh_api, rpc, "inst3") == {
        **SCOPE,
        "instance_id": "inst3",
        "action": action,
        "state": "stopped",
        "allowed_actions": "destroy,start",
    }
    assert get(fresh_api, "inst3").state == S.INSTANCE_STATE_STOPPED


# ---- the machine itself -----------------------------------------------------------------


def test_list_instance_states_returns_the_mock_machine(api: Api) -> None:
    T = instance_pb2.Transition
    N = instance_pb2.StateNode
    machine = api.instances.ListInstanceStates(
        instance_pb2.ListInstanceStatesRequest(), metadata=MD
    )
    assert machine == instance_pb2.InstanceStateMachine(
        states=[
            N(
                state=S.INSTANCE_STATE_START,
                transitions=[T(to=S.INSTANCE_STATE_PENDING, action=A.INSTANCE_ACTION_CREATE)],
            ),
            N(
                state=S.INSTANCE_STATE_PENDING,
                transitions=[T(to=S.INSTANCE_STATE_RUNNING, automatic=True)],
            ),
            N(
                state=S.INSTANCE_STATE_RUNNING,
                transitions=[
                    T(to=S.INSTANCE_STATE_RUNNING, action=A.INSTANCE_ACTION_REBOOT),
                    T(to=S.INSTANCE_STATE_STOPPING, action=A.INSTANCE_ACTION_STOP),
                ],
            ),
            N(
                state=S.INSTANCE_STATE_STOPPING,
                transitions=[T(to=S.INSTANCE_STATE_STOPPED, automatic=True)],
            ),
            N(
                state=S.INSTANCE_STATE_STOPPED,
                transitions=[
                    T(to=S.INSTANCE_STATE_RUNNING, action=A.INSTANCE_ACTION_START),
                    T(to=S.INSTANCE_STATE_FINISH, action=A.INSTANCE_ACTION_DESTROY),
                ],
            ),
            N(state=S.INSTANCE_STATE_FINISH),
        ]
    )


def test_list_instance_states_needs_no_credentials(api: Api) -> None:
    machine = api.instances.ListInstanceStates(instance_pb2.ListInstanceStatesRequest())
    assert [n.state for n in machine.states][:2] == [
        S.INSTANCE_STATE_START,
        S.INSTANCE_STATE_PENDING,
    ]


# Keep the module's shared server pristine for the fixture tests above: every test that
# mutates instances uses fresh_api or slow_api; this guard fails if one did not.
def test_the_shared_server_still_holds_exactly_the_fixtures(api: Api) -> None:
    assert list_ids(api) == ["inst0", "inst1", "inst2", "inst3"]
