"""One servicer per collection; each is a thin adapter from messages to driver calls."""

from __future__ import annotations

from collections.abc import Callable

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

from ..events.hub import EventHub
from ..gateway import Gateway
from ..pagination import PageTokens
from .addresses import AddressServicer
from .buckets import BucketServicer
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


def register_all(
    server: grpc.aio.Server, gateway: Gateway, tokens: PageTokens, events: EventHub
) -> None:
    for servicer, add, _ in _REGISTRATIONS:
        add(servicer(gateway, tokens, events), server)
