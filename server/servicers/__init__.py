"""One servicer per collection; each is a thin adapter from messages to driver calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from deltacloud.v1 import (
    address_pb2_grpc,
    bucket_pb2_grpc,
    discovery_pb2_grpc,
    firewall_pb2_grpc,
    hardware_profile_pb2_grpc,
    image_pb2_grpc,
    instance_pb2_grpc,
    key_pb2_grpc,
    load_balancer_pb2_grpc,
    realm_pb2_grpc,
    storage_snapshot_pb2_grpc,
    storage_volume_pb2_grpc,
)

from .. import wire
from ..events.hub import EventHub
from ..gateway import Gateway
from ..pagination import PageTokens
from ..requests import RequestLog
from .addresses import AddressServicer
from .buckets import MAX_METADATA_BYTES, BucketServicer, too_many_entries
from .discovery import DiscoveryServicer
from .firewalls import FirewallServicer
from .hardware_profiles import HardwareProfileServicer
from .images import ImageServicer
from .instances import InstanceServicer
from .keys import KeyServicer
from .load_balancers import LoadBalancerServicer
from .realms import RealmServicer
from .storage_snapshots import StorageSnapshotServicer
from .storage_volumes import StorageVolumeServicer

_REGISTRATIONS: list[tuple[type, Callable[..., None], str]] = [
    (RealmServicer, realm_pb2_grpc.add_RealmServiceServicer_to_server, "RealmService"),
    (
        HardwareProfileServicer,
        hardware_profile_pb2_grpc.add_HardwareProfileServiceServicer_to_server,
        "HardwareProfileService",
    ),
    (ImageServicer, image_pb2_grpc.add_ImageServiceServicer_to_server, "ImageService"),
    (InstanceServicer, instance_pb2_grpc.add_InstanceServiceServicer_to_server, "InstanceService"),
    (KeyServicer, key_pb2_grpc.add_KeyServiceServicer_to_server, "KeyService"),
    (
        StorageVolumeServicer,
        storage_volume_pb2_grpc.add_StorageVolumeServiceServicer_to_server,
        "StorageVolumeService",
    ),
    (
        StorageSnapshotServicer,
        storage_snapshot_pb2_grpc.add_StorageSnapshotServiceServicer_to_server,
        "StorageSnapshotService",
    ),
    (BucketServicer, bucket_pb2_grpc.add_BucketServiceServicer_to_server, "BucketService"),
    (AddressServicer, address_pb2_grpc.add_AddressServiceServicer_to_server, "AddressService"),
    (FirewallServicer, firewall_pb2_grpc.add_FirewallServiceServicer_to_server, "FirewallService"),
    (
        LoadBalancerServicer,
        load_balancer_pb2_grpc.add_LoadBalancerServiceServicer_to_server,
        "LoadBalancerService",
    ),
    (
        DiscoveryServicer,
        discovery_pb2_grpc.add_DiscoveryServiceServicer_to_server,
        "DiscoveryService",
    ),
]

SERVICE_NAMES = [f"deltacloud.v1.{name}" for _, _, name in _REGISTRATIONS]


class _Captured:
    """Stands in for the server while a generated ``add_*_to_server`` registers, to get
    the method handlers it builds."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.handlers = dict(handlers)


def _message_or_bytes(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def serializer(message: Any) -> bytes:
        return message if isinstance(message, bytes) else serialize(message)

    return serializer


#: Streams that may write pre-serialized messages: one encoding shared by many subscribers
#: (watch), or one copy of a blob's bytes instead of two (download).
_PRESERIALIZED = {"InstanceService": ["WatchInstanceEvents"], "BucketService": ["DownloadBlob"]}
#: Requests with a map field, counted from their bytes before they are parsed (server/wire.py):
#: method -> the map's path of field numbers (UploadBlobRequest.header.user_metadata,
#: UpdateBlobMetadataRequest.user_metadata).
_GUARDED = {"BucketService": {"UploadBlob": (1, 4), "UpdateBlobMetadata": (3,)}}


def _add(add: Callable[..., None], servicer: object, server: grpc.aio.Server, service: str) -> None:
    methods = _PRESERIALIZED.get(service, [])
    guarded = _GUARDED.get(service, {})
    if not methods and not guarded:
        add(servicer, server)
        return
    captured = _Captured()
    add(servicer, captured)
    handlers = captured.handlers
    for method in methods:
        handler = handlers[method]
        serialize = handler.response_serializer
        assert serialize is not None
        handlers[method] = handler._replace(  # type: ignore[attr-defined]
            response_serializer=_message_or_bytes(serialize)
        )
    for method, path in guarded.items():
        handler = handlers[method]
        parse = handler.request_deserializer
        assert parse is not None
        # Each key takes a byte at least: more entries than that many bytes never pass.
        handlers[method] = handler._replace(  # type: ignore[attr-defined]
            request_deserializer=wire.guarded(parse, path, MAX_METADATA_BYTES, too_many_entries)
        )
    full_name = f"deltacloud.v1.{service}"
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(full_name, handlers),))
    server.add_registered_method_handlers(full_name, handlers)


def register_all(
    server: grpc.aio.Server,
    gateway: Gateway,
    tokens: PageTokens,
    events: EventHub,
    requests: RequestLog,
) -> None:
    for servicer, add, service in _REGISTRATIONS:
        _add(add, servicer(gateway, tokens, events, requests), server, service)
        gateway.metrics.rpcs.describe(servicer, f"deltacloud.v1.{service}")
