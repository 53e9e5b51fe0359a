import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StorageSnapshot(_message.Message):
    __slots__ = ("id", "name", "description", "state", "storage_volume_id", "create_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[StorageSnapshot.State]
        STATE_PENDING: _ClassVar[StorageSnapshot.State]
        STATE_COMPLETED: _ClassVar[StorageSnapshot.State]
        STATE_ERROR: _ClassVar[StorageSnapshot.State]
    STATE_UNSPECIFIED: StorageSnapshot.State
    STATE_PENDING: StorageSnapshot.State
    STATE_COMPLETED: StorageSnapshot.State
    STATE_ERROR: StorageSnapshot.State
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STORAGE_VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    state: StorageSnapshot.State
    storage_volume_id: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., state: _Optional[_Union[StorageSnapshot.State, str]] = ..., storage_volume_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListStorageSnapshotsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id", "storage_volume_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STORAGE_VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id: str
    storage_volume_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id: _Optional[str] = ..., storage_volume_id: _Optional[str] = ...) -> None: ...

class ListStorageSnapshotsResponse(_message.Message):
    __slots__ = ("storage_snapshots", "next_page_token")
    STORAGE_SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    storage_snapshots: _containers.RepeatedCompositeFieldContainer[StorageSnapshot]
    next_page_token: str
    def __init__(self, storage_snapshots: _Optional[_Iterable[_Union[StorageSnapshot, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetStorageSnapshotRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateStorageSnapshotRequest(_message.Message):
    __slots__ = ("storage_volume_id", "name", "description", "request_id")
    STORAGE_VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    storage_volume_id: str
    name: str
    description: str
    request_id: str
    def __init__(self, storage_volume_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteStorageSnapshotRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
