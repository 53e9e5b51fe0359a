from deltacloud.v1 import hardware_profile_pb2 as _hardware_profile_pb2
from deltacloud.v1 import instance_pb2 as _instance_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Driver(_message.Message):
    __slots__ = ("id", "name", "description", "providers")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    providers: _containers.RepeatedCompositeFieldContainer[Provider]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., providers: _Optional[_Iterable[_Union[Provider, _Mapping]]] = ...) -> None: ...

class Provider(_message.Message):
    __slots__ = ("id", "name", "endpoint")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    endpoint: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., endpoint: _Optional[str] = ...) -> None: ...

class ListDriversRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ListDriversResponse(_message.Message):
    __slots__ = ("drivers", "next_page_token")
    DRIVERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    drivers: _containers.RepeatedCompositeFieldContainer[Driver]
    next_page_token: str
    def __init__(self, drivers: _Optional[_Iterable[_Union[Driver, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDriverRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListProvidersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "driver_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    driver_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., driver_id: _Optional[str] = ...) -> None: ...

class ListProvidersResponse(_message.Message):
    __slots__ = ("providers", "next_page_token")
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.RepeatedCompositeFieldContainer[Provider]
    next_page_token: str
    def __init__(self, providers: _Optional[_Iterable[_Union[Provider, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetCapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("driver_id", "provider_id", "collections", "hardware_profiles", "instance_states")
    DRIVER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_PROFILES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_STATES_FIELD_NUMBER: _ClassVar[int]
    driver_id: str
    provider_id: str
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    hardware_profiles: _containers.RepeatedCompositeFieldContainer[_hardware_profile_pb2.HardwareProfile]
    instance_states: _instance_pb2.InstanceStateMachine
    def __init__(self, driver_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ..., hardware_profiles: _Optional[_Iterable[_Union[_hardware_profile_pb2.HardwareProfile, _Mapping]]] = ..., instance_states: _Optional[_Union[_instance_pb2.InstanceStateMachine, _Mapping]] = ...) -> None: ...

class Collection(_message.Message):
    __slots__ = ("name", "features", "operations")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    features: _containers.RepeatedCompositeFieldContainer[Feature]
    operations: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., features: _Optional[_Iterable[_Union[Feature, _Mapping]]] = ..., operations: _Optional[_Iterable[str]] = ...) -> None: ...

class Feature(_message.Message):
    __slots__ = ("name", "description", "constraints")
    class ConstraintsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    constraints: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., constraints: _Optional[_Mapping[str, str]] = ...) -> None: ...
