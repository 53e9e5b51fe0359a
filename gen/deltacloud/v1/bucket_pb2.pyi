import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Bucket(_message.Message):
    __slots__ = ("id", "name", "blob_count", "location")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BLOB_COUNT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    blob_count: int
    location: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., blob_count: _Optional[int] = ..., location: _Optional[str] = ...) -> None: ...

class Blob(_message.Message):
    __slots__ = ("id", "bucket_id", "content_length", "content_type", "last_modified", "user_metadata")
    class UserMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LAST_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    bucket_id: str
    content_length: int
    content_type: str
    last_modified: _timestamp_pb2.Timestamp
    user_metadata: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., bucket_id: _Optional[str] = ..., content_length: _Optional[int] = ..., content_type: _Optional[str] = ..., last_modified: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user_metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BlobMetadata(_message.Message):
    __slots__ = ("user_metadata",)
    class UserMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    user_metadata: _containers.ScalarMap[str, str]
    def __init__(self, user_metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListBucketsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ListBucketsResponse(_message.Message):
    __slots__ = ("buckets", "next_page_token")
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[Bucket]
    next_page_token: str
    def __init__(self, buckets: _Optional[_Iterable[_Union[Bucket, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetBucketRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateBucketRequest(_message.Message):
    __slots__ = ("name", "location")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    location: str
    def __init__(self, name: _Optional[str] = ..., location: _Optional[str] = ...) -> None: ...

class DeleteBucketRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListBlobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "bucket_id", "prefix")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    bucket_id: str
    prefix: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., bucket_id: _Optional[str] = ..., prefix: _Optional[str] = ...) -> None: ...

class ListBlobsResponse(_message.Message):
    __slots__ = ("blobs", "next_page_token")
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    blobs: _containers.RepeatedCompositeFieldContainer[Blob]
    next_page_token: str
    def __init__(self, blobs: _Optional[_Iterable[_Union[Blob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetBlobRequest(_message.Message):
    __slots__ = ("bucket_id", "id")
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    id: str
    def __init__(self, bucket_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class UploadBlobHeader(_message.Message):
    __slots__ = ("bucket_id", "blob_id", "content_type", "user_metadata", "content_length")
    class UserMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    BLOB_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    blob_id: str
    content_type: str
    user_metadata: _containers.ScalarMap[str, str]
    content_length: int
    def __init__(self, bucket_id: _Optional[str] = ..., blob_id: _Optional[str] = ..., content_type: _Optional[str] = ..., user_metadata: _Optional[_Mapping[str, str]] = ..., content_length: _Optional[int] = ...) -> None: ...

class UploadBlobRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadBlobHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadBlobHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class DownloadBlobRequest(_message.Message):
    __slots__ = ("bucket_id", "id")
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    id: str
    def __init__(self, bucket_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class DownloadBlobResponse(_message.Message):
    __slots__ = ("blob", "chunk")
    BLOB_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    blob: Blob
    chunk: bytes
    def __init__(self, blob: _Optional[_Union[Blob, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class DeleteBlobRequest(_message.Message):
    __slots__ = ("bucket_id", "id")
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    id: str
    def __init__(self, bucket_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class GetBlobMetadataRequest(_message.Message):
    __slots__ = ("bucket_id", "id")
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    id: str
    def __init__(self, bucket_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class UpdateBlobMetadataRequest(_message.Message):
    __slots__ = ("bucket_id", "id", "user_metadata")
    class UserMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    id: str
    user_metadata: _containers.ScalarMap[str, str]
    def __init__(self, bucket_id: _Optional[str] = ..., id: _Optional[str] = ..., user_metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...
