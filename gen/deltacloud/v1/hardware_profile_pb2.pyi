from deltacloud.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HardwareProfile(_message.Message):
    __slots__ = ("id", "name", "cpu", "memory", "storage", "architecture")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    cpu: _common_pb2.HardwareProperty
    memory: _common_pb2.HardwareProperty
    storage: _common_pb2.HardwareProperty
    architecture: _common_pb2.HardwareProperty
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., cpu: _Optional[_Union[_common_pb2.HardwareProperty, _Mapping]] = ..., memory: _Optional[_Union[_common_pb2.HardwareProperty, _Mapping]] = ..., storage: _Optional[_Union[_common_pb2.HardwareProperty, _Mapping]] = ..., architecture: _Optional[_Union[_common_pb2.HardwareProperty, _Mapping]] = ...) -> None: ...

class ListHardwareProfilesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id", "architecture")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id: str
    architecture: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id: _Optional[str] = ..., architecture: _Optional[str] = ...) -> None: ...

class ListHardwareProfilesResponse(_message.Message):
    __slots__ = ("hardware_profiles", "next_page_token")
    HARDWARE_PROFILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hardware_profiles: _containers.RepeatedCompositeFieldContainer[HardwareProfile]
    next_page_token: str
    def __init__(self, hardware_profiles: _Optional[_Iterable[_Union[HardwareProfile, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetHardwareProfileRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
