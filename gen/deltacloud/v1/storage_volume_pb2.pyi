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

class StorageVolume(_message.Message):
    __slots__ = ("id", "name", "description", "create_time", "state", "capacity_gb", "instance_id", "device", "realm_id", "kind")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[StorageVolume.State]
        STATE_CREATING: _ClassVar[StorageVolume.State]
        STATE_AVAILABLE: _ClassVar[StorageVolume.State]
        STATE_IN_USE: _ClassVar[StorageVolume.State]
        STATE_ATTACHING: _ClassVar[StorageVolume.State]
        STATE_DELETING: _ClassVar[StorageVolume.State]
        STATE_ERROR: _ClassVar[StorageVolume.State]
    STATE_UNSPECIFIED: StorageVolume.State
    STATE_CREATING: StorageVolume.State
    STATE_AVAILABLE: StorageVolume.State
    STATE_IN_USE: StorageVolume.State
    STATE_ATTACHING: StorageVolume.State
    STATE_DELETING: StorageVolume.State
    STATE_ERROR: StorageVolume.State
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_GB_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    create_time: _timestamp_pb2.Timestamp
    state: StorageVolume.State
    capacity_gb: int
    instance_id: str
    device: str
    realm_id: str
    kind: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[StorageVolume.State, str]] = ..., capacity_gb: _Optional[int] = ..., instance_id: _Optional[str] = ..., device: _Optional[str] = ..., realm_id: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class ListStorageVolumesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id", "state", "realm_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id: str
    state: StorageVolume.State
    realm_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id: _Optional[str] = ..., state: _Optional[_Union[StorageVolume.State, str]] = ..., realm_id: _Optional[str] = ...) -> None: ...

class ListStorageVolumesResponse(_message.Message):
    __slots__ = ("storage_volumes", "next_page_token")
    STORAGE_VOLUMES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    storage_volumes: _containers.RepeatedCompositeFieldContainer[StorageVolume]
    next_page_token: str
    def __init__(self, storage_volumes: _Optional[_Iterable[_Union[StorageVolume, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetStorageVolumeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateStorageVolumeRequest(_message.Message):
    __slots__ = ("capacity_gb", "realm_id", "name", "description", "snapshot_id", "request_id")
    CAPACITY_GB_FIELD_NUMBER: _ClassVar[int]
    REALM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    capacity_gb: int
    realm_id: str
    name: str
    description: str
    snapshot_id: str
    request_id: str
    def __init__(self, capacity_gb: _Optional[int] = ..., realm_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., snapshot_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteStorageVolumeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class AttachStorageVolumeRequest(_message.Message):
    __slots__ = ("id", "instance_id", "device")
    ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    id: str
    instance_id: str
    device: str
    def __init__(self, id: _Optional[str] = ..., instance_id: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class DetachStorageVolumeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
