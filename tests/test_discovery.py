"""DiscoveryService and the per-call driver selection through the generated stubs: drivers,
providers and capabilities; the x-deltacloud-driver / x-deltacloud-provider metadata (refused
when unknown, echoed in the response); collections and operations a driver lacks.

The last part needs a driver lacking a collection: the separately packaged test driver in
tests/drivers/limited/ (entry point ``limited``), which the ``limited_driver`` fixture installs
into the venv when it is not installed yet. The server discovers drivers when it starts, so
the fixture runs before this module's server."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import grpc
import pytest
from conftest import Api

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
from support import MD, failure, metadata

LIMITED_PACKAGE = Path(__file__).resolve().parent / "drivers" / "limited"
MOCK_DESCRIPTION = "A persistent fake cloud with Deltacloud's mock fixtures, for tests and demos"
S = common_pb2.InstanceState
A = common_pb2.InstanceAction


@pytest.fixture(scope="session")
def limited_driver(test_drivers: list[str]) -> str:
    return "limited"


# Every test of the module: the module's server must start after the driver is installed.
pytestmark = pytest.mark.usefixtures("limited_driver")


def installed_drivers() -> list[str]:
    return sorted({ep.name for ep in entry_points(group="deltacloud.drivers")})


def refusal(call: object, request: object, md: object = MD) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=md)  # type: ignore[operator]
    return caught.value


MOCK = discovery_pb2.Driver(
    id="mock",
    name="mock",
    description=MOCK_DESCRIPTION,
    providers=[discovery_pb2.Provider(id="default", name="default")],
)


# ---- drivers and providers --------------------------------------------------------------


def test_list_drivers_includes_mock_and_every_installed_driver(api: Api) -> None:
    reply = api.discovery.ListDrivers(discovery_pb2.ListDriversRequest())
    assert [d.id for d in reply.drivers] == installed_drivers()
    assert {"mock", "limited"} <= {d.id for d in reply.drivers}
    assert [d for d in reply.drivers if d.id == "mock"] == [MOCK]


def test_list_drivers_filtered_on_id(api: Api) -> None:
    reply = api.discovery.ListDrivers(discovery_pb2.ListDriversRequest(id="mock"))
    assert list(reply.drivers) == [MOCK]
    reply = api.discovery.ListDrivers(discovery_pb2.ListDriversRequest(id="nimbus"))
    assert list(reply.drivers) == []


def test_get_driver_mock(api: Api) -> None:
    assert api.discovery.GetDriver(discovery_pb2.GetDriverRequest(id="mock")) == MOCK


def test_get_driver_of_a_third_party_package(api: Api) -> None:
    driver = api.discovery.GetDriver(discovery_pb2.GetDriverRequest(id="limited"))
    assert (driver.id, driver.description) == (
        "limited",
        "A test driver serving realms and instances only (no reboot)",
    )


@pytest.mark.parametrize(
    ("rpc", "request_message"),
    [
        ("GetDriver", discovery_pb2.GetDriverRequest(id="nimbus")),
        ("ListProviders", discovery_pb2.ListProvidersRequest(driver_id="nimbus")),
    ],
)
def test_an_unknown_driver_is_not_found_naming_the_known_ones(
    api: Api, rpc: str, request_message: object
) -> None:
    f = failure(refusal(getattr(api.discovery, rpc), request_message))
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert f.metadata == {
        "resource_type": "driver",
        "resource_id": "nimbus",
        "known_drivers": ",".join(installed_drivers()),
    }


def test_get_driver_without_id_is_missing_field(api: Api) -> None:
    f = failure(refusal(api.discovery.GetDriver, discovery_pb2.GetDriverRequest()))
    assert (f.code, f.reason, f.metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        {"field": "id"},
    )


def test_list_providers_of_mock(api: Api) -> None:
    reply = api.discovery.ListProviders(discovery_pb2.ListProvidersRequest(driver_id="mock"))
    assert list(reply.providers) == [discovery_pb2.Provider(id="default", name="default")]
    # Without driver_id: the call's driver (the server default, mock).
    reply = api.discovery.ListProviders(discovery_pb2.ListProvidersRequest())
    assert [p.id for p in reply.providers] == ["default"]


def test_discovery_needs_no_credentials(api: Api) -> None:
    # No metadata at all: no authorization header.
    assert "mock" in [
        d.id for d in api.discovery.ListDrivers(discovery_pb2.ListDriversRequest()).drivers
    ]
    assert api.discovery.GetDriver(discovery_pb2.GetDriverRequest(id="mock")).id == "mock"
    providers = api.discovery.ListProviders(discovery_pb2.ListProvidersRequest())
    assert [p.id for p in providers.providers] == ["default"]
    capabilities = api.discovery.GetCapabilities(discovery_pb2.GetCapabilitiesRequest())
    assert capabilities.driver_id == "mock"


def test_discovery_ignores_wrong_credentials(api: Api) -> None:
    bad = metadata("mockuser", "wrong")
    capabilities = api.discovery.GetCapabilities(
        discovery_pb2.GetCapabilitiesRequest(), metadata=bad
    )
    assert capabilities.driver_id == "mock"
    # ... while a collection call with them is refused.
    f = failure(refusal(api.realms.ListRealms, realm_pb2.ListRealmsRequest(), bad))
    assert f.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("authorization", ["Bearer eyJhbGciOi.x.y", "Basic !!not-base64", "x"])
def test_discovery_ignores_authorization_that_is_not_basic(api: Api, authorization: str) -> None:
    # A proxy may add its own header; discovery answers whatever it holds (it answered
    # UNAUTHENTICATED, MALFORMED_AUTHORIZATION for GetCapabilities and ListProviders).
    md = (("authorization", authorization),)
    assert (
        api.discovery.GetCapabilities(discovery_pb2.GetCapabilitiesRequest(), metadata=md).driver_id
        == "mock"
    )
    providers = api.discovery.ListProviders(discovery_pb2.ListProvidersRequest(), metadata=md)
    assert [p.id for p in providers.providers] == ["default"]
    assert api.discovery.ListDrivers(discovery_pb2.ListDriversRequest(), metadata=md).drivers
    # ... and a collection call with it is refused.
    f = failure(refusal(api.realms.ListRealms, realm_pb2.ListRealmsRequest(), md))
    assert (f.code, f.reason) == (grpc.StatusCode.UNAUTHENTICATED, "MALFORMED_AUTHORIZATION")


# ---- driver and provider metadata -------------------------------------------------------


@pytest.mark.parametrize(
    "md",
    [MD, metadata(driver="mock"), metadata(driver="mock", provider="default")],
    ids=["defaults", "driver", "driver+provider"],
)
def test_response_metadata_echoes_driver_and_provider(api: Api, md: object) -> None:
    reply, call = api.realms.ListRealms.with_call(realm_pb2.ListRealmsRequest(), metadata=md)
    assert [r.id for r in reply.realms] == ["eu", "us"]
    echoed = dict(call.trailing_metadata())
    assert echoed["x-deltacloud-driver"] == "mock"
    assert echoed["x-deltacloud-provider"] == "default"


def test_response_metadata_names_the_driver_the_call_used(api: Api) -> None:
    reply, call = api.realms.ListRealms.with_call(
        realm_pb2.ListRealmsRequest(), metadata=metadata(driver="limited")
    )
    assert [r.id for r in reply.realms] == ["lab"]
    echoed = dict(call.trailing_metadata())
    assert (echoed["x-deltacloud-driver"], echoed["x-deltacloud-provider"]) == (
        "limited",
        "default",
    )


def test_capabilities_echo_driver_and_provider_too(api: Api) -> None:
    reply, call = api.discovery.GetCapabilities.with_call(
        discovery_pb2.GetCapabilitiesRequest(), metadata=[("x-deltacloud-driver", "mock")]
    )
    assert (reply.driver_id, reply.provider_id) == ("mock", "default")
    echoed = dict(call.trailing_metadata())
    assert (echoed["x-deltacloud-driver"], echoed["x-deltacloud-provider"]) == ("mock", "default")


@pytest.mark.parametrize(
    ("service", "rpc", "request_message"),
    [
        ("realms", "ListRealms", realm_pb2.ListRealmsRequest()),
        ("instances", "GetInstance", instance_pb2.GetInstanceRequest(id="inst0")),
        ("discovery", "GetCapabilities", discovery_pb2.GetCapabilitiesRequest()),
    ],
)
def test_unknown_driver_is_refused_naming_the_known_drivers(
    api: Api, service: str, rpc: str, request_message: object
) -> None:
    call = getattr(getattr(api, service), rpc)
    f = failure(refusal(call, request_message, metadata(driver="nimbus")))
    assert (f.code, f.reason, f.domain) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNKNOWN_DRIVER",
        "deltacloud",
    )
    assert f.metadata == {"driver": "nimbus", "known_drivers": ",".join(installed_drivers())}


@pytest.mark.parametrize(
    ("service", "rpc", "request_message"),
    [
        ("realms", "ListRealms", realm_pb2.ListRealmsRequest()),
        ("discovery", "GetCapabilities", discovery_pb2.GetCapabilitiesRequest()),
    ],
)
def test_unknown_provider_is_refused_naming_the_known_providers(
    api: Api, service: str, rpc: str, request_message: object
) -> None:
    call = getattr(getattr(api, service), rpc)
    f = failure(refusal(call, request_message, metadata(driver="mock", provider="mars")))
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_PROVIDER")
    assert f.metadata == {"driver": "mock", "provider": "mars", "known_providers": "default"}


# ---- capabilities -----------------------------------------------------------------------

#: Every collection of the mock with its operations, as RPC names, in collection order.
MOCK_COLLECTIONS = {
    "realms": ["ListRealms", "GetRealm"],
    "hardware_profiles": ["ListHardwareProfiles", "GetHardwareProfile"],
    "images": ["ListImages", "GetImage", "CreateImage", "DeleteImage"],
    "instances": [
        "ListInstances",
        "GetInstance",
        "ListInstanceStates",
        "WatchInstanceEvents",
        "CreateInstance",
        "StartInstance",
        "StopInstance",
        "RebootInstance",
        "DeleteInstance",
    ],
    "keys": ["ListKeys", "GetKey", "CreateKey", "DeleteKey"],
    "storage_volumes": [
        "ListStorageVolumes",
        "GetStorageVolume",
        "CreateStorageVolume",
        "DeleteStorageVolume",
        "AttachStorageVolume",
        "DetachStorageVolume",
    ],
    "storage_snapshots": [
        "ListStorageSnapshots",
        "GetStorageSnapshot",
        "CreateStorageSnapshot",
        "DeleteStorageSnapshot",
    ],
    "buckets": [
        "ListBuckets",
        "GetBucket",
        "CreateBucket",
        "DeleteBucket",
        "ListBlobs",
        "GetBlob",
        "GetBlobMetadata",
        "UploadBlob",
        "DownloadBlob",
        "DeleteBlob",
        "UpdateBlobMetadata",
    ],
    "addresses": [
        "ListAddresses",
        "GetAddress",
        "CreateAddress",
        "DeleteAddress",
        "AssociateAddress",
        "DisassociateAddress",
    ],
    "firewalls": [
        "ListFirewalls",
        "GetFirewall",
        "CreateFirewall",
        "DeleteFirewall",
        "CreateFirewallRule",
        "DeleteFirewallRule",
    ],
    "load_balancers": [
        "ListLoadBalancers",
        "GetLoadBalancer",
        "CreateLoadBalancer",
        "DeleteLoadBalancer",
        "RegisterInstance",
        "UnregisterInstance",
    ],
    "instance_states": ["ListInstanceStates"],
}

#: The collection services of the API (DiscoveryService aside).
SERVICES = [
    realm_pb2.DESCRIPTOR.services_by_name["RealmService"],
    hardware_profile_pb2.DESCRIPTOR.services_by_name["HardwareProfileService"],
    image_pb2.DESCRIPTOR.services_by_name["ImageService"],
    instance_pb2.DESCRIPTOR.services_by_name["InstanceService"],
    key_pb2.DESCRIPTOR.services_by_name["KeyService"],
    storage_volume_pb2.DESCRIPTOR.services_by_name["StorageVolumeService"],
    storage_snapshot_pb2.DESCRIPTOR.services_by_name["StorageSnapshotService"],
    bucket_pb2.DESCRIPTOR.services_by_name["BucketService"],
    address_pb2.DESCRIPTOR.services_by_name["AddressService"],
    firewall_pb2.DESCRIPTOR.services_by_name["FirewallService"],
    load_balancer_pb2.DESCRIPTOR.services_by_name["LoadBalancerService"],
]


def capabilities(api: Api, driver: str = "mock") -> discovery_pb2.Capabilities:
    return api.discovery.GetCapabilities(
        discovery_pb2.GetCapabilitiesRequest(), metadata=metadata(driver=driver)
    )


def test_capabilities_list_every_collection_of_the_mock_with_its_rpcs(api: Api) -> None:
    caps = capabilities(api)
    assert (caps.driver_id, caps.provider_id) == ("mock", "default")
    assert {c.name: list(c.operations) for c in caps.collections} == MOCK_COLLECTIONS
    assert [c.name for c in caps.collections] == list(MOCK_COLLECTIONS)


def test_capabilities_of_the_mock_name_every_rpc_of_the_api_and_only_those(api: Api) -> None:
    named = {op for c in capabilities(api).collections for op in c.operations}
    every = {m.name for service in SERVICES for m in service.methods}
    assert named == every


def test_capabilities_list_the_mock_features_with_constraints(api: Api) -> None:
    caps = capabilities(api)
    features = {
        c.name: [(f.name, f.description, dict(f.constraints)) for f in c.features]
        for c in caps.collections
        if c.features
    }
    assert features == {
        "instances": [
            ("user_name", "create options: name", {"max_length": "64"}),
            ("user_data", "create options: user_data", {}),
            ("authentication_key", "create options: key_name", {}),
            ("firewalls", "create options: firewall_ids", {}),
            ("instance_count", "create options: instance_count", {"max_count": "100"}),
        ],
        "images": [
            ("image_name", "create options: name", {}),
            ("image_description", "create options: description", {}),
        ],
        "keys": [("import_key", "create options: public_key", {})],
        "storage_volumes": [
            ("volume_name", "create options: name", {}),
            ("volume_description", "create options: description", {}),
            ("volume_from_snapshot", "create options: snapshot_id", {}),
        ],
        "buckets": [("bucket_location", "create options: location", {})],
    }


def test_capabilities_do_not_offer_register_to_load_balancer(api: Api) -> None:
    [instances] = [c for c in capabilities(api).collections if c.name == "instances"]
    assert "register_to_load_balancer" not in [f.name for f in instances.features]


def test_capabilities_list_the_four_hardware_profiles_as_declared(api: Api) -> None:
    caps = capabilities(api)
    assert [p.id for p in caps.hardware_profiles] == ["m1-small", "m1-large", "m1-xlarge", "opaque"]
    listed = api.hardware_profiles.ListHardwareProfiles(
        hardware_profile_pb2.ListHardwareProfilesRequest(), metadata=MD
    )
    by_id = {p.id: p for p in listed.hardware_profiles}
    assert [by_id[p.id] for p in caps.hardware_profiles] == list(caps.hardware_profiles)
    assert caps.hardware_profiles[1].memory.last.number == 15360


def test_capabilities_carry_the_instance_state_machine(api: Api) -> None:
    caps = capabilities(api)
    machine = api.instances.ListInstanceStates(
        instance_pb2.ListInstanceStatesRequest(), metadata=MD
    )
    assert caps.instance_states == machine
    assert [n.state for n in caps.instance_states.states] == [
        S.INSTANCE_STATE_START,
        S.INSTANCE_STATE_PENDING,
        S.INSTANCE_STATE_RUNNING,
        S.INSTANCE_STATE_STOPPING,
        S.INSTANCE_STATE_STOPPED,
        S.INSTANCE_STATE_FINISH,
    ]
    automatic = [
        (n.state, t.to) for n in caps.instance_states.states for t in n.transitions if t.automatic
    ]
    assert automatic == [
        (S.INSTANCE_STATE_PENDING, S.INSTANCE_STATE_RUNNING),
        (S.INSTANCE_STATE_STOPPING, S.INSTANCE_STATE_STOPPED),
    ]


# ---- what a driver does not support -----------------------------------------------------


def test_capabilities_of_a_limited_driver_list_only_what_it_serves(api: Api) -> None:
    caps = capabilities(api, "limited")
    assert (caps.driver_id, caps.provider_id) == ("limited", "default")
    assert {c.name: list(c.operations) for c in caps.collections} == {
        "realms": ["ListRealms", "GetRealm"],
        "instances": [
            "ListInstances",
            "GetInstance",
            "ListInstanceStates",
            "WatchInstanceEvents",
            "CreateInstance",
            "StartInstance",
            "StopInstance",
            "DeleteInstance",
        ],
        "instance_states": ["ListInstanceStates"],
    }
    assert list(caps.hardware_profiles) == []
    actions = {t.action for n in caps.instance_states.states for t in n.transitions}
    assert A.INSTANCE_ACTION_REBOOT not in actions
    assert A.INSTANCE_ACTION_STOP in actions


@pytest.mark.parametrize(
    ("service", "rpc", "request_message", "collection"),
    [
        ("keys", "ListKeys", key_pb2.ListKeysRequest(), "keys"),
        ("keys", "CreateKey", key_pb2.CreateKeyRequest(name="k"), "keys"),
        ("images", "ListImages", image_pb2.ListImagesRequest(), "images"),
        (
            "hardware_profiles",
            "ListHardwareProfiles",
            hardware_profile_pb2.ListHardwareProfilesRequest(),
            "hardware_profiles",
        ),
        ("buckets", "ListBuckets", bucket_pb2.ListBucketsRequest(), "buckets"),
    ],
)
def test_a_collection_the_driver_lacks_is_collection_not_supported(
    api: Api, service: str, rpc: str, request_message: object, collection: str
) -> None:
    call = getattr(getattr(api, service), rpc)
    f = failure(refusal(call, request_message, metadata(driver="limited")))
    assert (f.code, f.reason) == (grpc.StatusCode.UNIMPLEMENTED, "COLLECTION_NOT_SUPPORTED")
    assert f.metadata == {"driver": "limited", "provider": "default", "collection": collection}


def test_an_operation_the_driver_lacks_is_operation_not_supported(api: Api) -> None:
    f = failure(
        refusal(
            api.instances.RebootInstance,
            instance_pb2.RebootInstanceRequest(id="lim1"),
            metadata(driver="limited"),
        )
    )
    assert (f.code, f.reason) == (grpc.StatusCode.UNIMPLEMENTED, "OPERATION_NOT_SUPPORTED")
    assert f.metadata == {
        "driver": "limited",
        "provider": "default",
        "collection": "instances",
        "operation": "reboot",
    }


def test_what_the_limited_driver_supports_works(api: Api) -> None:
    md = metadata(driver="limited")
    reply = api.instances.ListInstances(instance_pb2.ListInstancesRequest(), metadata=md)
    assert [(i.id, i.state, list(i.actions)) for i in reply.instances] == [
        ("lim1", S.INSTANCE_STATE_RUNNING, [A.INSTANCE_ACTION_STOP]),
        ("lim-fixed", S.INSTANCE_STATE_RUNNING, []),  # running, but it cannot be stopped
    ]
    stopped = api.instances.StopInstance(instance_pb2.StopInstanceRequest(id="lim1"), metadata=md)
    assert stopped.state == S.INSTANCE_STATE_STOPPING
    # The mock, on the same server, still reboots.
    rebooted = api.instances.RebootInstance(
        instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD
    )
    assert rebooted.state == S.INSTANCE_STATE_RUNNING


def test_an_action_the_instance_does_not_offer_is_refused_before_the_driver(api: Api) -> None:
    """The machine allows stop in RUNNING, but this instance does not offer it (like an EC2
    instance-store instance): refused as not allowed, naming what is, and the driver's
    stop_instance (which would fail the call with INTERNAL) is never called."""
    md = metadata(driver="limited")
    got = api.instances.GetInstance(instance_pb2.GetInstanceRequest(id="lim-fixed"), metadata=md)
    assert (got.state, list(got.actions)) == (S.INSTANCE_STATE_RUNNING, [])
    f = failure(
        refusal(api.instances.StopInstance, instance_pb2.StopInstanceRequest(id="lim-fixed"), md)
    )
    assert (f.code, f.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACTION_NOT_ALLOWED")
    assert f.metadata["state"] == "running" and f.metadata["action"] == "stop"
    assert f.metadata["allowed_actions"] == ""  # none: lists are comma-joined


def test_errors_echo_driver_and_provider_too(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.instances.GetInstance(instance_pb2.GetInstanceRequest(id="nope"), metadata=MD)
    echoed = dict(caught.value.trailing_metadata())  # type: ignore[attr-defined]
    assert (echoed["x-deltacloud-driver"], echoed["x-deltacloud-provider"]) == ("mock", "default")


def test_refusals_before_the_call_opens_echo_driver_and_provider_too(api: Api) -> None:
    """A missing field is refused before the driver is resolved for the call; the error
    still names the driver and provider the call would have used (common.proto: "errors
    included"), in the trailing metadata and the ErrorInfo alike."""
    md = metadata(driver="limited")
    error = refusal(api.instances.GetInstance, instance_pb2.GetInstanceRequest(), md)
    echoed = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    assert (echoed["x-deltacloud-driver"], echoed["x-deltacloud-provider"]) == (
        "limited",
        "default",
    )
    f = failure(error)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MISSING_FIELD")
    assert (f.metadata["driver"], f.metadata["provider"]) == ("limited", "default")


@pytest.mark.parametrize(
    ("md", "call", "request_"),
    [
        # the driver named does not exist: there is nothing to echo
        (
            metadata(driver="nosuch"),
            "instances.GetInstance",
            instance_pb2.GetInstanceRequest(),
        ),
        # describing a driver uses none
        (MD, "discovery.GetDriver", discovery_pb2.GetDriverRequest()),
    ],
    ids=["unknown-driver", "discovery"],
)
def test_refusals_echo_no_driver_when_none_would_be_used(
    api: Api, md: object, call: str, request_: object
) -> None:
    service, method = call.split(".")
    error = refusal(getattr(getattr(api, service), method), request_, md)
    echoed = dict(error.trailing_metadata())  # type: ignore[attr-defined]
    assert "x-deltacloud-driver" not in echoed and "x-deltacloud-provider" not in echoed


def test_streams_echo_driver_and_provider_in_initial_metadata(api: Api) -> None:
    stream = api.instances.WatchInstanceEvents(
        instance_pb2.WatchInstanceEventsRequest(), metadata=MD
    )
    echoed = dict(stream.initial_metadata())
    stream.cancel()
    assert (echoed["x-deltacloud-driver"], echoed["x-deltacloud-provider"]) == ("mock", "default")
