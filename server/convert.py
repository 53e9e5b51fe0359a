"""The one place where driver models and protobuf messages meet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from google.protobuf import timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from deltacloud.drivers import (
    BaseDriver,
    HardwareOverrides,
    HardwareProfile,
    InstanceAction,
    InstanceState,
    Property,
    PropertyKind,
    StateMachine,
)
from deltacloud.drivers import models as m
from deltacloud.drivers.hardware import PROPERTY_UNITS
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

from .errors import invalid_argument

_EPOCH = datetime(1970, 1, 1)


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp of ``value`` (naive means UTC, as Timestamp.FromDatetime has it),
    computed directly: FromDatetime is slow Python and runs for every instance sent."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    delta = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000
    )


E = TypeVar("E", bound=int)
_ENUM_VALUES: dict[tuple[Any, str, str], int] = {}


def _enum(enum_type: type[E], prefix: str, value: str) -> E:
    """Map a model's state string ("IN_USE") onto an enum value (STATE_IN_USE); unknown
    values become UNSPECIFIED rather than failing the call."""
    key = (enum_type, prefix, value)
    found = _ENUM_VALUES.get(key)
    if found is None:
        name = f"{prefix}{value.upper().replace('-', '_')}"
        # The .pyi stubs present a protobuf enum as an int subclass; at run time it is the
        # EnumTypeWrapper whose values are plain ints, which enum fields accept.
        wrapper = cast(EnumTypeWrapper, enum_type)
        try:
            found = int(wrapper.Value(name))
        except ValueError:
            found = 0
        if len(_ENUM_VALUES) < 4096:  # bounded: values come from drivers, not clients
            _ENUM_VALUES[key] = found
    return cast(E, found)


# ---- instance states and actions ----------------------------------------------------


_STATES = {
    s: int(common_pb2.InstanceState.Value(f"INSTANCE_STATE_{s.name}")) for s in InstanceState
}
_ACTIONS = {
    a: int(common_pb2.InstanceAction.Value(f"INSTANCE_ACTION_{a.name}")) for a in InstanceAction
}


def state_to_proto(state: InstanceState) -> common_pb2.InstanceState:
    return cast(common_pb2.InstanceState, _STATES[state])


def enum_name(enum_type: Any, value: int, field: str) -> str:
    """The name of a request's enum value; INVALID_ARGUMENT for a value the contract does
    not define (proto3 enums are open: any number arrives)."""
    try:
        return str(enum_type.Name(value))
    except ValueError:
        raise invalid_argument(
            "INVALID_ENUM_VALUE", f"{field}={value} is not a defined value", field=field
        ) from None


def requested_state(value: int, field: str = "state") -> InstanceState | None:
    """An InstanceState given in a request: None when unset, INVALID_ARGUMENT if unknown."""
    if value == 0:
        return None
    name = enum_name(common_pb2.InstanceState, value, field).removeprefix("INSTANCE_STATE_")
    return InstanceState[name]


def state_from_proto(value: int) -> InstanceState | None:
    if value == 0:
        return None
    name = common_pb2.InstanceState.Name(value).removeprefix("INSTANCE_STATE_")
    return InstanceState[name]


def action_to_proto(action: InstanceAction) -> common_pb2.InstanceAction:
    return cast(common_pb2.InstanceAction, _ACTIONS[action])


def state_machine(machine: StateMachine) -> instance_pb2.InstanceStateMachine:
    nodes = []
    for state in machine.states:
        transitions = [
            instance_pb2.Transition(
                to=state_to_proto(t.target),
                action=(
                    action_to_proto(t.action)
                    if t.action
                    else common_pb2.INSTANCE_ACTION_UNSPECIFIED
                ),
                automatic=t.automatic,
            )
            for t in machine.transitions_from(state)
        ]
        nodes.append(instance_pb2.StateNode(state=state_to_proto(state), transitions=transitions))
    return instance_pb2.InstanceStateMachine(states=nodes)


# ---- hardware profiles --------------------------------------------------------------


def _value(value: float | str | None) -> common_pb2.PropertyValue | None:
    if value is None:
        return None
    if isinstance(value, str):
        return common_pb2.PropertyValue(text=value)
    return common_pb2.PropertyValue(number=float(value))


_KINDS = {
    PropertyKind.FIXED: common_pb2.HardwareProperty.KIND_FIXED,
    PropertyKind.RANGE: common_pb2.HardwareProperty.KIND_RANGE,
    PropertyKind.ENUM: common_pb2.HardwareProperty.KIND_ENUM,
}


def _property(name: str, prop: Property) -> common_pb2.HardwareProperty:
    return common_pb2.HardwareProperty(
        kind=_KINDS[prop.kind],
        unit=PROPERTY_UNITS[name],
        default_value=_value(prop.default),
        first=_value(prop.first),
        last=_value(prop.last),
        values=[v for v in (_value(x) for x in prop.values) if v is not None],
    )


def hardware_profile(profile: HardwareProfile) -> hardware_profile_pb2.HardwareProfile:
    message = hardware_profile_pb2.HardwareProfile(id=profile.id, name=profile.name)
    for name, prop in profile.properties().items():
        getattr(message, name).CopyFrom(_property(name, prop))
    return message


def overrides_to_proto(overrides: HardwareOverrides) -> common_pb2.HardwareProfileOverrides:
    message = common_pb2.HardwareProfileOverrides()
    if overrides.cpu is not None:
        message.cpu = int(overrides.cpu)
    if overrides.memory is not None:
        message.memory = float(overrides.memory)
    if overrides.storage is not None:
        message.storage = float(overrides.storage)
    if overrides.architecture is not None:
        message.architecture = overrides.architecture
    return message


def overrides_from_proto(message: common_pb2.HardwareProfileOverrides) -> HardwareOverrides:
    return HardwareOverrides(
        cpu=message.cpu if message.HasField("cpu") else None,
        memory=message.memory if message.HasField("memory") else None,
        storage=message.storage if message.HasField("storage") else None,
        architecture=message.architecture if message.HasField("architecture") else None,
    )


# ---- resources ----------------------------------------------------------------------


def realm(r: m.Realm) -> realm_pb2.Realm:
    return realm_pb2.Realm(
        id=r.id, name=r.name, state=_enum(realm_pb2.Realm.State, "STATE_", r.state), limit=r.limit
    )


def image(i: m.Image) -> image_pb2.Image:
    return image_pb2.Image(
        id=i.id,
        name=i.name,
        owner_id=i.owner_id,
        description=i.description,
        architecture=i.architecture,
        state=_enum(image_pb2.Image.State, "STATE_", i.state),
        hardware_profile_ids=i.hardware_profile_ids,
        create_time=timestamp(i.create_time),
        root_type=i.root_type,
    )


def _address(a: m.InstanceAddress) -> instance_pb2.InstanceAddress:
    return instance_pb2.InstanceAddress(
        address=a.address, type=_enum(instance_pb2.InstanceAddress.Type, "TYPE_", a.type)
    )


def instance(i: m.Instance, machine: StateMachine | None) -> instance_pb2.Instance:
    actions = i.offered_actions(machine) if machine else []
    return instance_pb2.Instance(
        id=i.id,
        name=i.name,
        owner_id=i.owner_id,
        image_id=i.image_id,
        realm_id=i.realm_id,
        state=state_to_proto(i.state),
        actions=[action_to_proto(a) for a in actions],
        public_addresses=[_address(a) for a in i.public_addresses],
        private_addresses=[_address(a) for a in i.private_addresses],
        hardware_profile_id=i.hardware_profile_id,
        hardware_profile_overrides=overrides_to_proto(i.hardware_profile_overrides),
        launch_time=timestamp(i.launch_time),
        key_name=i.key_name,
        firewall_ids=i.firewall_ids,
        storage_volume_ids=i.storage_volume_ids,
    )


#: Where instance_kept keeps the message made for a model, on the model.
_KEPT = "_deltacloud_message"


def instance_kept(i: m.Instance, machine: StateMachine | None) -> instance_pb2.Instance:
    """``instance(i, machine)``, kept on the model: a model a driver hands out again (from
    its read cache, as the mock does) gets the message made for it the first time, not a
    new one. Drivers do not change a model once handed out (docs/writing-a-driver.md); a
    copy of one (copy.copy carries what is kept) makes its own. The message is shared:
    send it or copy it, never change it."""
    kept = i.__dict__.get(_KEPT)
    if kept is not None and kept[0] == id(i) and kept[1] is machine:
        return cast(instance_pb2.Instance, kept[2])
    message = instance(i, machine)
    i.__dict__[_KEPT] = (id(i), machine, message)
    return message


def key(k: m.Key) -> key_pb2.Key:
    return key_pb2.Key(
        id=k.id,
        name=k.name or k.id,
        credential_type=_enum(key_pb2.Key.CredentialType, "CREDENTIAL_TYPE_", k.credential_type),
        fingerprint=k.fingerprint,
        username=k.username,
        password=k.password,
        pem_rsa_key=k.pem_rsa_key,
        public_key=k.public_key,
        state=_enum(key_pb2.Key.State, "STATE_", k.state),
    )


def storage_volume(v: m.StorageVolume) -> storage_volume_pb2.StorageVolume:
    return storage_volume_pb2.StorageVolume(
        id=v.id,
        name=v.name,
        description=v.description,
        create_time=timestamp(v.create_time),
        state=_enum(storage_volume_pb2.StorageVolume.State, "STATE_", v.state),
        capacity_gb=v.capacity_gb,
        instance_id=v.instance_id,
        device=v.device,
        realm_id=v.realm_id,
        kind=v.kind,
    )


def storage_snapshot(s: m.StorageSnapshot) -> storage_snapshot_pb2.StorageSnapshot:
    return storage_snapshot_pb2.StorageSnapshot(
        id=s.id,
        name=s.name,
        description=s.description,
        state=_enum(storage_snapshot_pb2.StorageSnapshot.State, "STATE_", s.state),
        storage_volume_id=s.storage_volume_id,
        create_time=timestamp(s.create_time),
    )


def bucket(b: m.Bucket) -> bucket_pb2.Bucket:
    return bucket_pb2.Bucket(
        id=b.id, name=b.name or b.id, blob_count=b.blob_count, location=b.location
    )


def blob(b: m.Blob) -> bucket_pb2.Blob:
    return bucket_pb2.Blob(
        id=b.id,
        bucket_id=b.bucket_id,
        content_length=b.content_length,
        content_type=b.content_type,
        last_modified=timestamp(b.last_modified),
        user_metadata=b.user_metadata,
    )


def address(a: m.Address) -> address_pb2.Address:
    return address_pb2.Address(id=a.id, ip_address=a.id, instance_id=a.instance_id)


_DIRECTIONS = {
    "INGRESS": firewall_pb2.FirewallRule.DIRECTION_INGRESS,
    "EGRESS": firewall_pb2.FirewallRule.DIRECTION_EGRESS,
}


def direction_from_proto(value: int) -> str:
    """A rule's direction from a request: unset means ingress."""
    name = enum_name(firewall_pb2.FirewallRule.Direction, value, "direction")
    return "EGRESS" if name == "DIRECTION_EGRESS" else "INGRESS"


