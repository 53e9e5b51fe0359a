from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Firewall(_message.Message):
    __slots__ = ("id", "name", "description", "owner_id", "rules")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    owner_id: str
    rules: _containers.RepeatedCompositeFieldContainer[FirewallRule]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., owner_id: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[FirewallRule, _Mapping]]] = ...) -> None: ...

class FirewallRule(_message.Message):
    __slots__ = ("id", "protocol", "port_from", "port_to", "sources", "direction")
    class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DIRECTION_UNSPECIFIED: _ClassVar[FirewallRule.Direction]
        DIRECTION_INGRESS: _ClassVar[FirewallRule.Direction]
        DIRECTION_EGRESS: _ClassVar[FirewallRule.Direction]
    DIRECTION_UNSPECIFIED: FirewallRule.Direction
    DIRECTION_INGRESS: FirewallRule.Direction
    DIRECTION_EGRESS: FirewallRule.Direction
    ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_FROM_FIELD_NUMBER: _ClassVar[int]
    PORT_TO_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    protocol: str
    port_from: int
    port_to: int
    sources: _containers.RepeatedCompositeFieldContainer[FirewallRuleSource]
    direction: FirewallRule.Direction
    def __init__(self, id: _Optional[str] = ..., protocol: _Optional[str] = ..., port_from: _Optional[int] = ..., port_to: _Optional[int] = ..., sources: _Optional[_Iterable[_Union[FirewallRuleSource, _Mapping]]] = ..., direction: _Optional[_Union[FirewallRule.Direction, str]] = ...) -> None: ...

class FirewallRuleSource(_message.Message):
    __slots__ = ("cidr", "firewall_id")
    CIDR_FIELD_NUMBER: _ClassVar[int]
    FIREWALL_ID_FIELD_NUMBER: _ClassVar[int]
    cidr: str
    firewall_id: str
    def __init__(self, cidr: _Optional[str] = ..., firewall_id: _Optional[str] = ...) -> None: ...

class ListFirewallsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ListFirewallsResponse(_message.Message):
    __slots__ = ("firewalls", "next_page_token")
    FIREWALLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    firewalls: _containers.RepeatedCompositeFieldContainer[Firewall]
    next_page_token: str
    def __init__(self, firewalls: _Optional[_Iterable[_Union[Firewall, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetFirewallRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateFirewallRequest(_message.Message):
    __slots__ = ("name", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class DeleteFirewallRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateFirewallRuleRequest(_message.Message):
    __slots__ = ("firewall_id", "protocol", "port_from", "port_to", "sources", "direction")
    FIREWALL_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_FROM_FIELD_NUMBER: _ClassVar[int]
    PORT_TO_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    firewall_id: str
    protocol: str
    port_from: int
    port_to: int
    sources: _containers.RepeatedCompositeFieldContainer[FirewallRuleSource]
    direction: FirewallRule.Direction
    def __init__(self, firewall_id: _Optional[str] = ..., protocol: _Optional[str] = ..., port_from: _Optional[int] = ..., port_to: _Optional[int] = ..., sources: _Optional[_Iterable[_Union[FirewallRuleSource, _Mapping]]] = ..., direction: _Optional[_Union[FirewallRule.Direction, str]] = ...) -> None: ...

class DeleteFirewallRuleRequest(_message.Message):
    __slots__ = ("firewall_id", "id")
    FIREWALL_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    firewall_id: str
    id: str
    def __init__(self, firewall_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...
