"""DriverConformance: the pytest suite every driver runs to prove it honours the contract.

Everything goes through a real deltacloud-server process and the generated stubs, as users
do. The suite reads what the driver declares (collections, operations, features, state
machine) and checks, for exactly that:

- the declared collections, operations and features are offered, and nothing else: other
  collections are COLLECTION_NOT_SUPPORTED, other operations OPERATION_NOT_SUPPORTED;
- list and get agree; filters behave as filter_on; pagination is complete and stable; a
  tampered page token, an unknown id and wrong credentials get the documented errors;
- an instance created through the API moves along the declared state machine: after each
  action it is where the machine says, its ``actions`` are the machine's, every action the
  machine does not allow in that state is refused before the driver is called, and the
  watch stream shows exactly the declared transitions;
- keys and buckets (when offered) go through create, read and delete;
- list methods marked ``@nonblocking`` answer on the event loop what they answer on a
  worker (or raise WouldBlock).

Use::

    from deltacloud.drivers.conformance import DriverConformance

    class TestFooConformance(DriverConformance):
        driver = "foo"
        username, password = "demo", "demo-secret"
        server_args = ["--driver-option", "foo.state_file=/tmp/foo.json"]
"""

from __future__ import annotations

import copy
import itertools
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest

from deltacloud.drivers import (
    COLLECTIONS,
    BaseDriver,
    CallContext,
    Credentials,
    DriverConfig,
    DriverRegistry,
    InstanceAction,
    InstanceState,
    StateMachine,
    WouldBlock,
    is_nonblocking,
    models,
)
from deltacloud.v1 import (
    address_pb2,
    bucket_pb2,
    common_pb2,
    discovery_pb2,
    firewall_pb2,
    hardware_profile_pb2,
    image_pb2,
    instance_pb2,
    key_pb2,
    load_balancer_pb2,
    realm_pb2,
    storage_snapshot_pb2,
    storage_volume_pb2,
)

from ..registry import load_driver_class
from .process import ServerProcess
from .stubs import Api, failure, metadata
from .watching import Watcher

NO_SUCH_ID = "conformance-no-such-id"

# (stub attribute, RPC, request type, repeated field of the response) per collection.
LISTS: dict[str, tuple[str, str, type, str]] = {
    "realms": ("realms", "ListRealms", realm_pb2.ListRealmsRequest, "realms"),
    "hardware_profiles": (
        "hardware_profiles",
        "ListHardwareProfiles",
        hardware_profile_pb2.ListHardwareProfilesRequest,
        "hardware_profiles",
    ),
    "images": ("images", "ListImages", image_pb2.ListImagesRequest, "images"),
    "instances": ("instances", "ListInstances", instance_pb2.ListInstancesRequest, "instances"),
    "keys": ("keys", "ListKeys", key_pb2.ListKeysRequest, "keys"),
    "storage_volumes": (
        "volumes",
        "ListStorageVolumes",
        storage_volume_pb2.ListStorageVolumesRequest,
        "storage_volumes",
    ),
    "storage_snapshots": (
        "snapshots",
        "ListStorageSnapshots",
        storage_snapshot_pb2.ListStorageSnapshotsRequest,
        "storage_snapshots",
    ),
    "buckets": ("buckets", "ListBuckets", bucket_pb2.ListBucketsRequest, "buckets"),
    "addresses": ("addresses", "ListAddresses", address_pb2.ListAddressesRequest, "addresses"),
    "firewalls": ("firewalls", "ListFirewalls", firewall_pb2.ListFirewallsRequest, "firewalls"),
    "load_balancers": (
        "load_balancers",
        "ListLoadBalancers",
        load_balancer_pb2.ListLoadBalancersRequest,
        "load_balancers",
    ),
}

# (stub attribute, RPC, request type) of the Get of each collection.
GETS: dict[str, tuple[str, str, type]] = {
    "realms": ("realms", "GetRealm", realm_pb2.GetRealmRequest),
    "hardware_profiles": (
        "hardware_profiles",
        "GetHardwareProfile",
        hardware_profile_pb2.GetHardwareProfileRequest,
    ),
    "images": ("images", "GetImage", image_pb2.GetImageRequest),
    "instances": ("instances", "GetInstance", instance_pb2.GetInstanceRequest),
    "keys": ("keys", "GetKey", key_pb2.GetKeyRequest),
    "storage_volumes": ("volumes", "GetStorageVolume", storage_volume_pb2.GetStorageVolumeRequest),
    "storage_snapshots": (
        "snapshots",
        "GetStorageSnapshot",
        storage_snapshot_pb2.GetStorageSnapshotRequest,
    ),
    "buckets": ("buckets", "GetBucket", bucket_pb2.GetBucketRequest),
    "addresses": ("addresses", "GetAddress", address_pb2.GetAddressRequest),
    "firewalls": ("firewalls", "GetFirewall", firewall_pb2.GetFirewallRequest),
    "load_balancers": (
        "load_balancers",
        "GetLoadBalancer",
        load_balancer_pb2.GetLoadBalancerRequest,
    ),
}

