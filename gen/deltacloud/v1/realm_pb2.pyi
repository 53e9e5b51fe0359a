from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Realm(_message.Message):
    __slots__ = ("id", "name", "state", "limit")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Realm.State]
        STATE_AVAILABLE: _ClassVar[Realm.State]
        STATE_UNAVAILABLE: _ClassVar[Realm.State]
    STATE_UNSPECIFIED: Realm.State
    STATE_AVAILABLE: Realm.State
    STATE_UNAVAILABLE: Realm.State
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: Realm.State
    limit: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[Realm.State, str]] = ..., limit: _Optional[str] = ...) -> None: ...

class ListRealmsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ListRealmsResponse(_message.Message):
    __slots__ = ("realms", "next_page_token")
    REALMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    realms: _containers.RepeatedCompositeFieldContainer[Realm]
    next_page_token: str
    def __init__(self, realms: _Optional[_Iterable[_Union[Realm, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRealmRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
