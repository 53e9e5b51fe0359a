"""What the client knows of each RPC (path, message types, whether a retry is safe, the
items of a list) and how keyword arguments become a request message. Transport-free: the
synchronous and the asyncio client share it."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf import duration_pb2
from google.protobuf.message import Message

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Rpc(Generic[Req, Resp]):
    """One method of the API."""

    path: str
    request: type[Req]
    response: type[Resp]
    #: Retried with backoff on UNAVAILABLE: a read, or a create taking a request id (never
    #: a stop or a delete).
    safe_to_retry: bool = False
    #: For a paged list: the repeated field of the response holding the items.
    items: str = ""
    #: A create taking a request id (AIP-155): see :func:`with_request_id`.
    request_id: bool = False


def with_request_id(rpc: Rpc[Req, Resp], request: Req) -> Req:
    """The request to send, and to send again on each retry: for a create taking a request id
    that the caller left empty, a copy with a new UUID in it (the server answers every
    retry with the same id once). The caller's message is left as it was."""
    if not rpc.request_id or getattr(request, "request_id"):  # noqa: B009
        return request
    filled = type(request)()
    filled.CopyFrom(request)
    filled.request_id = str(uuid.uuid4())  # type: ignore[attr-defined]
    return filled


def enum_value(enum: Any, value: int | str) -> int:
    """An enum value from its number, its full name (``INSTANCE_STATE_RUNNING``) or its
    short name in any case (``running``)."""
    if isinstance(value, int):
        return value
    names = enum.values_by_name
    if value in names:
        return int(names[value].number)
    wanted = value.upper().replace("-", "_")
    for name, descriptor in names.items():
        if name == wanted or name.endswith("_" + wanted):
            return int(descriptor.number)
    choices = ", ".join(short_names(enum))
    raise ValueError(f"{value!r} is not a {enum.name}; choose one of {choices}")


def short_names(enum: Any) -> list[str]:
    """The enum's values as users type them (``running``), without the UNSPECIFIED one."""
    prefix = _common_prefix([v.name for v in enum.values])
    return [v.name[len(prefix) :].lower() for v in enum.values if v.number != 0]


def short_name(enum: Any, number: int) -> str:
    """The short name of one value (``running`` for INSTANCE_STATE_RUNNING)."""
    prefix = _common_prefix([v.name for v in enum.values])
    value = enum.values_by_number.get(number)
    return value.name[len(prefix) :].lower() if value else str(number)


def _common_prefix(names: list[str]) -> str:
    unspecified = [n for n in names if n.endswith("UNSPECIFIED")]
    return unspecified[0][: -len("UNSPECIFIED")] if unspecified else ""


def _duration(value: Any) -> duration_pb2.Duration:
    if isinstance(value, duration_pb2.Duration):
        return value
    duration = duration_pb2.Duration()
    if isinstance(value, datetime.timedelta):
        duration.FromTimedelta(value)
    else:
        duration.FromNanoseconds(round(float(value) * 1e9))
    return duration


def _coerce(field: Any, value: Any) -> Any:
    if field.enum_type is not None:
        if field.is_repeated:
            return [enum_value(field.enum_type, v) for v in value]
        return enum_value(field.enum_type, value)
    if (
        field.message_type is not None
        and field.message_type.full_name == "google.protobuf.Duration"
    ):
        return _duration(value)
    return value


def build(message_type: type[M], **fields: Any) -> M:
    """The request message from keyword arguments; None leaves a field unset, enums take
    names, a Duration takes seconds or a timedelta."""
    descriptor = message_type.DESCRIPTOR
    kept = {
        name: _coerce(descriptor.fields_by_name[name], value)
        for name, value in fields.items()
        if value is not None
    }
    return message_type(**kept)
