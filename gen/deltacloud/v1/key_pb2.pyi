from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Key(_message.Message):
    __slots__ = ("id", "name", "credential_type", "fingerprint", "username", "password", "pem_rsa_key", "public_key", "state")
    class CredentialType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CREDENTIAL_TYPE_UNSPECIFIED: _ClassVar[Key.CredentialType]
        CREDENTIAL_TYPE_KEY: _ClassVar[Key.CredentialType]
        CREDENTIAL_TYPE_PASSWORD: _ClassVar[Key.CredentialType]
    CREDENTIAL_TYPE_UNSPECIFIED: Key.CredentialType
    CREDENTIAL_TYPE_KEY: Key.CredentialType
    CREDENTIAL_TYPE_PASSWORD: Key.CredentialType
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Key.State]
        STATE_AVAILABLE: _ClassVar[Key.State]
        STATE_UNAVAILABLE: _ClassVar[Key.State]
    STATE_UNSPECIFIED: Key.State
    STATE_AVAILABLE: Key.State
    STATE_UNAVAILABLE: Key.State
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    PEM_RSA_KEY_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    credential_type: Key.CredentialType
    fingerprint: str
    username: str
    password: str
    pem_rsa_key: str
    public_key: str
    state: Key.State
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., credential_type: _Optional[_Union[Key.CredentialType, str]] = ..., fingerprint: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ..., pem_rsa_key: _Optional[str] = ..., public_key: _Optional[str] = ..., state: _Optional[_Union[Key.State, str]] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys", "next_page_token")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[Key]
    next_page_token: str
    def __init__(self, keys: _Optional[_Iterable[_Union[Key, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateKeyRequest(_message.Message):
    __slots__ = ("name", "public_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    public_key: str
    def __init__(self, name: _Optional[str] = ..., public_key: _Optional[str] = ...) -> None: ...

class DeleteKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
