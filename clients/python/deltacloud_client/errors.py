"""Exceptions of the client: one class per gRPC status code, each carrying the server's
google.rpc.ErrorInfo (reason, domain, metadata), and the translation from a grpc error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class DeltacloudError(Exception):
    """A failed call: its status code, message and ErrorInfo (reason, domain, metadata)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})

    def __str__(self) -> str:
        name = self.code.name if self.code is not None else "UNKNOWN"
        reason = f" {self.reason}" if self.reason else ""
        return f"{name}{reason}: {self.message}"


class Cancelled(DeltacloudError):
    code = grpc.StatusCode.CANCELLED


class Unknown(DeltacloudError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(DeltacloudError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(DeltacloudError, TimeoutError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(DeltacloudError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DeltacloudError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(DeltacloudError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(DeltacloudError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(DeltacloudError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(DeltacloudError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(DeltacloudError):
    code = grpc.StatusCode.OUT_OF_RANGE


class RevisionCompacted(OutOfRange):
    """A watch asked for history the journal no longer keeps: list the instances again and
    watch from there (or watch with ``initial_snapshot``). ``metadata`` holds
    ``compacted_revision`` and ``current_revision``."""


class JournalMismatch(RevisionCompacted):
    """A watch resumed from a revision of another journal (another server behind the same
    address, or this one's journal started afresh): as good as compacted, list the
    instances again and watch from there. ``metadata`` holds the server's ``journal_id``
    and ``current_revision``."""


class RevisionAhead(RevisionCompacted):
    """A watch resumed from a revision the server's journal never reached (a journal lost or
    restored from a backup, another server, and no ``journal_id`` sent to tell): as good as
    compacted, list the instances again and watch from there. ``metadata`` holds
    ``after_revision`` and ``current_revision``."""


class Unimplemented(DeltacloudError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(DeltacloudError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(DeltacloudError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(DeltacloudError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(DeltacloudError):
    code = grpc.StatusCode.UNAUTHENTICATED


class WaitTimeout(DeltacloudError, TimeoutError):
    """``wait_for`` gave up: the instance did not reach the state in time."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class InstanceGone(NotFound):
    """``wait_for`` saw the instance disappear before it reached the state."""


_BY_CODE: dict[grpc.StatusCode, type[DeltacloudError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def _error_info(trailing: Iterable[Any] | None) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo packed in the google.rpc.Status of the trailing metadata, if any."""
    for item in trailing or ():
        key, value = item
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):  # type: ignore[arg-type]
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return info
    return None


def from_rpc_error(error: grpc.RpcError) -> DeltacloudError:
    """The exception for a failed call (grpc.RpcError of the sync API or grpc.aio's
    AioRpcError, both of which are also the call, with code, details and trailers)."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    info = _error_info(error.trailing_metadata())
    reason = info.reason if info else ""
    cls = _BY_CODE.get(code, DeltacloudError)
    if code == grpc.StatusCode.OUT_OF_RANGE and reason == "REVISION_COMPACTED":
        cls = RevisionCompacted
    elif code == grpc.StatusCode.OUT_OF_RANGE and reason == "JOURNAL_MISMATCH":
        cls = JournalMismatch
    elif code == grpc.StatusCode.OUT_OF_RANGE and reason == "REVISION_AHEAD":
        cls = RevisionAhead
    exception = cls(
        message,
        code=code,
        reason=reason,
        domain=info.domain if info else "",
        metadata=dict(info.metadata) if info else None,
    )
    return exception


__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "DeltacloudError",
    "FailedPrecondition",
    "InstanceGone",
    "Internal",
    "InvalidArgument",
    "JournalMismatch",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "RevisionAhead",
    "RevisionCompacted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "WaitTimeout",
    "from_rpc_error",
]
