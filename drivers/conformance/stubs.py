"""The generated stubs of every service over one channel, call metadata, and reading an
error's google.rpc.ErrorInfo: what a test needs to talk to the server as users do."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_status import rpc_status

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


class Api:
    """The generated stubs of every service over one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.realms = realm_pb2_grpc.RealmServiceStub(channel)
        self.hardware_profiles = hardware_profile_pb2_grpc.HardwareProfileServiceStub(channel)
        self.images = image_pb2_grpc.ImageServiceStub(channel)
        self.instances = instance_pb2_grpc.InstanceServiceStub(channel)
        self.keys = key_pb2_grpc.KeyServiceStub(channel)
        self.volumes = storage_volume_pb2_grpc.StorageVolumeServiceStub(channel)
        self.snapshots = storage_snapshot_pb2_grpc.StorageSnapshotServiceStub(channel)
        self.buckets = bucket_pb2_grpc.BucketServiceStub(channel)
        self.addresses = address_pb2_grpc.AddressServiceStub(channel)
        self.firewalls = firewall_pb2_grpc.FirewallServiceStub(channel)
        self.load_balancers = load_balancer_pb2_grpc.LoadBalancerServiceStub(channel)
        self.discovery = discovery_pb2_grpc.DiscoveryServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def metadata(
    user: str, password: str, *, driver: str | None = None, provider: str | None = None
) -> list[tuple[str, str]]:
    """Call metadata: Basic credentials, and optionally a driver and provider."""
    md = [("authorization", basic(user, password))]
    if driver is not None:
        md.append(("x-deltacloud-driver", driver))
    if provider is not None:
        md.append(("x-deltacloud-provider", provider))
    return md


@dataclass
class Failure:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    metadata: dict[str, str]


def failure(error: grpc.RpcError) -> Failure:
    """The status code, message and ErrorInfo of a failed call; fails when the status
    carries no ErrorInfo (every error of the server must)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no google.rpc.Status in {error!r}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return Failure(
                error.code(),
                status.message,
                info.reason,
                info.domain,
                dict(info.metadata),
            )
    raise AssertionError(f"no ErrorInfo in {error!r}")