# A call of every (collection, operation) with harmless arguments: the server must refuse
# an operation the driver lacks before it looks at them.
OPERATIONS: dict[tuple[str, str], tuple[str, str, Callable[[], Any]]] = {
    ("images", "create"): (
        "images",
        "CreateImage",
        lambda: image_pb2.CreateImageRequest(instance_id=NO_SUCH_ID),
    ),
    ("images", "destroy"): (
        "images",
        "DeleteImage",
        lambda: image_pb2.DeleteImageRequest(id=NO_SUCH_ID),
    ),
    ("instances", "start"): (
        "instances",
        "StartInstance",
        lambda: instance_pb2.StartInstanceRequest(id=NO_SUCH_ID),
    ),
    ("instances", "stop"): (
        "instances",
        "StopInstance",
        lambda: instance_pb2.StopInstanceRequest(id=NO_SUCH_ID),
    ),
    ("instances", "reboot"): (
        "instances",
        "RebootInstance",
        lambda: instance_pb2.RebootInstanceRequest(id=NO_SUCH_ID),
    ),
    ("instances", "destroy"): (
        "instances",
        "DeleteInstance",
        lambda: instance_pb2.DeleteInstanceRequest(id=NO_SUCH_ID),
    ),
    ("keys", "create"): ("keys", "CreateKey", lambda: key_pb2.CreateKeyRequest(name=NO_SUCH_ID)),
    ("keys", "destroy"): ("keys", "DeleteKey", lambda: key_pb2.DeleteKeyRequest(id=NO_SUCH_ID)),
    ("storage_volumes", "create"): (
        "volumes",
        "CreateStorageVolume",
        lambda: storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=1),
    ),
    ("storage_volumes", "destroy"): (
        "volumes",
        "DeleteStorageVolume",
        lambda: storage_volume_pb2.DeleteStorageVolumeRequest(id=NO_SUCH_ID),
    ),
    ("storage_volumes", "attach"): (
        "volumes",
        "AttachStorageVolume",
        lambda: storage_volume_pb2.AttachStorageVolumeRequest(
            id=NO_SUCH_ID, instance_id=NO_SUCH_ID, device="/dev/xvdz"
        ),
    ),
    ("storage_volumes", "detach"): (
        "volumes",
        "DetachStorageVolume",
        lambda: storage_volume_pb2.DetachStorageVolumeRequest(id=NO_SUCH_ID),
    ),
    ("storage_snapshots", "create"): (
        "snapshots",
        "CreateStorageSnapshot",
        lambda: storage_snapshot_pb2.CreateStorageSnapshotRequest(storage_volume_id=NO_SUCH_ID),
    ),
    ("storage_snapshots", "destroy"): (
        "snapshots",
        "DeleteStorageSnapshot",
        lambda: storage_snapshot_pb2.DeleteStorageSnapshotRequest(id=NO_SUCH_ID),
    ),
    ("buckets", "create"): (
        "buckets",
        "CreateBucket",
        lambda: bucket_pb2.CreateBucketRequest(name=NO_SUCH_ID),
    ),
    ("buckets", "destroy"): (
        "buckets",
        "DeleteBucket",
        lambda: bucket_pb2.DeleteBucketRequest(id=NO_SUCH_ID),
    ),
    ("buckets", "delete_blob"): (
        "buckets",
        "DeleteBlob",
        lambda: bucket_pb2.DeleteBlobRequest(bucket_id=NO_SUCH_ID, id=NO_SUCH_ID),
    ),
    ("buckets", "update_blob_metadata"): (
        "buckets",
        "UpdateBlobMetadata",
        lambda: bucket_pb2.UpdateBlobMetadataRequest(bucket_id=NO_SUCH_ID, id=NO_SUCH_ID),
    ),
    ("addresses", "create"): ("addresses", "CreateAddress", address_pb2.CreateAddressRequest),
    ("addresses", "destroy"): (
        "addresses",
        "DeleteAddress",
        lambda: address_pb2.DeleteAddressRequest(id=NO_SUCH_ID),
    ),
    ("addresses", "associate"): (
        "addresses",
        "AssociateAddress",
        lambda: address_pb2.AssociateAddressRequest(id=NO_SUCH_ID, instance_id=NO_SUCH_ID),
    ),
    ("addresses", "disassociate"): (
        "addresses",
        "DisassociateAddress",
        lambda: address_pb2.DisassociateAddressRequest(id=NO_SUCH_ID),
    ),
    ("firewalls", "create"): (
        "firewalls",
        "CreateFirewall",
        lambda: firewall_pb2.CreateFirewallRequest(name=NO_SUCH_ID, description="x"),
    ),
    ("firewalls", "destroy"): (
        "firewalls",
        "DeleteFirewall",
        lambda: firewall_pb2.DeleteFirewallRequest(id=NO_SUCH_ID),
    ),
    ("firewalls", "create_rule"): (
        "firewalls",
        "CreateFirewallRule",
        lambda: firewall_pb2.CreateFirewallRuleRequest(
            firewall_id=NO_SUCH_ID, protocol="tcp", port_from=22, port_to=22
        ),
    ),
    ("firewalls", "delete_rule"): (
        "firewalls",
        "DeleteFirewallRule",
        lambda: firewall_pb2.DeleteFirewallRuleRequest(firewall_id=NO_SUCH_ID, id=NO_SUCH_ID),
    ),
    ("load_balancers", "create"): (
        "load_balancers",
        "CreateLoadBalancer",
        lambda: load_balancer_pb2.CreateLoadBalancerRequest(
            name=NO_SUCH_ID,
            realm_ids=["x"],
            listeners=[
                load_balancer_pb2.Listener(protocol="tcp", load_balancer_port=80, instance_port=80)
            ],
        ),
    ),
    ("load_balancers", "destroy"): (
        "load_balancers",
        "DeleteLoadBalancer",
        lambda: load_balancer_pb2.DeleteLoadBalancerRequest(id=NO_SUCH_ID),
    ),
    ("load_balancers", "register"): (
        "load_balancers",
        "RegisterInstance",
        lambda: load_balancer_pb2.RegisterInstanceRequest(id=NO_SUCH_ID, instance_id=NO_SUCH_ID),
    ),
    ("load_balancers", "unregister"): (
        "load_balancers",
        "UnregisterInstance",
        lambda: load_balancer_pb2.UnregisterInstanceRequest(id=NO_SUCH_ID, instance_id=NO_SUCH_ID),
    ),
}

