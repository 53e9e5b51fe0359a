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
- storage volumes, storage snapshots, addresses, firewalls and load balancers go through
  their lifecycles as far as the driver declares their operations: created, listed and
  read as created, attached to (associated with, registered with) a running instance the
  kit makes and detached again, their rules added and removed, deleted and then NOT_FOUND;
  the refusals the API documents on the way (attach to an unknown instance, delete while
  attached or associated) are checked too;
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

import contextlib
import copy
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

    @classmethod
    def server_flags(cls) -> list[str]:
        """The flags the kit's server is started with (after ServerProcess's own)."""
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
        if cls.driver_path:
            args += ["--driver-class", cls.driver_path]
        return args

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_server(
        cls, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[ServerProcess]:
        assert cls.driver, "set `driver` on the DriverConformance subclass"
        data_dir: Path = tmp_path_factory.mktemp(f"conformance-{cls.driver}")
        env = dict(cls.server_env)
        if cls.driver_path:
            paths = [env.get("PYTHONPATH", ""), *sys.path]
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        server = ServerProcess(data_dir, extra_args=cls.server_flags(), env=env).start()
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
        """The options the kit's server hands the driver, read by the server's own parser
        from the flags and environment it is started with: ``--driver-option NAME.k=v``,
        ``--driver-option=NAME.k=v``, argparse's abbreviations of the flag (``--driver-opt``),
        ``DELTACLOUD_DRIVER_OPTIONS`` in ``server_env`` (a space-separated list the flags
        add to), white space around the key and value stripped, the last one winning."""
        from deltacloud.server import config

        # ServerProcess drops the caller's DELTACLOUD_* variables: server_env is all the
        # environment of the server's that the parser reads.
        parsed = config.load(self.server_flags(), environ=dict(self.server_env))
        return parsed.options_for(self.driver_class().name)

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

    # ---- storage and network lifecycles ------------------------------------------------

    def _require(self, collection: str, *operations: str, why: str = "") -> None:
        """Skip, naming what is missing, unless the driver declares ``operations`` of
        ``collection`` (a fact of the driver, not a gap)."""
        cls = self.driver_class()
        if collection not in cls.collections:
            pytest.skip(f"the driver declares no {collection}{why}")
        missing = [op for op in operations if not cls.supports(collection, op)]
        if missing:
            pytest.skip(f"the driver does not declare {collection} {', '.join(missing)}{why}")

    def _quietly(self, call: Callable[..., Any], request: Any) -> None:
        """A clean-up call: the object may be gone already (the check failed first)."""
        with contextlib.suppress(grpc.RpcError):
            call(request, metadata=self.md, timeout=30)

    def _wait_for(self, fetch: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
        """``fetch()`` until ``done`` holds for it, for at most ``settle_timeout``."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            got = fetch()
            if done(got):
                return got
            assert time.monotonic() < deadline, f"{what}; still {got}"
            time.sleep(0.05)

    def _get(self, api: Api, collection: str, item_id: str) -> Any:
        stub, rpc, request_type = GETS[collection]
        get = getattr(getattr(api, stub), rpc)
        return get(request_type(id=item_id), metadata=self.md, timeout=30)

    def _listed_as_got(self, api: Api, collection: str, item: Any) -> Any:
        """The item is listed, alone when listed by its id, as GetX answers it; returns it."""
        got = self._get(api, collection, item.id)
        listed = [i for i in self._list_all(api, collection) if i.id == item.id]
        assert listed == [got], f"{collection} {item.id}: listed {listed}, got {got}"
        assert self._list_all(api, collection, id=item.id) == [got], (collection, item.id)
        return got

    def _gone(
        self,
        api: Api,
        collection: str,
        item_id: str,
        lingering: Callable[[Any], bool] = lambda _: False,
    ) -> None:
        """After its delete the item is NOT_FOUND (once ``lingering`` stops holding for
        what GetX still answers, e.g. a volume DELETING) and listed no more."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            try:
                got = self._get(api, collection, item_id)
            except grpc.RpcError as error:
                f = failure(error)
                assert f.code == grpc.StatusCode.NOT_FOUND, (collection, item_id, f)
                break
            assert lingering(got) and time.monotonic() < deadline, (
                f"{collection} {item_id} is still there after its delete: {got}"
            )
            time.sleep(0.05)
        assert item_id not in [i.id for i in self._list_all(api, collection)], (collection, item_id)

    def _a_realm(self, api: Api) -> str:
        """The first realm listed, or "" (the driver's default) when it lists none."""
        if "realms" not in self.driver_class().collections:
            return ""
        realms = api.realms.ListRealms(realm_pb2.ListRealmsRequest(page_size=1), metadata=self.md)
        return realms.realms[0].id if realms.realms else ""

    @staticmethod
    def _first_step(
        machine: StateMachine, state: InstanceState, goal: InstanceState
    ) -> InstanceAction | None:
        """The action out of ``state`` that begins a shortest path to ``goal`` (automatic
        transitions followed on the way), or None when there is none."""
        paths: list[tuple[InstanceState, InstanceAction | None]] = [(state, None)]
        seen = {state}
        while paths:
            current, first = paths.pop(0)
            for t in machine.transitions_from(current):
                step = first or t.action
                if t.target in seen or step is None:
                    continue
                if t.target == goal:
                    return step
                seen.add(t.target)
                paths.append((t.target, step))
        return None

    @contextlib.contextmanager
    def _running_instance(self, api: Api, purpose: str) -> Iterator[Any]:
        """A new instance of the kit's, walked along the machine to running; destroyed
        afterwards (walked to a state that allows destroy)."""
        cls = self.driver_class()
        if not cls.supports("instances", "create"):
            pytest.skip(
                f"{purpose} needs an instance the kit makes; the driver does not "
                "declare instances create"
            )
        machine = cls.instance_states
        assert machine is not None
        created = api.instances.CreateInstance(
            self.create_instance_request(api), metadata=self.md
        ).instances[0]
        try:
            current = self._settle(api, created.id, machine)
            for _ in range(12):
                assert current is not None, f"{created.id} vanished before it ran"
                state = _state(current.state)
                if state == InstanceState.RUNNING:
                    break
                action = self._first_step(machine, state, InstanceState.RUNNING)
                assert action is not None, f"the machine leads nowhere running from {state}"
                rpc, request_type = ACTION_CALLS[action]
                getattr(api.instances, rpc)(request_type(id=created.id), metadata=self.md)
                current = self._settle(api, created.id, machine)
            assert current is not None and _state(current.state) == InstanceState.RUNNING
            yield current
        finally:
            self._dispose_of_instance(api, created.id)

    def _dispose_of_instance(self, api: Api, instance_id: str) -> None:
        cls = self.driver_class()
        machine = cls.instance_states
        assert machine is not None
        everything = set(InstanceAction)
        for _ in range(12):
            current = self._settle(api, instance_id, machine)
            if current is None:
                return
            action = self._next_action(machine, _state(current.state), everything)
            if action is None or not cls.supports("instances", action.value):
                return  # the driver cannot end it: the backend keeps it
            rpc, request_type = ACTION_CALLS[action]
            self._quietly(getattr(api.instances, rpc), request_type(id=instance_id))

    # storage volumes

    def _new_volume(self, api: Api, realm_id: str) -> Any:
        """A new 1 GB volume in ``realm_id``, named and described when the driver has the
        features, checked as created and waited for until AVAILABLE."""
        cls = self.driver_class()
        token = secrets.token_hex(4)
        request = storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=1, realm_id=realm_id)
        if cls.feature("storage_volumes", "volume_name"):
            request.name = f"conformance-{token}"
        if cls.feature("storage_volumes", "volume_description"):
            request.description = f"made by the conformance kit ({token})"
        volume = api.volumes.CreateStorageVolume(request, metadata=self.md)
        creating = storage_volume_pb2.StorageVolume.STATE_CREATING
        available = storage_volume_pb2.StorageVolume.STATE_AVAILABLE
        assert volume.id and volume.state in (creating, available), volume
        assert (volume.capacity_gb, volume.instance_id, volume.device) == (1, "", ""), volume
        assert volume.realm_id == (realm_id or volume.realm_id) and volume.realm_id, volume
        if request.name:
            assert volume.name == request.name, volume
        if request.description:
            assert volume.description == request.description, volume
        return self._wait_for(
            lambda: api.volumes.GetStorageVolume(
                storage_volume_pb2.GetStorageVolumeRequest(id=volume.id), metadata=self.md
            ),
            lambda got: got.state != creating,
            f"volume {volume.id} stays CREATING",
        )

    def _delete_volume(self, api: Api, volume_id: str) -> None:
        api.volumes.DeleteStorageVolume(
            storage_volume_pb2.DeleteStorageVolumeRequest(id=volume_id), metadata=self.md
        )
        deleting = storage_volume_pb2.StorageVolume.STATE_DELETING
        self._gone(api, "storage_volumes", volume_id, lambda v: v.state == deleting)

    def test_storage_volumes_are_created_read_and_destroyed(self, kit_api: Api) -> None:
        self._require("storage_volumes", "create", "destroy")
        realm_id = self._a_realm(kit_api)
        volume = self._new_volume(kit_api, realm_id)
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(
                self._quietly,
                kit_api.volumes.DeleteStorageVolume,
                storage_volume_pb2.DeleteStorageVolumeRequest(id=volume.id),
            )
            assert volume.state == storage_volume_pb2.StorageVolume.STATE_AVAILABLE, volume
            self._listed_as_got(kit_api, "storage_volumes", volume)
            available = self._list_all(
                kit_api, "storage_volumes", state=storage_volume_pb2.StorageVolume.STATE_AVAILABLE
            )
            assert volume.id in [v.id for v in available]
            self._delete_volume(kit_api, volume.id)
            request = storage_volume_pb2.DeleteStorageVolumeRequest(id=volume.id)
            f = _refusal(kit_api.volumes.DeleteStorageVolume, request, self.md)
            assert f.code == grpc.StatusCode.NOT_FOUND, f

    def test_attaching_a_volume_to_an_unknown_instance_is_not_found(self, kit_api: Api) -> None:
        self._require("storage_volumes", "create", "destroy", "attach")
        volume = self._new_volume(kit_api, self._a_realm(kit_api))
        try:
            request = storage_volume_pb2.AttachStorageVolumeRequest(
                id=volume.id, instance_id=NO_SUCH_ID, device="/dev/sdf"
            )
            f = _refusal(kit_api.volumes.AttachStorageVolume, request, self.md)
            assert f.code == grpc.StatusCode.NOT_FOUND, f
            after = kit_api.volumes.GetStorageVolume(
                storage_volume_pb2.GetStorageVolumeRequest(id=volume.id), metadata=self.md
            )
            assert after == volume, "a refused attach changed the volume"
        finally:
            self._delete_volume(kit_api, volume.id)

    def test_a_volume_attaches_to_a_running_instance_and_detaches(self, kit_api: Api) -> None:
        self._require("storage_volumes", "create", "destroy", "attach", "detach")
        in_use = storage_volume_pb2.StorageVolume.STATE_IN_USE
        available = storage_volume_pb2.StorageVolume.STATE_AVAILABLE
        attaching = storage_volume_pb2.StorageVolume.STATE_ATTACHING
        device = "/dev/sdf"
        with (
            self._running_instance(kit_api, "attaching a volume") as instance,
            contextlib.ExitStack() as cleanup,
        ):
            volume = self._new_volume(kit_api, instance.realm_id)
            cleanup.callback(
                self._quietly,
                kit_api.volumes.DeleteStorageVolume,
                storage_volume_pb2.DeleteStorageVolumeRequest(id=volume.id),
            )
            cleanup.callback(
                self._quietly,
                kit_api.volumes.DetachStorageVolume,
                storage_volume_pb2.DetachStorageVolumeRequest(id=volume.id),
            )
            get = storage_volume_pb2.GetStorageVolumeRequest(id=volume.id)
            attached = kit_api.volumes.AttachStorageVolume(
                storage_volume_pb2.AttachStorageVolumeRequest(
                    id=volume.id, instance_id=instance.id, device=device
                ),
                metadata=self.md,
            )
            assert attached.state in (attaching, in_use), attached
            assert (attached.instance_id, attached.device) == (instance.id, device), attached
            attached = self._wait_for(
                lambda: kit_api.volumes.GetStorageVolume(get, metadata=self.md),
                lambda v: v.state != attaching,
                f"volume {volume.id} stays ATTACHING",
            )
            assert (attached.state, attached.instance_id, attached.device) == (
                in_use,
                instance.id,
                device,
            ), attached
            self._listed_as_got(kit_api, "storage_volumes", attached)
            self._check_no_attach_across_realms(kit_api, instance)
            assert volume.id in [
                v.id for v in self._list_all(kit_api, "storage_volumes", state=in_use)
            ]
            shown = kit_api.instances.GetInstance(
                instance_pb2.GetInstanceRequest(id=instance.id), metadata=self.md
            )
            assert volume.id in shown.storage_volume_ids, shown.storage_volume_ids
            # What the API documents of an attached volume: no second attach, no delete.
            again = storage_volume_pb2.AttachStorageVolumeRequest(
                id=volume.id, instance_id=instance.id, device="/dev/sdg"
            )
            f = _refusal(kit_api.volumes.AttachStorageVolume, again, self.md)
            assert f.code == grpc.StatusCode.FAILED_PRECONDITION, f
            delete = storage_volume_pb2.DeleteStorageVolumeRequest(id=volume.id)
            f = _refusal(kit_api.volumes.DeleteStorageVolume, delete, self.md)
            assert f.code == grpc.StatusCode.FAILED_PRECONDITION, f
            still = kit_api.volumes.GetStorageVolume(get, metadata=self.md)
            assert (still.state, still.instance_id, still.device) == (in_use, instance.id, device)
            detached = kit_api.volumes.DetachStorageVolume(
                storage_volume_pb2.DetachStorageVolumeRequest(id=volume.id), metadata=self.md
            )
            assert detached.state in (attaching, available), detached
            detached = self._wait_for(
                lambda: kit_api.volumes.GetStorageVolume(get, metadata=self.md),
                lambda v: v.state != attaching,
                f"volume {volume.id} stays ATTACHING after its detach",
            )
            assert (detached.state, detached.instance_id, detached.device) == (available, "", "")
            shown = kit_api.instances.GetInstance(
                instance_pb2.GetInstanceRequest(id=instance.id), metadata=self.md
            )
            assert volume.id not in shown.storage_volume_ids, shown.storage_volume_ids
            f = _refusal(
                kit_api.volumes.DetachStorageVolume,
                storage_volume_pb2.DetachStorageVolumeRequest(id=volume.id),
                self.md,
            )
            assert f.code == grpc.StatusCode.FAILED_PRECONDITION, f
            self._delete_volume(kit_api, volume.id)

    def _check_no_attach_across_realms(self, api: Api, instance: Any) -> None:
        """A volume of another realm than the instance's does not attach to it
        (FAILED_PRECONDITION), when the driver lists another realm."""
        if "realms" not in self.driver_class().collections:
            return
        others = [r.id for r in self._list_all(api, "realms") if r.id != instance.realm_id]
        if not others:
            return
        volume = self._new_volume(api, others[0])
        try:
            request = storage_volume_pb2.AttachStorageVolumeRequest(
                id=volume.id, instance_id=instance.id, device="/dev/sdh"
            )
            f = _refusal(api.volumes.AttachStorageVolume, request, self.md)
            assert f.code == grpc.StatusCode.FAILED_PRECONDITION, f
        finally:
            self._delete_volume(api, volume.id)

    # storage snapshots

    def test_storage_snapshots_are_taken_of_a_volume_read_and_destroyed(self, kit_api: Api) -> None:
        self._require("storage_snapshots", "create", "destroy")
        self._require("storage_volumes", "create", "destroy", why=" (to snapshot one of its own)")
        pending = storage_snapshot_pb2.StorageSnapshot.STATE_PENDING
        completed = storage_snapshot_pb2.StorageSnapshot.STATE_COMPLETED
        unknown = storage_snapshot_pb2.CreateStorageSnapshotRequest(storage_volume_id=NO_SUCH_ID)
        f = _refusal(kit_api.snapshots.CreateStorageSnapshot, unknown, self.md)
        assert f.code == grpc.StatusCode.NOT_FOUND, f
        volume = self._new_volume(kit_api, self._a_realm(kit_api))
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(
                self._quietly,
                kit_api.volumes.DeleteStorageVolume,
                storage_volume_pb2.DeleteStorageVolumeRequest(id=volume.id),
            )
            snapshot = kit_api.snapshots.CreateStorageSnapshot(
                storage_snapshot_pb2.CreateStorageSnapshotRequest(storage_volume_id=volume.id),
                metadata=self.md,
            )
            cleanup.callback(
                self._quietly,
                kit_api.snapshots.DeleteStorageSnapshot,
                storage_snapshot_pb2.DeleteStorageSnapshotRequest(id=snapshot.id),
            )
            assert snapshot.id and snapshot.storage_volume_id == volume.id, snapshot
            assert snapshot.state in (pending, completed), snapshot
            snapshot = self._wait_for(
                lambda: kit_api.snapshots.GetStorageSnapshot(
                    storage_snapshot_pb2.GetStorageSnapshotRequest(id=snapshot.id),
                    metadata=self.md,
                ),
                lambda s: s.state != pending,
                f"snapshot {snapshot.id} stays PENDING",
            )
            assert snapshot.state == completed and snapshot.storage_volume_id == volume.id
            self._listed_as_got(kit_api, "storage_snapshots", snapshot)
            of_volume = self._list_all(kit_api, "storage_snapshots", storage_volume_id=volume.id)
            assert [s.id for s in of_volume] == [snapshot.id]
            if self.driver_class().feature("storage_volumes", "volume_from_snapshot"):
                # capacity_gb 0: the snapshot's size, which is the volume's it was taken of.
                restored = kit_api.volumes.CreateStorageVolume(
                    storage_volume_pb2.CreateStorageVolumeRequest(
                        snapshot_id=snapshot.id, realm_id=volume.realm_id
                    ),
                    metadata=self.md,
                )
                cleanup.callback(
                    self._quietly,
                    kit_api.volumes.DeleteStorageVolume,
                    storage_volume_pb2.DeleteStorageVolumeRequest(id=restored.id),
                )
                assert (restored.capacity_gb, restored.realm_id) == (1, volume.realm_id)
                assert restored.id != volume.id and not restored.instance_id, restored
                self._wait_for(
                    lambda: self._get(kit_api, "storage_volumes", restored.id),
                    lambda v: v.state == storage_volume_pb2.StorageVolume.STATE_AVAILABLE,
                    f"volume {restored.id} made of snapshot {snapshot.id} never AVAILABLE",
                )
                self._delete_volume(kit_api, restored.id)
            kit_api.snapshots.DeleteStorageSnapshot(
                storage_snapshot_pb2.DeleteStorageSnapshotRequest(id=snapshot.id),
                metadata=self.md,
            )
            self._gone(kit_api, "storage_snapshots", snapshot.id)
            f = _refusal(
                kit_api.snapshots.DeleteStorageSnapshot,
                storage_snapshot_pb2.DeleteStorageSnapshotRequest(id=snapshot.id),
                self.md,
            )
            assert f.code == grpc.StatusCode.NOT_FOUND, f
            self._delete_volume(kit_api, volume.id)

    # addresses

    def _new_address(self, api: Api) -> Any:
        address = api.addresses.CreateAddress(address_pb2.CreateAddressRequest(), metadata=self.md)
        assert address.id and address.ip_address == address.id, address
        assert not address.instance_id, address
        return address

    def test_addresses_are_allocated_read_and_released(self, kit_api: Api) -> None:
        self._require("addresses", "create", "destroy")
        address = self._new_address(kit_api)
        try:
            self._listed_as_got(kit_api, "addresses", address)
            # What the API documents of an address associated with nothing.
            if self.driver_class().supports("addresses", "disassociate"):
                loose = address_pb2.DisassociateAddressRequest(id=address.id)
                f = _refusal(kit_api.addresses.DisassociateAddress, loose, self.md)
                assert f.code == grpc.StatusCode.FAILED_PRECONDITION, f
            if self.driver_class().supports("addresses", "associate"):
                unknown = address_pb2.AssociateAddressRequest(id=address.id, instance_id=NO_SUCH_ID)
                f = _refusal(kit_api.addresses.AssociateAddress, unknown, self.md)
                assert f.code == grpc.StatusCode.NOT_FOUND, f
                assert not self._get(kit_api, "addresses", address.id).instance_id
        finally:
            kit_api.addresses.DeleteAddress(
                address_pb2.DeleteAddressRequest(id=address.id), metadata=self.md
            )
        self._gone(kit_api, "addresses", address.id)
        request = address_pb2.DeleteAddressRequest(id=address.id)
        f = _refusal(kit_api.addresses.DeleteAddress, request, self.md)
        assert f.code == grpc.StatusCode.NOT_FOUND, f

    def test_an_address_is_associated_with_a_running_instance_and_disassociated(
        self, kit_api: Api
    ) -> None:
        self._require("addresses", "create", "destroy", "associate", "disassociate")

        def public_ips(instance_id: str) -> list[str]:
            shown = kit_api.instances.GetInstance(
                instance_pb2.GetInstanceRequest(id=instance_id), metadata=self.md
            )
            return [a.address for a in shown.public_addresses]

        with (
            self._running_instance(kit_api, "associating an address") as instance,
            contextlib.ExitStack() as cleanup,
        ):
            address = self._new_address(kit_api)
            cleanup.callback(
                self._quietly,
                kit_api.addresses.DeleteAddress,
                address_pb2.DeleteAddressRequest(id=address.id),
            )
            cleanup.callback(
                self._quietly,
                kit_api.addresses.DisassociateAddress,
                address_pb2.DisassociateAddressRequest(id=address.id),
            )
            associated = kit_api.addresses.AssociateAddress(
                address_pb2.AssociateAddressRequest(id=address.id, instance_id=instance.id),
                metadata=self.md,
            )
            assert associated.instance_id == instance.id, associated
            got = self._listed_as_got(kit_api, "addresses", associated)
            assert got.instance_id == instance.id, got
            assert address.ip_address in public_ips(instance.id)
            # What the API documents of an associated address: no second association, no
            # release.
            for call, request in (
                (
                    kit_api.addresses.AssociateAddress,
                    address_pb2.AssociateAddressRequest(id=address.id, instance_id=instance.id),
                ),
                (kit_api.addresses.DeleteAddress, address_pb2.DeleteAddressRequest(id=address.id)),
            ):
                f = _refusal(call, request, self.md)
                assert (f.code, f.reason) == (
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "ADDRESS_IN_USE",
                ), (type(request).__name__, f)
            disassociated = kit_api.addresses.DisassociateAddress(
                address_pb2.DisassociateAddressRequest(id=address.id), metadata=self.md
            )
            assert not disassociated.instance_id, disassociated
            got = self._get(kit_api, "addresses", address.id)
            assert not got.instance_id, got
            assert address.ip_address not in public_ips(instance.id)
            kit_api.addresses.DeleteAddress(
                address_pb2.DeleteAddressRequest(id=address.id), metadata=self.md
            )
            self._gone(kit_api, "addresses", address.id)

    # firewalls

    def _new_firewall(self, api: Api) -> Any:
        name = f"conformance-{secrets.token_hex(4)}"
        description = "made by the conformance kit"
        firewall = api.firewalls.CreateFirewall(
            firewall_pb2.CreateFirewallRequest(name=name, description=description),
            metadata=self.md,
        )
        assert firewall.id and (firewall.name, firewall.description) == (name, description)
        return firewall

    def _delete_firewall(self, api: Api, firewall_id: str) -> None:
        api.firewalls.DeleteFirewall(
            firewall_pb2.DeleteFirewallRequest(id=firewall_id), metadata=self.md
        )
        self._gone(api, "firewalls", firewall_id)

    def test_firewalls_are_created_read_and_deleted(self, kit_api: Api) -> None:
        self._require("firewalls", "create", "destroy")
        firewall = self._new_firewall(kit_api)
        try:
            self._listed_as_got(kit_api, "firewalls", firewall)
            again = firewall_pb2.CreateFirewallRequest(name=firewall.name, description="again")
            f = _refusal(kit_api.firewalls.CreateFirewall, again, self.md)
            assert f.code == grpc.StatusCode.ALREADY_EXISTS, f
        finally:
            self._delete_firewall(kit_api, firewall.id)
        request = firewall_pb2.DeleteFirewallRequest(id=firewall.id)
        f = _refusal(kit_api.firewalls.DeleteFirewall, request, self.md)
        assert f.code == grpc.StatusCode.NOT_FOUND, f

    def test_a_firewalls_rules_are_added_and_removed(self, kit_api: Api) -> None:
        self._require("firewalls", "create", "destroy", "create_rule", "delete_rule")
        firewall = self._new_firewall(kit_api)
        cidr = "10.11.12.0/24"

        def matching(fw: Any) -> list[Any]:
            return [
                r
                for r in fw.rules
                if (r.protocol.lower(), r.port_from, r.port_to, r.direction)
                == ("tcp", 2222, 2223, firewall_pb2.FirewallRule.DIRECTION_INGRESS)
                and [s.cidr for s in r.sources] == [cidr]
            ]

        try:
            before = {r.id for r in firewall.rules}  # a cloud may start with some (egress)
            rule = firewall_pb2.CreateFirewallRuleRequest(
                firewall_id=firewall.id,
                protocol="tcp",
                port_from=2222,
                port_to=2223,
                sources=[firewall_pb2.FirewallRuleSource(cidr=cidr)],
            )
            added = kit_api.firewalls.CreateFirewallRule(rule, metadata=self.md)
            rules = matching(added)
            assert len(rules) == 1 and rules[0].id and rules[0].id not in before, added.rules
            rule_id = rules[0].id
            f = _refusal(kit_api.firewalls.CreateFirewallRule, rule, self.md)
            assert f.code == grpc.StatusCode.ALREADY_EXISTS, f
            got = self._listed_as_got(kit_api, "firewalls", added)
            assert [r.id for r in matching(got)] == [rule_id], got.rules
            removed = kit_api.firewalls.DeleteFirewallRule(
                firewall_pb2.DeleteFirewallRuleRequest(firewall_id=firewall.id, id=rule_id),
                metadata=self.md,
            )
            assert rule_id not in [r.id for r in removed.rules], removed.rules
            got = self._get(kit_api, "firewalls", firewall.id)
            assert {r.id for r in got.rules} == before, got.rules
            request = firewall_pb2.DeleteFirewallRuleRequest(firewall_id=firewall.id, id=rule_id)
            f = _refusal(kit_api.firewalls.DeleteFirewallRule, request, self.md)
            assert f.code == grpc.StatusCode.NOT_FOUND, f
        finally:
            self._delete_firewall(kit_api, firewall.id)

    # load balancers

    def _new_load_balancer(self, api: Api, realm_id: str) -> Any:
        name = f"conformance-{secrets.token_hex(4)}"
        listener = load_balancer_pb2.Listener(
            protocol="TCP", load_balancer_port=8080, instance_port=80
        )
        balancer = api.load_balancers.CreateLoadBalancer(
            load_balancer_pb2.CreateLoadBalancerRequest(
                name=name, realm_ids=[realm_id], listeners=[listener]
            ),
            metadata=self.md,
        )
        assert balancer.id and balancer.name == name, balancer
        assert list(balancer.realm_ids) == [realm_id], balancer
        listeners = [
            (li.protocol, li.load_balancer_port, li.instance_port) for li in balancer.listeners
        ]
        assert listeners == [("TCP", 8080, 80)], balancer  # the proto's words: upper case
        assert not balancer.instance_ids, balancer
        return balancer

    def _delete_load_balancer(self, api: Api, balancer_id: str) -> None:
        api.load_balancers.DeleteLoadBalancer(
            load_balancer_pb2.DeleteLoadBalancerRequest(id=balancer_id), metadata=self.md
        )
        self._gone(api, "load_balancers", balancer_id)

    def test_load_balancers_are_created_read_and_deleted(self, kit_api: Api) -> None:
        self._require("load_balancers", "create", "destroy")
        realm_id = self._a_realm(kit_api)
        if not realm_id:
            pytest.skip("a load balancer is created in a realm; the driver lists none")
        balancer = self._new_load_balancer(kit_api, realm_id)
        try:
            self._listed_as_got(kit_api, "load_balancers", balancer)
            again = load_balancer_pb2.CreateLoadBalancerRequest(
                name=balancer.name,
                realm_ids=[realm_id],
                listeners=[
                    load_balancer_pb2.Listener(
                        protocol="TCP", load_balancer_port=8080, instance_port=80
                    )
                ],
            )
            f = _refusal(kit_api.load_balancers.CreateLoadBalancer, again, self.md)
            assert f.code == grpc.StatusCode.ALREADY_EXISTS, f
        finally:
            self._delete_load_balancer(kit_api, balancer.id)
        request = load_balancer_pb2.DeleteLoadBalancerRequest(id=balancer.id)
        f = _refusal(kit_api.load_balancers.DeleteLoadBalancer, request, self.md)
        assert f.code == grpc.StatusCode.NOT_FOUND, f

    def test_a_load_balancer_registers_and_unregisters_a_running_instance(
        self, kit_api: Api
    ) -> None:
        self._require("load_balancers", "create", "destroy", "register", "unregister")
        with self._running_instance(kit_api, "registering an instance") as instance:
            balancer = self._new_load_balancer(kit_api, instance.realm_id)
            try:
                unknown = load_balancer_pb2.RegisterInstanceRequest(
                    id=balancer.id, instance_id=NO_SUCH_ID
                )
                f = _refusal(kit_api.load_balancers.RegisterInstance, unknown, self.md)
                assert f.code == grpc.StatusCode.NOT_FOUND, f
                registered = kit_api.load_balancers.RegisterInstance(
                    load_balancer_pb2.RegisterInstanceRequest(
                        id=balancer.id, instance_id=instance.id
                    ),
                    metadata=self.md,
                )
                assert list(registered.instance_ids) == [instance.id], registered
                got = self._listed_as_got(kit_api, "load_balancers", registered)
                assert list(got.instance_ids) == [instance.id], got
                unregistered = kit_api.load_balancers.UnregisterInstance(
                    load_balancer_pb2.UnregisterInstanceRequest(
                        id=balancer.id, instance_id=instance.id
                    ),
                    metadata=self.md,
                )
                assert not unregistered.instance_ids, unregistered
                got = self._get(kit_api, "load_balancers", balancer.id)
                assert not got.instance_ids, got
                request = load_balancer_pb2.UnregisterInstanceRequest(
                    id=balancer.id, instance_id=instance.id
                )
                f = _refusal(kit_api.load_balancers.UnregisterInstance, request, self.md)
                assert f.code == grpc.StatusCode.NOT_FOUND, f
            finally:
                self._delete_load_balancer(kit_api, balancer.id)
