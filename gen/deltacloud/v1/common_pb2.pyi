from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InstanceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_STATE_UNSPECIFIED: _ClassVar[InstanceState]
    INSTANCE_STATE_START: _ClassVar[InstanceState]
    INSTANCE_STATE_PENDING: _ClassVar[InstanceState]
    INSTANCE_STATE_RUNNING: _ClassVar[InstanceState]
    INSTANCE_STATE_STOPPING: _ClassVar[InstanceState]
    INSTANCE_STATE_STOPPED: _ClassVar[InstanceState]
    INSTANCE_STATE_FINISH: _ClassVar[InstanceState]
    INSTANCE_STATE_ERROR: _ClassVar[InstanceState]

class InstanceAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_ACTION_UNSPECIFIED: _ClassVar[InstanceAction]
    INSTANCE_ACTION_CREATE: _ClassVar[InstanceAction]
    INSTANCE_ACTION_START: _ClassVar[InstanceAction]
    INSTANCE_ACTION_STOP: _ClassVar[InstanceAction]
    INSTANCE_ACTION_REBOOT: _ClassVar[InstanceAction]
    INSTANCE_ACTION_DESTROY: _ClassVar[InstanceAction]
INSTANCE_STATE_UNSPECIFIED: InstanceState
INSTANCE_STATE_START: InstanceState
INSTANCE_STATE_PENDING: InstanceState
INSTANCE_STATE_RUNNING: InstanceState
INSTANCE_STATE_STOPPING: InstanceState
INSTANCE_STATE_STOPPED: InstanceState
INSTANCE_STATE_FINISH: InstanceState
INSTANCE_STATE_ERROR: InstanceState
INSTANCE_ACTION_UNSPECIFIED: InstanceAction
INSTANCE_ACTION_CREATE: InstanceAction
INSTANCE_ACTION_START: InstanceAction
INSTANCE_ACTION_STOP: InstanceAction
INSTANCE_ACTION_REBOOT: InstanceAction
INSTANCE_ACTION_DESTROY: InstanceAction

class PropertyValue(_message.Message):
    __slots__ = ("number", "text")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    number: float
    text: str
    def __init__(self, number: _Optional[float] = ..., text: _Optional[str] = ...) -> None: ...

class HardwareProperty(_message.Message):
    __slots__ = ("kind", "unit", "default_value", "first", "last", "values")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[HardwareProperty.Kind]
        KIND_FIXED: _ClassVar[HardwareProperty.Kind]
        KIND_RANGE: _ClassVar[HardwareProperty.Kind]
        KIND_ENUM: _ClassVar[HardwareProperty.Kind]
    KIND_UNSPECIFIED: HardwareProperty.Kind
    KIND_FIXED: HardwareProperty.Kind
    KIND_RANGE: HardwareProperty.Kind
    KIND_ENUM: HardwareProperty.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    kind: HardwareProperty.Kind
    unit: str
    default_value: PropertyValue
    first: PropertyValue
    last: PropertyValue
    values: _containers.RepeatedCompositeFieldContainer[PropertyValue]
    def __init__(self, kind: _Optional[_Union[HardwareProperty.Kind, str]] = ..., unit: _Optional[str] = ..., default_value: _Optional[_Union[PropertyValue, _Mapping]] = ..., first: _Optional[_Union[PropertyValue, _Mapping]] = ..., last: _Optional[_Union[PropertyValue, _Mapping]] = ..., values: _Optional[_Iterable[_Union[PropertyValue, _Mapping]]] = ...) -> None: ...

class HardwareProfileOverrides(_message.Message):
    __slots__ = ("cpu", "memory", "storage", "architecture")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    memory: float
    storage: float
    architecture: str
    def __init__(self, cpu: _Optional[int] = ..., memory: _Optional[float] = ..., storage: _Optional[float] = ..., architecture: _Optional[str] = ...) -> None: ...
