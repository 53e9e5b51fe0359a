"""The one place where failures become gRPC statuses: every error leaves the server as a
google.rpc.Status carrying a google.rpc.ErrorInfo (domain ``deltacloud``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from deltacloud.drivers import errors as e
from deltacloud.drivers.registry import UnknownDriverError

from .logs import redact

DOMAIN = "deltacloud"
log = logging.getLogger("deltacloud.server.errors")

# Most specific first: the first class an error is an instance of decides its code.
_CODES: list[tuple[type[e.DriverError], grpc.StatusCode]] = [
    (e.ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (e.AuthenticationError, grpc.StatusCode.UNAUTHENTICATED),
    (e.PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (e.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (e.AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (e.ConflictError, grpc.StatusCode.FAILED_PRECONDITION),
    (e.NotSupportedError, grpc.StatusCode.UNIMPLEMENTED),
    (e.BackendTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (e.BackendError, grpc.StatusCode.UNAVAILABLE),
    (e.ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.InternalDriverError, grpc.StatusCode.INTERNAL),
]


class ApiError(Exception):
    """A failure decided by the server itself (bad metadata, bad page token, ...)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = {k: _text(v) for k, v in (metadata or {}).items() if v is not None}


def _text(value: object) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    return str(value)


def invalid_argument(reason: str, message: str, **metadata: object) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, reason, message, metadata)


def code_of(error: e.DriverError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def to_api_error(exc: BaseException, context_metadata: Mapping[str, str]) -> ApiError:
    """Map any exception raised while serving a call. Unexpected ones become INTERNAL with a
    reference the operator can find in the log; the client never sees a traceback."""
    if isinstance(exc, ApiError):
        exc.metadata = {**context_metadata, **exc.metadata}
        return exc
    if isinstance(exc, e.DriverError):
        # A backend's message may quote what it was sent; never echo a credential.
        metadata = {k: redact(v) for k, v in exc.metadata.items()}
        return ApiError(
            code_of(exc), exc.reason, redact(exc.message), {**context_metadata, **metadata}
        )
    if isinstance(exc, UnknownDriverError):
        return ApiError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "UNKNOWN_DRIVER",
            str(exc),
            {"driver": exc.name, "known_drivers": exc.known},
        )
    ref = uuid.uuid4().hex[:12]
    log.error("internal error ref=%s", ref, exc_info=exc)
    return ApiError(
        grpc.StatusCode.INTERNAL,
        "INTERNAL",
        f"internal error (reference {ref}; see the server log)",
        {**context_metadata, "reference": ref},
    )


#: An error's message and each ErrorInfo metadata value are clipped to these (characters):
#: both travel in trailing metadata (the message twice: grpc-message and the status
#: details), which gRPC clients refuse past 16 KiB. A 10,000-character id echoed in a
#: NOT_FOUND reached the client as RESOURCE_EXHAUSTED without ErrorInfo.
MAX_ERROR_MESSAGE = 1024
MAX_ERROR_VALUE = 512


def clip(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters and saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def to_status(error: ApiError) -> grpc.Status:
    metadata = {key: clip(value, MAX_ERROR_VALUE) for key, value in error.metadata.items()}
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=getattr(code_pb2, error.code.name),
        message=clip(error.message, MAX_ERROR_MESSAGE),
        details=[detail],
    )
    return rpc_status.to_status(status)


async def abort(
    context: grpc.aio.ServicerContext[Any, Any],
    error: ApiError,
    scope: Mapping[str, str] | None = None,
) -> None:
    """End the call with ``error``; ``scope`` (the driver and provider the call resolved)
    is echoed in the trailing metadata as on success."""
    status = to_status(error)
    echo = [(f"x-deltacloud-{key}", value) for key, value in (scope or {}).items()]
    await context.abort(status.code, status.details, (*status.trailing_metadata, *echo))
