"""DiscoveryService: the API entry point. Which drivers exist, their providers, and what
the calling driver can do. Needs no credentials."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from deltacloud.drivers import (
    COLLECTIONS,
    FEATURES,
    BaseDriver,
    NotFoundError,
    UnknownDriverError,
)
from deltacloud.v1 import discovery_pb2 as pb
from deltacloud.v1 import discovery_pb2_grpc as pb_grpc

from .. import convert
from ..pagination import Page, paginate, query_digest
from ..rpc import Context, Servicer, require, unary

T = TypeVar("T")

log = logging.getLogger("deltacloud.server.discovery")

#: The RPCs behind each (collection, driver operation): what Collection.operations lists.
RPCS: dict[tuple[str, str], tuple[str, ...]] = {
    ("realms", "list"): ("ListRealms", "GetRealm"),
    ("hardware_profiles", "list"): ("ListHardwareProfiles", "GetHardwareProfile"),
    ("images", "list"): ("ListImages", "GetImage"),
    ("images", "create"): ("CreateImage",),
    ("images", "destroy"): ("DeleteImage",),
    ("instances", "list"): (
        "ListInstances",
        "GetInstance",
        "ListInstanceStates",
        "WatchInstanceEvents",
    ),
    ("instances", "create"): ("CreateInstance",),
    ("instances", "start"): ("StartInstance",),
    ("instances", "stop"): ("StopInstance",),
    ("instances", "reboot"): ("RebootInstance",),
    ("instances", "destroy"): ("DeleteInstance",),
    ("keys", "list"): ("ListKeys", "GetKey"),
    ("keys", "create"): ("CreateKey",),
    ("keys", "destroy"): ("DeleteKey",),
    ("storage_volumes", "list"): ("ListStorageVolumes", "GetStorageVolume"),
    ("storage_volumes", "create"): ("CreateStorageVolume",),
    ("storage_volumes", "destroy"): ("DeleteStorageVolume",),
    ("storage_volumes", "attach"): ("AttachStorageVolume",),
    ("storage_volumes", "detach"): ("DetachStorageVolume",),
    ("storage_snapshots", "list"): ("ListStorageSnapshots", "GetStorageSnapshot"),
    ("storage_snapshots", "create"): ("CreateStorageSnapshot",),
    ("storage_snapshots", "destroy"): ("DeleteStorageSnapshot",),
    ("buckets", "list"): ("ListBuckets", "GetBucket"),
    ("buckets", "create"): ("CreateBucket",),
    ("buckets", "destroy"): ("DeleteBucket",),
    ("buckets", "list_blobs"): ("ListBlobs",),
    ("buckets", "get_blob"): ("GetBlob", "GetBlobMetadata"),
    ("buckets", "put_blob"): ("UploadBlob",),
    ("buckets", "download_blob"): ("DownloadBlob",),
    ("buckets", "delete_blob"): ("DeleteBlob",),
    ("buckets", "update_blob_metadata"): ("UpdateBlobMetadata",),
    ("addresses", "list"): ("ListAddresses", "GetAddress"),
    ("addresses", "create"): ("CreateAddress",),
    ("addresses", "destroy"): ("DeleteAddress",),
    ("addresses", "associate"): ("AssociateAddress",),
    ("addresses", "disassociate"): ("DisassociateAddress",),
    ("firewalls", "list"): ("ListFirewalls", "GetFirewall"),
    ("firewalls", "create"): ("CreateFirewall",),
    ("firewalls", "destroy"): ("DeleteFirewall",),
    ("firewalls", "create_rule"): ("CreateFirewallRule",),
    ("firewalls", "delete_rule"): ("DeleteFirewallRule",),
    ("load_balancers", "list"): ("ListLoadBalancers", "GetLoadBalancer"),
    ("load_balancers", "create"): ("CreateLoadBalancer",),
    ("load_balancers", "destroy"): ("DeleteLoadBalancer",),
    ("load_balancers", "register"): ("RegisterInstance",),
    ("load_balancers", "unregister"): ("UnregisterInstance",),
}


def _collections(cls: type[BaseDriver]) -> list[pb.Collection]:
    found = []
    for name in COLLECTIONS:
        if name not in cls.collections:
            continue
        operations = [rpc for op in cls.operations(name) for rpc in RPCS.get((name, op), ())]
        features = [
            pb.Feature(
                name=f.name,
                description="create options: "
                + ", ".join(FEATURES[(name, f.name)].options or ("none",)),
                constraints=f.constraints,
            )
            for f in cls.features.get(name, ())
        ]
        found.append(pb.Collection(name=name, features=features, operations=operations))
    if "instances" in cls.collections:
        found.append(pb.Collection(name="instance_states", operations=["ListInstanceStates"]))
    return found


class DiscoveryServicer(Servicer, pb_grpc.DiscoveryServiceServicer):
    #: Describing drivers uses none: only the calls that open one (a driver's providers or
    #: capabilities by metadata) echo it.
    echoes_scope = False

    def _drivers(self) -> list[type[BaseDriver]]:
        drivers = []
        for name in self.gateway.registry.names():
            try:
                drivers.append(self.gateway.driver_class(name))
            except Exception:
                # One broken third-party driver must not hide the others.
                log.exception("driver %r failed to load; not listed", name)
        return drivers

    @unary
    async def ListDrivers(
        self, request: pb.ListDriversRequest, context: Context
    ) -> pb.ListDriversResponse:
        drivers = [convert.driver(cls) for cls in self._drivers()]
        if request.id:
            drivers = [d for d in drivers if d.id == request.id]
        page = self._page_of(drivers, request, {"what": "drivers", "id": request.id})
        return pb.ListDriversResponse(drivers=page.items, next_page_token=page.next_page_token)

    def _page_of(self, items: list[T], request: Any, query: dict[str, object]) -> Page[T]:
        return paginate(
            items,
            id_of=lambda item: item.id,  # type: ignore[attr-defined]
            page_size=request.page_size,
            page_token=request.page_token,
            tokens=self.tokens,
            query=lambda: query_digest(query),
        )

    @unary
    async def GetDriver(self, request: pb.GetDriverRequest, context: Context) -> pb.Driver:
        require(request, "id")
        return convert.driver(self._driver_named(request.id))

    def _driver_named(self, name: str) -> type[BaseDriver]:
        """The driver a request names; NOT_FOUND naming the known ones."""
        try:
            return self.gateway.driver_class(name)
        except UnknownDriverError as exc:
            raise NotFoundError("driver", name, known_drivers=exc.known) from None

    @unary
    async def ListProviders(
        self, request: pb.ListProvidersRequest, context: Context
    ) -> pb.ListProvidersResponse:
        if request.driver_id:
            cls = self._driver_named(request.driver_id)
        else:
            call = await self.gateway.open(context, None, authenticate=False)
            cls = call.driver_class
        providers = [convert.provider(p) for p in cls.providers()]
        page = self._page_of(providers, request, {"what": "providers", "driver": cls.name})
        return pb.ListProvidersResponse(providers=page.items, next_page_token=page.next_page_token)

    @unary
    async def GetCapabilities(
        self, request: pb.GetCapabilitiesRequest, context: Context
    ) -> pb.Capabilities:
        call = await self.gateway.open(context, None, authenticate=False)
        cls = call.driver_class
        answer = pb.Capabilities(
            driver_id=cls.name,
            provider_id=call.ctx.provider,
            collections=_collections(cls),
            hardware_profiles=[convert.hardware_profile(p) for p in cls.hardware_profiles],
        )
        if cls.instance_states is not None:
            answer.instance_states.CopyFrom(convert.state_machine(cls.instance_states))
        return answer
