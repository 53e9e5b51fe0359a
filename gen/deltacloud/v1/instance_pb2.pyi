import datetime

from deltacloud.v1 import common_pb2 as _common_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_CAUSE_UNSPECIFIED: _ClassVar[EventCause]
    EVENT_CAUSE_CREATE: _ClassVar[EventCause]
    EVENT_CAUSE_START: _ClassVar[EventCause]
    EVENT_CAUSE_STOP: _ClassVar[EventCause]
    EVENT_CAUSE_REBOOT: _ClassVar[EventCause]
    EVENT_CAUSE_DESTROY: _ClassVar[EventCause]
    EVENT_CAUSE_AUTOMATIC: _ClassVar[EventCause]
    EVENT_CAUSE_OBSERVED: _ClassVar[EventCause]
    EVENT_CAUSE_SNAPSHOT: _ClassVar[EventCause]
EVENT_CAUSE_UNSPECIFIED: EventCause
EVENT_CAUSE_CREATE: EventCause
EVENT_CAUSE_START: EventCause
EVENT_CAUSE_STOP: EventCause
EVENT_CAUSE_REBOOT: EventCause
EVENT_CAUSE_DESTROY: EventCause
EVENT_CAUSE_AUTOMATIC: EventCause
EVENT_CAUSE_OBSERVED: EventCause
EVENT_CAUSE_SNAPSHOT: EventCause

class Instance(_message.Message):
    __slots__ = ("id", "name", "owner_id", "image_id", "realm_id", "state", "actions", "public_addresses", "private_addresses", "hardware_profile_id", "hardware_profile_overrides", "launch_time", "key_name", "firewall_ids", "storage_volume_ids")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_PROFILE_OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    LAUNCH_TIME_FIELD_NUMBER: _ClassVar[int]
    KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    FIREWALL_IDS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_VOLUME_IDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    owner_id: str
    image_id: str
    realm_id: str
    state: _common_pb2.InstanceState
    actions: _containers.RepeatedScalarFieldContainer[_common_pb2.InstanceAction]
    public_addresses: _containers.RepeatedCompositeFieldContainer[InstanceAddress]
    private_addresses: _containers.RepeatedCompositeFieldContainer[InstanceAddress]
    hardware_profile_id: str
    hardware_profile_overrides: _common_pb2.HardwareProfileOverrides
    launch_time: _timestamp_pb2.Timestamp
    key_name: str
    firewall_ids: _containers.RepeatedScalarFieldContainer[str]
    storage_volume_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., owner_id: _Optional[str] = ..., image_id: _Optional[str] = ..., realm_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.InstanceState, str]] = ..., actions: _Optional[_Iterable[_Union[_common_pb2.InstanceAction, str]]] = ..., public_addresses: _Optional[_Iterable[_Union[InstanceAddress, _Mapping]]] = ..., private_addresses: _Optional[_Iterable[_Union[InstanceAddress, _Mapping]]] = ..., hardware_profile_id: _Optional[str] = ..., hardware_profile_overrides: _Optional[_Union[_common_pb2.HardwareProfileOverrides, _Mapping]] = ..., launch_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_name: _Optional[str] = ..., firewall_ids: _Optional[_Iterable[str]] = ..., storage_volume_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class InstanceAddress(_message.Message):
    __slots__ = ("address", "type")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[InstanceAddress.Type]
        TYPE_IPV4: _ClassVar[InstanceAddress.Type]
        TYPE_IPV6: _ClassVar[InstanceAddress.Type]
        TYPE_HOSTNAME: _ClassVar[InstanceAddress.Type]
        TYPE_MAC: _ClassVar[InstanceAddress.Type]
        TYPE_VNC: _ClassVar[InstanceAddress.Type]
    TYPE_UNSPECIFIED: InstanceAddress.Type
    TYPE_IPV4: InstanceAddress.Type
    TYPE_IPV6: InstanceAddress.Type
    TYPE_HOSTNAME: InstanceAddress.Type
    TYPE_MAC: InstanceAddress.Type
    TYPE_VNC: InstanceAddress.Type
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    address: str
    type: InstanceAddress.Type
    def __init__(self, address: _Optional[str] = ..., type: _Optional[_Union[InstanceAddress.Type, str]] = ...) -> None: ...

class ListInstancesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id", "state", "realm_id", "owner_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id: str
    state: _common_pb2.InstanceState
    realm_id: str
    owner_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.InstanceState, str]] = ..., realm_id: _Optional[str] = ..., owner_id: _Optional[str] = ...) -> None: ...