ACTION_CALLS: dict[InstanceAction, tuple[str, type]] = {
    InstanceAction.START: ("StartInstance", instance_pb2.StartInstanceRequest),
    InstanceAction.STOP: ("StopInstance", instance_pb2.StopInstanceRequest),
    InstanceAction.REBOOT: ("RebootInstance", instance_pb2.RebootInstanceRequest),
    InstanceAction.DESTROY: ("DeleteInstance", instance_pb2.DeleteInstanceRequest),
}


def _state(value: int) -> InstanceState:
    name = common_pb2.InstanceState.Name(value).removeprefix("INSTANCE_STATE_")
    return InstanceState[name]


def _action(value: int) -> InstanceAction:
    return InstanceAction[common_pb2.InstanceAction.Name(value).removeprefix("INSTANCE_ACTION_")]


def _cause_action(cause: int) -> InstanceAction | None:
    name = instance_pb2.EventCause.Name(cause).removeprefix("EVENT_CAUSE_")
    return InstanceAction[name] if name in InstanceAction.__members__ else None


def _automatic_closure(machine: StateMachine, state: InstanceState) -> set[InstanceState]:
    """States reachable from ``state`` by automatic transitions only (itself included)."""
    found, frontier = {state}, [state]
    while frontier:
        for target in machine.automatic_targets(frontier.pop()):
            if target not in found:
                found.add(target)
                frontier.append(target)
    return found


def _ends(machine: StateMachine, state: InstanceState, action: InstanceAction) -> bool:
    """Whether ``action`` out of ``state`` ends the instance (its automatic transitions
    lead to finish: OpenStack-like stop -> stopping -> finish)."""
    target = machine.target(state, action)
    return target is not None and InstanceState.FINISH in _automatic_closure(machine, target)


def _refusal(call: Callable[..., Any], request: Any, md: Sequence[tuple[str, str]]) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=list(md), timeout=30)
    return failure(caught.value)


