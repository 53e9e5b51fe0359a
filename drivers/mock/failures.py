"""Failure on purpose: realm ids that make the mock raise a chosen error, so clients can
test their error handling (Deltacloud's mock did this with realm ids 500/501/502/504).

``get_realm(id)`` and ``list_realms`` filtered on one of these ids raise:

====  ===========================  ====  ===========================
400   ValidationError              429   ResourceExhaustedError
401   AuthenticationError          500   InternalDriverError
403   PermissionDeniedError        501   NotSupportedError
404   NotFoundError                502   BackendError (backend_code 502)
405   ActionNotAllowedError        503   BackendUnavailableError
409   ConflictError                504   BackendTimeoutError
====  ===========================  ====  ===========================

and ``hang`` blocks like a backend that does not answer, until the call's deadline (at most
30 seconds), then raises BackendTimeoutError: a well-behaved driver gives its worker back
when the client stops waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..base import CallContext
from ..errors import (
    ActionNotAllowedError,
    AuthenticationError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConflictError,
    DriverError,
    InternalDriverError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    ResourceExhaustedError,
    ValidationError,
)

_NOTE = "failure requested on purpose through mock realm"

FAILING_REALMS: dict[str, Callable[[], DriverError]] = {
    "400": lambda: ValidationError(f"{_NOTE} 400", metadata={"realm_id": "400"}),
    "401": lambda: AuthenticationError(f"{_NOTE} 401"),
    "403": lambda: PermissionDeniedError(f"{_NOTE} 403", metadata={"realm_id": "403"}),
    "404": lambda: NotFoundError("realm", "404"),
    "405": lambda: ActionNotAllowedError("inst0", "start", "running", ["reboot", "stop"]),
    "409": lambda: ConflictError(
        f"{_NOTE} 409", reason="MOCK_CONFLICT", metadata={"realm_id": "409"}
    ),
    "429": lambda: ResourceExhaustedError(f"{_NOTE} 429", metadata={"realm_id": "429"}),
    "500": lambda: InternalDriverError(f"{_NOTE} 500"),
    "501": lambda: NotSupportedError(f"{_NOTE} 501", metadata={"realm_id": "501"}),
    "502": lambda: BackendError(
        f"{_NOTE} 502", metadata={"backend_code": "502", "realm_id": "502"}
    ),
    "503": lambda: BackendUnavailableError(
        f"{_NOTE} 503", metadata={"backend_code": "503", "realm_id": "503"}
    ),
    "504": lambda: BackendTimeoutError(
        f"{_NOTE} 504", metadata={"backend_code": "504", "realm_id": "504"}
    ),
}


#: The longest a ``hang`` realm blocks when the call has no deadline.
MAX_HANG = 30.0


def raise_if_failing(realm_ids: object, ctx: CallContext) -> None:
    """Raise the error a failing realm id asks for; ``realm_ids`` is one id or a list."""
    candidates = realm_ids if isinstance(realm_ids, list | tuple | set | frozenset) else [realm_ids]
    for realm_id in candidates:
        if realm_id == "hang":
            ctx.leave_event_loop()  # blocks: never on the server's event loop
            left = ctx.time_left()
            time.sleep(MAX_HANG if left is None else min(left, MAX_HANG))
            raise BackendTimeoutError(
                "the backend did not answer within the call's deadline",
                metadata={"realm_id": "hang"},
            )
        factory = FAILING_REALMS.get(str(realm_id))
        if factory is not None:
            raise factory()