class ListInstancesResponse(_message.Message):
    __slots__ = ("instances", "next_page_token")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    next_page_token: str
    def __init__(self, instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateInstanceRequest(_message.Message):
    __slots__ = ("image_id", "realm_id", "hardware_profile_id", "hardware_profile_overrides", "name", "key_name", "user_data", "firewall_ids", "instance_count", "load_balancer_id", "request_id")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_PROFILE_OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    FIREWALL_IDS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LOAD_BALANCER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    realm_id: str
    hardware_profile_id: str
    hardware_profile_overrides: _common_pb2.HardwareProfileOverrides
    name: str
    key_name: str
    user_data: bytes
    firewall_ids: _containers.RepeatedScalarFieldContainer[str]
    instance_count: int
    load_balancer_id: str
    request_id: str
    def __init__(self, image_id: _Optional[str] = ..., realm_id: _Optional[str] = ..., hardware_profile_id: _Optional[str] = ..., hardware_profile_overrides: _Optional[_Union[_common_pb2.HardwareProfileOverrides, _Mapping]] = ..., name: _Optional[str] = ..., key_name: _Optional[str] = ..., user_data: _Optional[bytes] = ..., firewall_ids: _Optional[_Iterable[str]] = ..., instance_count: _Optional[int] = ..., load_balancer_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateInstanceResponse(_message.Message):
    __slots__ = ("instances",)
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    def __init__(self, instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ...) -> None: ...

class StartInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StopInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RebootInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteInstanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListInstanceStatesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InstanceStateMachine(_message.Message):
    __slots__ = ("states",)
    STATES_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedCompositeFieldContainer[StateNode]
    def __init__(self, states: _Optional[_Iterable[_Union[StateNode, _Mapping]]] = ...) -> None: ...

class StateNode(_message.Message):
    __slots__ = ("state", "transitions")
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    state: _common_pb2.InstanceState
    transitions: _containers.RepeatedCompositeFieldContainer[Transition]
    def __init__(self, state: _Optional[_Union[_common_pb2.InstanceState, str]] = ..., transitions: _Optional[_Iterable[_Union[Transition, _Mapping]]] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("to", "action", "automatic")
    TO_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    AUTOMATIC_FIELD_NUMBER: _ClassVar[int]
    to: _common_pb2.InstanceState
    action: _common_pb2.InstanceAction
    automatic: bool
    def __init__(self, to: _Optional[_Union[_common_pb2.InstanceState, str]] = ..., action: _Optional[_Union[_common_pb2.InstanceAction, str]] = ..., automatic: _Optional[bool] = ...) -> None: ...

class InstanceEvent(_message.Message):
    __slots__ = ("revision", "event_id", "instance_id", "previous_state", "state", "cause", "time", "instance")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    event_id: str
    instance_id: str
    previous_state: _common_pb2.InstanceState
    state: _common_pb2.InstanceState
    cause: EventCause
    time: _timestamp_pb2.Timestamp
    instance: Instance
    def __init__(self, revision: _Optional[int] = ..., event_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., previous_state: _Optional[_Union[_common_pb2.InstanceState, str]] = ..., state: _Optional[_Union[_common_pb2.InstanceState, str]] = ..., cause: _Optional[_Union[EventCause, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., instance: _Optional[_Union[Instance, _Mapping]] = ...) -> None: ...

class WatchInstanceEventsRequest(_message.Message):
    __slots__ = ("instance_ids", "states", "after_revision", "initial_snapshot", "progress_interval", "journal_id")
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    AFTER_REVISION_FIELD_NUMBER: _ClassVar[int]
    INITIAL_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_ID_FIELD_NUMBER: _ClassVar[int]
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    states: _containers.RepeatedScalarFieldContainer[_common_pb2.InstanceState]
    after_revision: int
    initial_snapshot: bool
    progress_interval: _duration_pb2.Duration
    journal_id: str
    def __init__(self, instance_ids: _Optional[_Iterable[str]] = ..., states: _Optional[_Iterable[_Union[_common_pb2.InstanceState, str]]] = ..., after_revision: _Optional[int] = ..., initial_snapshot: _Optional[bool] = ..., progress_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., journal_id: _Optional[str] = ...) -> None: ...

class WatchInstanceEventsResponse(_message.Message):
    __slots__ = ("kind", "events", "revision", "journal_id")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[WatchInstanceEventsResponse.Kind]
        KIND_EVENTS: _ClassVar[WatchInstanceEventsResponse.Kind]
        KIND_PROGRESS: _ClassVar[WatchInstanceEventsResponse.Kind]
        KIND_SNAPSHOT_COMPLETE: _ClassVar[WatchInstanceEventsResponse.Kind]
    KIND_UNSPECIFIED: WatchInstanceEventsResponse.Kind
    KIND_EVENTS: WatchInstanceEventsResponse.Kind
    KIND_PROGRESS: WatchInstanceEventsResponse.Kind
    KIND_SNAPSHOT_COMPLETE: WatchInstanceEventsResponse.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_ID_FIELD_NUMBER: _ClassVar[int]
    kind: WatchInstanceEventsResponse.Kind
    events: _containers.RepeatedCompositeFieldContainer[InstanceEvent]
    revision: int
    journal_id: str
    def __init__(self, kind: _Optional[_Union[WatchInstanceEventsResponse.Kind, str]] = ..., events: _Optional[_Iterable[_Union[InstanceEvent, _Mapping]]] = ..., revision: _Optional[int] = ..., journal_id: _Optional[str] = ...) -> None: ...