class DriverConformance:
    """Subclass (in a class named Test...) and set the class attributes below."""

    #: The driver's name (its ``deltacloud.drivers`` entry point).
    driver: ClassVar[str] = ""
    #: ``MODULE:CLASS`` of a driver not installed (yet): the server serves it with
    #: ``--driver-class``, importing it from this process's path.
    driver_path: ClassVar[str] = ""
    #: The provider to test; empty for the driver's default.
    provider: ClassVar[str] = ""
    #: Credentials of a test account.
    username: ClassVar[str] = ""
    password: ClassVar[str] = ""
    #: Credentials of a second account that shares nothing with the first, if there is
    #: one: the kit then checks that neither sees the other's instances and keys (a
    #: driver that ignores whose they are would pass every other check).
    other_username: ClassVar[str] = ""
    other_password: ClassVar[str] = ""
    #: Extra deltacloud-server flags (driver options, endpoints, ...).
    server_args: ClassVar[Sequence[str]] = ()
    #: Extra environment of the server.
    server_env: ClassVar[Mapping[str, str]] = {}
    #: Whether the backend refuses wrong credentials (a local emulator may accept any).
    rejects_wrong_credentials: ClassVar[bool] = True
    #: Seconds to wait for the cloud's automatic transitions.
    settle_timeout: ClassVar[float] = 30.0
    #: Items per collection read one by one in the list/get check.
    max_gets: ClassVar[int] = 20

    def create_instance_request(self, api: Api) -> instance_pb2.CreateInstanceRequest:
        """The instance the lifecycle check creates: by default from the first image. It
        must offer every action its machine allows (no ``unavailable_actions``): the check
        walks them all."""
        if "images" in self.driver_class().collections:
            images = api.images.ListImages(
                image_pb2.ListImagesRequest(page_size=1), metadata=self.md
            ).images
            assert images, "the driver lists no image to create an instance from"
            return instance_pb2.CreateInstanceRequest(image_id=images[0].id)
        return instance_pb2.CreateInstanceRequest(image_id="conformance-image")

    # ---- fixtures ----------------------------------------------------------------------

    @classmethod
    def driver_class(cls) -> type[BaseDriver]:
        if cls.driver_path:
            return load_driver_class(cls.driver_path)
        return DriverRegistry().load(cls.driver)

    @property
    def md(self) -> list[tuple[str, str]]:
        return metadata(
            self.username, self.password, driver=self.driver, provider=self.provider or None
        )

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_server(
        cls, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServerProcess]:
        assert cls.driver, "set `driver` on the DriverConformance subclass"
        data_dir: Path = tmp_path_factory.mktemp(f"conformance-{cls.driver}")
        args = [
            "--driver",
            cls.driver,
            "--watch-fast-poll-interval",
            "0.1",
            "--watch-poll-interval",
            "0.5",
            *cls.server_args,
        ]
        if cls.provider:
            args += ["--provider", cls.provider]
        env = dict(cls.server_env)
        if cls.driver_path:
            args += ["--driver-class", cls.driver_path]
            paths = [env.get("PYTHONPATH", ""), *sys.path]
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        server = ServerProcess(data_dir, extra_args=args, env=env).start()
        try:
            yield server
        finally:
            server.kill()

    @pytest.fixture(scope="class")
    @classmethod
    def kit_api(cls, conformance_server: ServerProcess) -> Iterator[Api]:
        channel = grpc.insecure_channel(conformance_server.target)
        try:
            yield Api(channel)
        finally:
            channel.close()

    def _list_all(
        self,
        api: Api,
        collection: str,
        md: Sequence[tuple[str, str]] | None = None,
        **filters: Any,
    ) -> list[Any]:
        stub, rpc, request_type, field = LISTS[collection]
        items: list[Any] = []
        token = ""
        while True:
            request = request_type(page_size=1000, page_token=token, **filters)
            answer = getattr(getattr(api, stub), rpc)(request, metadata=md or self.md, timeout=60)
            items.extend(getattr(answer, field))
            token = answer.next_page_token
            if not token:
                return items

    def _declared(self, operation: str = "list") -> list[str]:
        cls = self.driver_class()
        return [c for c in COLLECTIONS if c in cls.collections and cls.supports(c, operation)]

    # ---- what is declared is offered, and nothing else ---------------------------------

    def test_capabilities_name_the_declared_collections_operations_and_features(
        self, kit_api: Api
    ) -> None:
        from deltacloud.server.servicers.discovery import RPCS

        cls = self.driver_class()
        caps = kit_api.discovery.GetCapabilities(
            discovery_pb2.GetCapabilitiesRequest(), metadata=self.md
        )
        assert caps.driver_id == cls.name
        offered = {c.name: c for c in caps.collections}
        expected = [c for c in COLLECTIONS if c in cls.collections]
        if "instances" in cls.collections:
            expected.append("instance_states")
        assert list(offered) == expected
        for name in expected:
            if name == "instance_states":
                continue
            operations = [rpc for op in cls.operations(name) for rpc in RPCS.get((name, op), ())]
            assert list(offered[name].operations) == operations, name
            features = {f.name: dict(f.constraints) for f in offered[name].features}
            declared = {f.name: dict(f.constraints) for f in cls.features.get(name, ())}
            assert features == declared, name

    def test_undeclared_collections_are_refused(self, kit_api: Api) -> None:
        cls = self.driver_class()
        for collection, (stub, rpc, request_type, _) in LISTS.items():
            if collection in cls.collections:
                continue
            f = _refusal(getattr(getattr(kit_api, stub), rpc), request_type(), self.md)
            assert (f.code, f.reason) == (
                grpc.StatusCode.UNIMPLEMENTED,
                "COLLECTION_NOT_SUPPORTED",
            ), collection

    def test_unimplemented_operations_are_refused(self, kit_api: Api) -> None:
        cls = self.driver_class()
        for (collection, operation), (stub, rpc, build) in OPERATIONS.items():
            if collection not in cls.collections or cls.supports(collection, operation):
                continue
            f = _refusal(getattr(getattr(kit_api, stub), rpc), build(), self.md)
            assert (f.code, f.reason) == (
                grpc.StatusCode.UNIMPLEMENTED,
                "OPERATION_NOT_SUPPORTED",
            ), (collection, operation)

    def test_instance_states_are_the_declared_machine(self, kit_api: Api) -> None:
        cls = self.driver_class()
        if "instances" not in cls.collections:
            pytest.skip("the driver declares no instances")  # a fact of the driver, not a gap
        machine = cls.instance_states
        assert machine is not None
        answer = kit_api.instances.ListInstanceStates(
            instance_pb2.ListInstanceStatesRequest(), metadata=self.md
        )
        got = {
            (_state(node.state), _state(t.to), None if t.automatic else _action(t.action))
            for node in answer.states
            for t in node.transitions
        }
        assert got == {(t.source, t.target, t.action) for t in machine.transitions}

    # ---- reading -----------------------------------------------------------------------

    def test_lists_and_gets_agree(self, kit_api: Api) -> None:
        cls = self.driver_class()
        if "instances" in self._declared() and cls.supports("instances", "create"):
            # Two at least: a get_instance that answers the first whatever the id is wrong.
            present = len(self._list_all(kit_api, "instances"))
            for _ in range(2 - present):
                kit_api.instances.CreateInstance(
                    self.create_instance_request(kit_api), metadata=self.md
                )
        for collection in self._declared():
            items = self._list_all(kit_api, collection)
            stub, rpc, request_type = GETS[collection]
            get = getattr(getattr(kit_api, stub), rpc)
            for item in items[: self.max_gets]:
                got = get(request_type(id=item.id), metadata=self.md, timeout=30)
                if collection == "instances":  # may move on its own between the two calls
                    assert (got.id, got.name, got.image_id) == (item.id, item.name, item.image_id)
                else:
                    assert got == item, (collection, item.id)

    def test_filters_keep_exactly_the_matching_items(self, kit_api: Api) -> None:
        for collection in self._declared():
            items = self._list_all(kit_api, collection)
            for name in COLLECTIONS[collection].filters:
                if name == "architecture" and collection == "hardware_profiles":
                    continue  # a property, not an attribute: covered by the server's tests
                values = list(dict.fromkeys(getattr(i, name) for i in items))[:3]
                for value in values:
                    if value in ("", 0):
                        continue
                    kept = self._list_all(kit_api, collection, **{name: value})
                    expected = [i.id for i in items if getattr(i, name) == value]
                    if collection == "instances" and name == "state":
                        # states move on their own; the filter must hold for what it returned
                        assert all(i.state == value for i in kept), (collection, name, value)
                        continue
                    assert sorted(i.id for i in kept) == sorted(expected), (collection, name)

    def test_pagination_is_complete_and_stable(self, kit_api: Api) -> None:
        for collection in self._declared():
            everything = [i.id for i in self._list_all(kit_api, collection)]
            stub, rpc, request_type, field = LISTS[collection]
            call = getattr(getattr(kit_api, stub), rpc)
            for size in (1, 2):
                walked: list[str] = []
                token = ""
                while True:
                    page = call(request_type(page_size=size, page_token=token), metadata=self.md)
                    batch = [i.id for i in getattr(page, field)]
                    assert len(batch) <= size
                    walked.extend(batch)
                    token = page.next_page_token
                    if not token:
                        break
                if collection != "instances":  # others may create instances meanwhile
                    assert walked == everything, (collection, size)
                assert len(walked) == len(set(walked)), (collection, size)

    def test_tampered_page_token_is_invalid_argument(self, kit_api: Api) -> None:
        collection = self._declared()[0]
        stub, rpc, request_type, _ = LISTS[collection]
        call = getattr(getattr(kit_api, stub), rpc)
        f = _refusal(call, request_type(page_size=1, page_token="bm90LWEtdG9rZW4"), self.md)
        assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")

    def test_unknown_ids_are_not_found(self, kit_api: Api) -> None:
        for collection in self._declared():
            stub, rpc, request_type = GETS[collection]
            f = _refusal(getattr(getattr(kit_api, stub), rpc), request_type(id=NO_SUCH_ID), self.md)
            assert f.code == grpc.StatusCode.NOT_FOUND, collection

    def test_wrong_credentials_are_unauthenticated(self, kit_api: Api) -> None:
        if not self.rejects_wrong_credentials:
            pytest.skip("this backend accepts any credentials (set rejects_wrong_credentials)")
        collection = self._declared()[0]
        stub, rpc, request_type, _ = LISTS[collection]
        wrong = metadata(
            self.username,
            self.password + "-wrong",
            driver=self.driver,
            provider=self.provider or None,
        )
        f = _refusal(getattr(getattr(kit_api, stub), rpc), request_type(), wrong)
        assert f.code == grpc.StatusCode.UNAUTHENTICATED
        assert self.password not in f.message

    # ---- the instance state machine ----------------------------------------------------

    def _settle(self, api: Api, instance_id: str, machine: StateMachine) -> Any:
        """Wait until the instance leaves transitional states; returns it (or None once
        it is gone)."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            try:
                instance = api.instances.GetInstance(
                    instance_pb2.GetInstanceRequest(id=instance_id), metadata=self.md
                )
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise
            if not machine.is_transitional(_state(instance.state)):
                return instance
            assert time.monotonic() < deadline, (
                f"{instance_id} stuck in {_state(instance.state).value}"
            )
            time.sleep(0.05)

    def _next_action(
        self, machine: StateMachine, state: InstanceState, done: set[InstanceAction]
    ) -> InstanceAction | None:
        """An untried action out of ``state`` (destroy, and actions that end the instance
        as destroy does, last), or the first step of the shortest path to a state where
        destroy is allowed."""
        allowed = machine.allowed_actions(state)
        fresh = [a for a in allowed if a not in done and a != InstanceAction.DESTROY]
        lasting = [a for a in fresh if not _ends(machine, state, a)]
        if lasting:
            return lasting[0]
        if InstanceAction.DESTROY in allowed:
            return InstanceAction.DESTROY
        if fresh:  # no destroy here, but this action ends the instance too
            return fresh[0]
        paths: list[tuple[InstanceState, InstanceAction | None]] = [(state, None)]
        seen = {state}
        while paths:
            current, first = paths.pop(0)
            for t in machine.transitions_from(current):
                if t.target in seen:
                    continue
                step = first or t.action
                if InstanceAction.DESTROY in machine.allowed_actions(t.target) and step:
                    return step
                seen.add(t.target)
                paths.append((t.target, step))
        return None

    def test_an_instance_moves_along_the_declared_state_machine(self, kit_api: Api) -> None:
        cls = self.driver_class()
        if "instances" not in cls.collections:
            pytest.skip("the driver declares no instances")  # a fact of the driver, not a gap
        machine = cls.instance_states
        assert machine is not None
        watcher = Watcher(kit_api.channel, self.md)
        time.sleep(0.3)
        created = kit_api.instances.CreateInstance(
            self.create_instance_request(kit_api), metadata=self.md
        ).instances[0]
        start_target = machine.target(InstanceState.START, InstanceAction.CREATE)
        assert start_target is not None
        assert _state(created.state) in _automatic_closure(machine, start_target)
        instance_id = created.id
        done: set[InstanceAction] = set()
        ended = False  # by an action whose automatic transitions end in finish
        current = self._settle(kit_api, instance_id, machine)
        for _ in range(12):
            assert current is not None, f"{instance_id} vanished before being destroyed"
            state = _state(current.state)
            allowed = machine.allowed_actions(state)
            assert [_action(a) for a in current.actions] == allowed, state
            for refused, (rpc, request_type) in ACTION_CALLS.items():
                if refused in allowed:
                    continue
                f = _refusal(getattr(kit_api.instances, rpc), request_type(id=instance_id), self.md)
                if cls.supports("instances", refused.value):
                    assert (f.code, f.reason) == (
                        grpc.StatusCode.FAILED_PRECONDITION,
                        "ACTION_NOT_ALLOWED",
                    ), (state, refused)
                    assert f.metadata["state"] == state.value
                else:
                    assert f.reason == "OPERATION_NOT_SUPPORTED", (state, refused)
            action = self._next_action(machine, state, done)
            if action is None:
                break
            rpc, request_type = ACTION_CALLS[action]
            after = getattr(kit_api.instances, rpc)(request_type(id=instance_id), metadata=self.md)
            target = machine.target(state, action)
            assert target is not None
            assert _state(after.state) in _automatic_closure(machine, target), (state, action)
            done.add(action)
            current = self._settle(kit_api, instance_id, machine)
            ended = current is None and InstanceState.FINISH in _automatic_closure(machine, target)
            if action == InstanceAction.DESTROY or ended:
                break
        assert InstanceAction.DESTROY in done or ended or not cls.supports("instances", "destroy")
        # The stream told the same story, one declared transition at a time.
        watcher.wait_until(
            lambda w: any(
                e.instance_id == instance_id and e.state == common_pb2.INSTANCE_STATE_FINISH
                for e in w.events
            ),
            timeout=self.settle_timeout,
        )
        watcher.cancel()
        events = [e for e in watcher.events if e.instance_id == instance_id]
        assert events[0].previous_state == common_pb2.INSTANCE_STATE_START
        previous = InstanceState.START
        for event in events:
            before, after_state = _state(event.previous_state), _state(event.state)
            assert before == previous, "events of an instance must chain"
            cause = _cause_action(event.cause)
            if cause is not None:
                assert machine.target(before, cause) == after_state, (before, cause)
            else:
                assert after_state in _automatic_closure(machine, before), (before, after_state)
            previous = after_state
        caused = {_cause_action(e.cause) for e in events} - {None}
        assert caused == done | {InstanceAction.CREATE}

    # ---- nonblocking methods --------------------------------------------------------------

    def driver_options(self) -> dict[str, str]:
        """The driver's options, from the ``--driver-option NAME.key=value`` server flags."""
        options: dict[str, str] = {}
        args = list(self.server_args)
        for flag, value in itertools.pairwise(args):
            prefix = f"{self.driver}."
            if flag == "--driver-option" and value.startswith(prefix) and "=" in value:
                key, _, option = value[len(prefix) :].partition("=")
                options[key] = option
        return options

    def test_nonblocking_lists_answer_on_the_event_loop_as_on_a_worker(
        self, tmp_path: Path
    ) -> None:
        """A list method marked ``@nonblocking``, called as the server calls it on its event
        loop, either raises WouldBlock or answers what it answers on a worker."""
        cls = self.driver_class()
        lists = [COLLECTIONS[c].operations["list"] for c in COLLECTIONS if c in cls.collections]
        marked = [name for name in lists if is_nonblocking(getattr(cls, name))]
        if not marked:
            pytest.skip("the driver marks no list method @nonblocking")  # a fact of the driver
        provider = self.provider or cls.default_provider()
        driver = cls(provider, DriverConfig(tmp_path, self.driver_options()))
        credentials = Credentials(self.username, self.password)
        worker = CallContext(credentials, provider)
        loop = CallContext(credentials, provider, on_event_loop=True)
        try:
            for name in marked:
                method = getattr(driver, name)
                on_worker = method(worker, {})  # also brings what the loop reads into memory
                try:
                    on_loop = method(loop, {})
                except WouldBlock:
                    continue  # allowed: the server then calls it on a worker
                assert on_loop == on_worker, f"{name} answers differently on the event loop"
        finally:
            driver.close()

    def test_models_handed_out_are_never_changed_afterwards(
        self, kit_api: Api, tmp_path: Path
    ) -> None:
        """What a driver returns is the server's to keep: it keeps the message it made of
        an instance on the model, so a read cache may hand the same object out again
        (docs/writing-a-driver.md). A change must show in new objects, never in objects
        handed out before. Every instance model returned while an instance is created,
        read, settles, is acted on and destroyed (the driver called directly) must still
        equal the copy taken when it was returned."""
        cls = self.driver_class()
        if not cls.supports("instances", "create"):
            pytest.skip("the driver does not create instances")  # a fact of the driver
        machine = cls.instance_states
        assert machine is not None
        request = self.create_instance_request(kit_api)
        provider = self.provider or cls.default_provider()
        driver = cls(provider, DriverConfig(tmp_path, self.driver_options()))
        ctx = CallContext(Credentials(self.username, self.password), provider)
        handed: list[tuple[Any, Any]] = []

        def kept(answer: Any) -> Any:
            handed.append((answer, copy.deepcopy(answer)))
            return answer

        def read(instance_id: str) -> Any:
            kept(driver.list_instances(ctx, {}))
            if not kept(driver.list_instances(ctx, {"id": instance_id})):
                return None
            return kept(driver.get_instance(ctx, instance_id))

        operations = COLLECTIONS["instances"].operations
        try:
            # The profile resolved as the server resolves it: a driver may count on one.
            profile_id = request.hardware_profile_id or driver.default_hardware_profile_id(
                ctx, request.image_id
            )
            opts = models.CreateInstance(
                image_id=request.image_id,
                hardware_profile_id=profile_id,
                realm_id=request.realm_id,
            )
            instance_id = kept(driver.create_instance(ctx, opts))[0].id
            done: set[InstanceAction] = set()
            deadline = time.monotonic() + self.settle_timeout
            for _ in range(12):
                current = read(instance_id)
                if current is None:
                    break
                if machine.is_transitional(current.state):
                    assert time.monotonic() < deadline, f"{instance_id} stuck in {current.state}"
                    time.sleep(0.05)
                    continue
                action = self._next_action(machine, current.state, done)
                if action is None or not cls.supports("instances", action.value):
                    break
                done.add(action)
                kept(getattr(driver, operations[action.value])(ctx, instance_id))
                deadline = time.monotonic() + self.settle_timeout
        finally:
            driver.close()
        assert len(handed) > 4
        for model, taken in handed:
            assert model == taken, "a model handed out was changed afterwards"

    # ---- create, read, delete ----------------------------------------------------------

    def test_keys_are_created_read_and_deleted(self, kit_api: Api) -> None:
        cls = self.driver_class()
        if not (cls.supports("keys", "create") and cls.supports("keys", "destroy")):
            pytest.skip("the driver does not create and delete keys")  # a fact of the driver
        name = f"conformance-{secrets.token_hex(4)}"
        key = kit_api.keys.CreateKey(key_pb2.CreateKeyRequest(name=name), metadata=self.md)
        got = kit_api.keys.GetKey(key_pb2.GetKeyRequest(id=key.id), metadata=self.md)
        assert got.id == key.id and not got.pem_rsa_key  # a private key is shown once only
        assert key.id in [k.id for k in self._list_all(kit_api, "keys")]
        kit_api.keys.DeleteKey(key_pb2.DeleteKeyRequest(id=key.id), metadata=self.md)
        f = _refusal(kit_api.keys.GetKey, key_pb2.GetKeyRequest(id=key.id), self.md)
        assert f.code == grpc.StatusCode.NOT_FOUND

    def test_one_account_sees_nothing_of_anothers(self, kit_api: Api) -> None:
        if not self.other_username:
            pytest.skip("no second account given (other_username, other_password)")
        other = metadata(
            self.other_username,
            self.other_password,
            driver=self.driver,
            provider=self.provider or None,
        )
        cls = self.driver_class()
        if cls.supports("instances"):
            mine = {i.id for i in self._list_all(kit_api, "instances")}
            theirs = {i.id for i in self._list_all(kit_api, "instances", md=other)}
            assert not mine & theirs, f"both accounts list the instances {sorted(mine & theirs)}"
            for instance_id in sorted(mine)[: self.max_gets]:
                request = instance_pb2.GetInstanceRequest(id=instance_id)
                f = _refusal(kit_api.instances.GetInstance, request, other)
                assert f.code == grpc.StatusCode.NOT_FOUND, (instance_id, f.code)
        if cls.supports("keys", "create") and cls.supports("keys", "destroy"):
            name = f"conformance-{secrets.token_hex(4)}"
            key = kit_api.keys.CreateKey(key_pb2.CreateKeyRequest(name=name), metadata=self.md)
            try:
                assert key.id not in [k.id for k in self._list_all(kit_api, "keys", md=other)]
                f = _refusal(kit_api.keys.GetKey, key_pb2.GetKeyRequest(id=key.id), other)
                assert f.code == grpc.StatusCode.NOT_FOUND, f.code
            finally:
                kit_api.keys.DeleteKey(key_pb2.DeleteKeyRequest(id=key.id), metadata=self.md)

    def _new_bucket_for_blobs(self, kit_api: Api) -> bucket_pb2.Bucket:
        """A new bucket, or a skip when the driver does not do buckets and blobs."""
        cls = self.driver_class()
        needed = ("create", "destroy", "put_blob", "download_blob", "delete_blob")
        if not all(cls.supports("buckets", op) for op in needed):
            pytest.skip("the driver does not create buckets and put blobs")  # a fact
        name = f"conformance-{secrets.token_hex(4)}"
        return kit_api.buckets.CreateBucket(  # type: ignore[no-any-return]
            bucket_pb2.CreateBucketRequest(name=name), metadata=self.md
        )

    def _download(self, kit_api: Api, bucket_id: str, blob_id: str) -> bytes:
        request = bucket_pb2.DownloadBlobRequest(bucket_id=bucket_id, id=blob_id)
        return b"".join(m.chunk for m in kit_api.buckets.DownloadBlob(request, metadata=self.md))

    def test_an_upload_that_fails_midway_leaves_the_previous_version(self, kit_api: Api) -> None:
        """PutBlob's chunks raise when the client cancels or sends another length than it
        announced (the server decides); the driver must store nothing then."""
        bucket = self._new_bucket_for_blobs(kit_api)
        old = secrets.token_bytes(1000)

        def upload(content: bytes, announced: int) -> bucket_pb2.Blob:
            header = bucket_pb2.UploadBlobHeader(
                bucket_id=bucket.id, blob_id="blob", content_length=announced
            )
            requests = [
                bucket_pb2.UploadBlobRequest(header=header),
                bucket_pb2.UploadBlobRequest(chunk=content),
            ]
            return kit_api.buckets.UploadBlob(iter(requests), metadata=self.md)  # type: ignore[no-any-return]

        upload(old, len(old))
        with pytest.raises(grpc.RpcError) as caught:
            upload(secrets.token_bytes(700), 2000)
        f = failure(caught.value)
        assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CONTENT_LENGTH_MISMATCH")
        downloaded = self._download(kit_api, bucket.id, "blob")
        assert downloaded == old, "a failed upload replaced the blob"
        kit_api.buckets.DeleteBlob(
            bucket_pb2.DeleteBlobRequest(bucket_id=bucket.id, id="blob"), metadata=self.md
        )
        kit_api.buckets.DeleteBucket(bucket_pb2.DeleteBucketRequest(id=bucket.id), metadata=self.md)

    def test_a_buckets_blobs_page_completely_and_by_prefix(self, kit_api: Api) -> None:
        """ListBlobs walked in pages of 1 and 2 (by the server, or by the driver's
        list_page when it pages "blobs" natively) serves every blob once, and the prefix
        keeps exactly the blobs it starts."""
        bucket = self._new_bucket_for_blobs(kit_api)
        names = ["a/1", "a/2", "a/3", "b/1", "b/2"]
        for name in names:
            header = bucket_pb2.UploadBlobHeader(bucket_id=bucket.id, blob_id=name)
            requests = [
                bucket_pb2.UploadBlobRequest(header=header),
                bucket_pb2.UploadBlobRequest(chunk=name.encode()),
            ]
            kit_api.buckets.UploadBlob(iter(requests), metadata=self.md)

        def walk(prefix: str, size: int) -> list[str]:
            walked: list[str] = []
            token = ""
            while True:
                page = kit_api.buckets.ListBlobs(
                    bucket_pb2.ListBlobsRequest(
                        bucket_id=bucket.id, prefix=prefix, page_size=size, page_token=token
                    ),
                    metadata=self.md,
                )
                assert len(page.blobs) <= size
                walked += [b.id for b in page.blobs]
                token = page.next_page_token
                if not token:
                    return walked

        for size in (1, 2, 1000):
            assert sorted(walk("", size)) == names, size
            assert len(walk("", size)) == len(names), size
            assert sorted(walk("a/", size)) == ["a/1", "a/2", "a/3"], size
        for name in names:
            kit_api.buckets.DeleteBlob(
                bucket_pb2.DeleteBlobRequest(bucket_id=bucket.id, id=name), metadata=self.md
            )
        kit_api.buckets.DeleteBucket(bucket_pb2.DeleteBucketRequest(id=bucket.id), metadata=self.md)

    def test_blobs_round_trip_through_a_new_bucket(self, kit_api: Api) -> None:
        bucket = self._new_bucket_for_blobs(kit_api)
        content = secrets.token_bytes(300_000)
        chunks = [content[i : i + 65536] for i in range(0, len(content), 65536)]
        header = bucket_pb2.UploadBlobHeader(
            bucket_id=bucket.id, blob_id="blob", content_type="application/octet-stream"
        )
        requests = [bucket_pb2.UploadBlobRequest(header=header)] + [
            bucket_pb2.UploadBlobRequest(chunk=c) for c in chunks
        ]
        blob = kit_api.buckets.UploadBlob(iter(requests), metadata=self.md)
        assert blob.content_length == len(content)
        downloaded = self._download(kit_api, bucket.id, "blob")
        assert downloaded == content
        kit_api.buckets.DeleteBlob(
            bucket_pb2.DeleteBlobRequest(bucket_id=bucket.id, id="blob"), metadata=self.md
        )
        kit_api.buckets.DeleteBucket(bucket_pb2.DeleteBucketRequest(id=bucket.id), metadata=self.md)
        f = _refusal(kit_api.buckets.GetBucket, bucket_pb2.GetBucketRequest(id=bucket.id), self.md)
        assert f.code == grpc.StatusCode.NOT_FOUND