def rule_source(s: m.RuleSource) -> firewall_pb2.FirewallRuleSource:
    if s.firewall_id:
        return firewall_pb2.FirewallRuleSource(firewall_id=s.firewall_id)
    return firewall_pb2.FirewallRuleSource(cidr=s.cidr)


def firewall(f: m.Firewall) -> firewall_pb2.Firewall:
    return firewall_pb2.Firewall(
        id=f.id,
        name=f.name,
        description=f.description,
        owner_id=f.owner_id,
        rules=[
            firewall_pb2.FirewallRule(
                id=r.id,
                protocol=r.protocol,
                port_from=r.port_from,
                port_to=r.port_to,
                sources=[rule_source(s) for s in r.sources],
                direction=_DIRECTIONS.get(
                    r.direction.upper(), firewall_pb2.FirewallRule.DIRECTION_UNSPECIFIED
                ),
            )
            for r in f.rules
        ],
    )


def load_balancer(lb: m.LoadBalancer) -> load_balancer_pb2.LoadBalancer:
    return load_balancer_pb2.LoadBalancer(
        id=lb.id,
        name=lb.name,
        realm_ids=lb.realm_ids,
        listeners=[
            load_balancer_pb2.Listener(
                protocol=li.protocol,
                load_balancer_port=li.load_balancer_port,
                instance_port=li.instance_port,
            )
            for li in lb.listeners
        ],
        instance_ids=lb.instance_ids,
        public_addresses=lb.public_addresses,
        create_time=timestamp(lb.create_time),
    )


def provider(p: m.Provider) -> discovery_pb2.Provider:
    return discovery_pb2.Provider(id=p.id, name=p.name or p.id, endpoint=p.endpoint)


def driver(cls: type[BaseDriver]) -> discovery_pb2.Driver:
    return discovery_pb2.Driver(
        id=cls.name,
        name=cls.name,
        description=cls.description,
        providers=[provider(p) for p in cls.providers()],
    )
