"""Client tokens: a create sent with a request id (``CallContext.request_id``) is done once
per owner, operation and id, as EC2 does with its ClientToken. The token is written in the
create's own transaction, so a retry finds it even when the server's request log never
recorded the answer (a crash between the create's commit and that write); the request log
answers every other retry before the driver is asked."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import time

from ..base import CallContext
from ..errors import ValidationError
from .store import Record, Tx

#: Kind of the token records in the store.
KIND = "client-token"
#: How long a token is honoured (the server's request log keeps answers as long by default).
TOKEN_SECONDS = 24 * 3600.0


def digest(opts: object) -> str:
    """A digest of a create's options: a token names one request."""
    data = dataclasses.asdict(opts) if dataclasses.is_dataclass(opts) else opts  # type: ignore[arg-type]
    text = json.dumps(data, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def _key(operation: str, request_id: str) -> str:
    return f"{operation}/{request_id}"


def replay(
    tx: Tx, owner: str, ctx: CallContext, operation: str, opts: object
) -> list[Record] | None:
    """The records the first create under this call's request id made, or None when there
    was none (or it expired). Another request under the same id is REQUEST_ID_REUSED."""
    if not ctx.request_id:
        return None
    found = tx.get(KIND, owner, _key(operation, ctx.request_id))
    if found is None or found["time"] < time.time() - TOKEN_SECONDS:
        return None
    if found["digest"] != digest(opts):
        raise ValidationError(
            f"request_id {ctx.request_id} was used before with a different request",
            reason="REQUEST_ID_REUSED",
            metadata={"request_id": ctx.request_id},
        )
    records: list[Record] = found["records"]
    return records


def remember(
    tx: Tx, owner: str, ctx: CallContext, operation: str, opts: object, made: list[Record]
) -> None:
    """Keep what a create under this call's request id made (and forget expired tokens)."""
    if not ctx.request_id:
        return
    now = time.time()
    tx.prune(KIND, now - TOKEN_SECONDS)
    record: Record = {"digest": digest(opts), "time": now, "records": made}
    tx.put(KIND, owner, _key(operation, ctx.request_id), record)
