"""The models drivers return: plain dataclasses, independent of protobuf (the server owns
the wire format and converts in one place)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from .hardware import HardwareOverrides
from .state_machine import InstanceAction, InstanceState, StateMachine

#: The states each model may be in (the wire's enums, without their STATE_ prefix). A
#: model made with another fails where the driver makes it (TypeError), as an Instance
#: does: a cloud's own word ("attached-not") was sent as an unspecified state, unnoticed.
#: Case and "-" for "_" are forgiven ("in-use" is IN_USE).
REALM_STATES = ("AVAILABLE", "UNAVAILABLE")
IMAGE_STATES = ("AVAILABLE", "PENDING", "UNAVAILABLE", "ERROR")
KEY_STATES = ("AVAILABLE", "UNAVAILABLE")
STORAGE_VOLUME_STATES = ("CREATING", "AVAILABLE", "IN_USE", "ATTACHING", "DELETING", "ERROR")
STORAGE_SNAPSHOT_STATES = ("PENDING", "COMPLETED", "ERROR")


def _state(model: object, value: object, allowed: tuple[str, ...]) -> str:
    if value in allowed:
        return value
    name = str(value).upper().replace("-", "_")
    if name not in allowed:
        raise TypeError(
            f"{type(model).__name__} {getattr(model, 'id', '')!r}: state {value!r} is not "
            f"one of {', '.join(allowed)} (map the cloud's states onto them)"
        )
    return name


def _whole_gb(model: object, value: object) -> int:
    """A size in whole GB, as the wire carries it: 30.0 is taken as 30, while 1.5 or a
    negative size fails where the driver makes the model (TypeError) instead of reaching
    the client truncated to 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        whole = None
    elif isinstance(value, int):
        whole = value
    else:
        whole = int(value) if value.is_integer() else None
    if whole is None or whole < 0:
        raise TypeError(
            f"{type(model).__name__} {getattr(model, 'id', '')!r}: capacity_gb {value!r} is "
            "not a whole, non-negative number of GB (the wire carries whole GB)"
        )
    return whole


@dataclass
class Provider:
    """Where a driver can point: a region, an endpoint URL, a datacenter."""

    id: str
    name: str = ""
    endpoint: str = ""


@dataclass
class Realm:
    """A place instances and volumes live in (a datacenter, an availability zone)."""

    id: str
    name: str = ""
    state: str = "AVAILABLE"  # AVAILABLE or UNAVAILABLE
    limit: str = ""

    def __post_init__(self) -> None:
        self.state = _state(self, self.state, REALM_STATES)


@dataclass
class Image:
    id: str
    name: str = ""
    owner_id: str = ""
    description: str = ""
    architecture: str = ""
    state: str = "AVAILABLE"  # one of IMAGE_STATES
    hardware_profile_ids: list[str] = field(default_factory=list)
    create_time: datetime | None = None
    root_type: str = ""

    def __post_init__(self) -> None:
        self.state = _state(self, self.state, IMAGE_STATES)


@dataclass
class InstanceAddress:
    address: str
    type: str = "ipv4"  # ipv4, ipv6, hostname, mac, vnc


@dataclass
class Instance:
    """An instance; its allowed ``actions`` are derived by the server from the driver's
    state machine (see :meth:`offered_actions`), so the model does not carry them."""

    id: str
    state: InstanceState
    name: str = ""
    owner_id: str = ""
    image_id: str = ""
    realm_id: str = ""
    hardware_profile_id: str = ""
    hardware_profile_overrides: HardwareOverrides = field(default_factory=HardwareOverrides)
    public_addresses: list[InstanceAddress] = field(default_factory=list)
    private_addresses: list[InstanceAddress] = field(default_factory=list)
    launch_time: datetime | None = None
    key_name: str = ""
    firewall_ids: list[str] = field(default_factory=list)
    storage_volume_ids: list[str] = field(default_factory=list)
    #: Actions the machine allows in this state that this instance does not offer, e.g.
    #: stop for an EC2 instance-store instance. The server leaves them out of ``actions``
    #: and refuses them (FAILED_PRECONDITION, ACTION_NOT_ALLOWED) before calling the driver.
    unavailable_actions: frozenset[InstanceAction] = frozenset()

    def __post_init__(self) -> None:
        if type(self.state) is not InstanceState:
            # Caught where the driver makes it: a cloud's own name ("RUNNING") failed every
            # list holding the instance, far away in the server, as INTERNAL.
            try:
                self.state = InstanceState(str(self.state).lower())
            except ValueError:
                raise TypeError(
                    f"Instance {self.id!r}: state {self.state!r} is not an InstanceState "
                    f"(map the cloud's states onto: {', '.join(InstanceState)})"
                ) from None

    def offered_actions(self, machine: StateMachine) -> list[InstanceAction]:
        """The actions a client may ask of this instance now."""
        return [a for a in machine.allowed_actions(self.state) if a not in self.unavailable_actions]


