import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoadBalancer(_message.Message):
    __slots__ = ("id", "name", "realm_ids", "listeners", "instance_ids", "public_addresses", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REALM_IDS_FIELD_NUMBER: _ClassVar[int]
    LISTENERS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    realm_ids: _containers.RepeatedScalarFieldContainer[str]
    listeners: _containers.RepeatedCompositeFieldContainer[Listener]
    instance_ids: _containers.RepeatedScalarFieldContainer[str]
    public_addresses: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., realm_ids: _Optional[_Iterable[str]] = ..., listeners: _Optional[_Iterable[_Union[Listener, _Mapping]]] = ..., instance_ids: _Optional[_Iterable[str]] = ..., public_addresses: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Listener(_message.Message):
    __slots__ = ("protocol", "load_balancer_port", "instance_port")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    LOAD_BALANCER_PORT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_PORT_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    load_balancer_port: int
    instance_port: int
    def __init__(self, protocol: _Optional[str] = ..., load_balancer_port: _Optional[int] = ..., instance_port: _Optional[int] = ...) -> None: ...

class ListLoadBalancersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ListLoadBalancersResponse(_message.Message):
    __slots__ = ("load_balancers", "next_page_token")
    LOAD_BALANCERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    load_balancers: _containers.RepeatedCompositeFieldContainer[LoadBalancer]
    next_page_token: str
    def __init__(self, load_balancers: _Optional[_Iterable[_Union[LoadBalancer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetLoadBalancerRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateLoadBalancerRequest(_message.Message):
    __slots__ = ("name", "realm_ids", "listeners")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REALM_IDS_FIELD_NUMBER: _ClassVar[int]
    LISTENERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    realm_ids: _containers.RepeatedScalarFieldContainer[str]
    listeners: _containers.RepeatedCompositeFieldContainer[Listener]
    def __init__(self, name: _Optional[str] = ..., realm_ids: _Optional[_Iterable[str]] = ..., listeners: _Optional[_Iterable[_Union[Listener, _Mapping]]] = ...) -> None: ...

class DeleteLoadBalancerRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RegisterInstanceRequest(_message.Message):
    __slots__ = ("id", "instance_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    instance_id: str
    def __init__(self, id: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class UnregisterInstanceRequest(_message.Message):
    __slots__ = ("id", "instance_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    instance_id: str
    def __init__(self, id: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...
