"""The Python client of the Deltacloud gRPC API: ``Client`` (blocking) and ``AsyncClient``
(asyncio), one method per RPC, pagers, a resumable watch and exceptions per status code.

    from deltacloud.client import Client

    with Client("127.0.0.1:50051", username="mockuser", password="mockpassword") as dc:
        for image in dc.list_images():
            print(image.id, image.name)
"""

from __future__ import annotations

from .client import AsyncClient, AsyncWatch, Client, Watch
from .errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    DeltacloudError,
    FailedPrecondition,
    InstanceGone,
    Internal,
    InvalidArgument,
    JournalMismatch,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    RevisionAhead,
    RevisionCompacted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    WaitTimeout,
)
from .paging import AsyncPager, Pager
from .retry import RetryPolicy
from .transport import Settings

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "AsyncPager",
    "AsyncWatch",
    "Cancelled",
    "Client",
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
    "Pager",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryPolicy",
    "RevisionAhead",
    "RevisionCompacted",
    "Settings",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "WaitTimeout",
    "Watch",
]