@dataclass
class Key:
    id: str
    name: str = ""
    credential_type: str = "KEY"  # KEY or PASSWORD
    fingerprint: str = ""
    username: str = ""
    password: str = ""
    pem_rsa_key: str = ""  # set only in the answer to a create that generated the key
    public_key: str = ""
    state: str = "AVAILABLE"

    def __post_init__(self) -> None:
        self.state = _state(self, self.state, KEY_STATES)


@dataclass
class StorageVolume:
    id: str
    name: str = ""
    description: str = ""
    create_time: datetime | None = None
    state: str = "AVAILABLE"  # one of STORAGE_VOLUME_STATES
    capacity_gb: int = 0  # whole GB (30.0 is taken as 30; 1.5 is a TypeError)
    instance_id: str = ""
    device: str = ""
    realm_id: str = ""
    kind: str = ""

    def __post_init__(self) -> None:
        self.state = _state(self, self.state, STORAGE_VOLUME_STATES)
        self.capacity_gb = _whole_gb(self, self.capacity_gb)


@dataclass
class StorageSnapshot:
    id: str
    storage_volume_id: str = ""
    name: str = ""
    description: str = ""
    state: str = "COMPLETED"  # one of STORAGE_SNAPSHOT_STATES
    create_time: datetime | None = None

    def __post_init__(self) -> None:
        self.state = _state(self, self.state, STORAGE_SNAPSHOT_STATES)


@dataclass
class Bucket:
    id: str
    name: str = ""
    blob_count: int = 0
    location: str = ""


@dataclass
class Blob:
    id: str
    bucket_id: str
    content_length: int = 0
    content_type: str = ""
    last_modified: datetime | None = None
    user_metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Address:
    """A public IP address; its id is the address itself."""

    id: str
    instance_id: str = ""


@dataclass
class RuleSource:
    """Where firewall traffic may come from: a CIDR block or another firewall (group)."""

    cidr: str = ""
    firewall_id: str = ""


@dataclass
class FirewallRule:
    id: str
    protocol: str  # tcp, udp, icmp
    port_from: int
    port_to: int
    sources: list[RuleSource] = field(default_factory=list)
    direction: str = "INGRESS"  # INGRESS or EGRESS


@dataclass
class Firewall:
    id: str
    name: str = ""
    description: str = ""
    owner_id: str = ""
    rules: list[FirewallRule] = field(default_factory=list)


@dataclass
class Listener:
    protocol: str
    load_balancer_port: int
    instance_port: int


@dataclass
class LoadBalancer:
    id: str
    name: str = ""
    realm_ids: list[str] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)
    instance_ids: list[str] = field(default_factory=list)
    public_addresses: list[str] = field(default_factory=list)
    create_time: datetime | None = None


# ---- options of the create operations --------------------------------------------------


@dataclass
class CreateInstance:
    image_id: str
    realm_id: str = ""
    hardware_profile_id: str = ""
    hardware_profile_overrides: HardwareOverrides = field(default_factory=HardwareOverrides)
    name: str = ""
    key_name: str = ""
    user_data: bytes = b""
    firewall_ids: list[str] = field(default_factory=list)
    instance_count: int = 1
    load_balancer_id: str = ""


@dataclass
class CreateImage:
    instance_id: str
    name: str = ""
    description: str = ""


@dataclass
class CreateKey:
    name: str
    public_key: str = ""  # empty: the backend generates a key pair


@dataclass
class CreateStorageVolume:
    capacity_gb: int = 0  # whole GB; 0 with snapshot_id: the snapshot's size
    realm_id: str = ""
    name: str = ""
    description: str = ""
    snapshot_id: str = ""


@dataclass
class CreateStorageSnapshot:
    storage_volume_id: str
    name: str = ""
    description: str = ""


@dataclass
class CreateBucket:
    name: str
    location: str = ""


@dataclass
class PutBlob:
    """A blob upload; ``chunks`` yields the content as it arrives, so a driver can stream
    it to the backend without holding it in memory. ``chunks`` may raise instead of ending:
    the client cancelled, or sent another length than it announced. The driver must then
    store nothing and leave the previous version of the blob as it was (write to a
    temporary place, or abort the multipart upload, and let the exception go)."""

    bucket_id: str
    blob_id: str
    chunks: Iterator[bytes]
    content_type: str = ""
    user_metadata: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None


@dataclass
class CreateFirewall:
    name: str
    description: str


@dataclass
class CreateFirewallRule:
    protocol: str
    port_from: int
    port_to: int
    sources: list[RuleSource] = field(default_factory=list)
    direction: str = "INGRESS"


@dataclass
class CreateLoadBalancer:
    name: str
    realm_ids: list[str] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)
