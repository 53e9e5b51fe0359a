"""Retried creates answer once (AIP-155 request ids).

A create whose answer is lost (the client's deadline passed, the connection dropped, the
server restarted) leaves its client not knowing whether the instance, volume, snapshot or
address exists; retrying blindly may create a second one. A client that sends a
``request_id`` (a UUID it chose) with a create, and the same one with every retry of it,
gets for each retry the answer of the first attempt that succeeded, and the driver is
called once:

- the answer is kept in SQLite under the data directory (``requests.sqlite3``), written
  before it is sent, for ``--request-id-retention`` seconds, so a retry after a restart,
  or a kill -9, is answered too;
- a retry that arrives while the first attempt still runs waits for it;
- the first attempt goes on when its client gives up (deadline, cancel), so the retry
  finds its answer rather than starting another create;
- a failed attempt is not kept: its retry runs again;
- ids are per scope (driver, provider, credentials: the keyed hash the event journal uses,
  never the credentials) and per method; the same id with a different request is
  INVALID_ARGUMENT (REQUEST_ID_REUSED).

The driver also gets the id (``CallContext.request_id``): a cloud that takes an idempotency
token (EC2's ClientToken) then covers the one window the server cannot, a create the backend
finished whose answer the server never recorded (it stopped meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf.message import Message

from .errors import ApiError, invalid_argument
from .gateway import Call
from .metrics import Counter, Metrics

R = TypeVar("R", bound=Message)
log = logging.getLogger("deltacloud.server.requests")

#: Default of --request-id-retention: a day.
DEFAULT_RETENTION = 24 * 3600.0

#: At shutdown, creates still running (their clients gone) get this long to be recorded.
CLOSE_WAIT = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key      TEXT PRIMARY KEY,   -- scope hash, request message name, request id
    digest   BLOB NOT NULL,      -- SHA-256 of the request without its request_id
    response BLOB NOT NULL,      -- the answer, serialized
    created  REAL NOT NULL       -- time.time() when it was answered
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS requests_by_age ON requests (created);
"""


def canonical_request_id(value: str) -> str:
    """The request id in canonical form (lower-case, hyphenated), or INVALID_ARGUMENT."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        shown = value if len(value) <= 64 else value[:61] + "..."
        raise invalid_argument(
            "INVALID_REQUEST_ID",
            f"request_id must be a UUID, such as {uuid.UUID(int=0x1234)}; got {shown!r}",
            field="request_id",
        ) from None


def request_digest(request: Message) -> bytes:
    """What identifies a request beyond its id: its fields, the id left out."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


class RequestStore:
    """The kept answers, in SQLite (blocking; called from one thread)."""

    def __init__(self, path: Path, retention: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.retention = retention
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an answer sent is an answer kept
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def get(self, key: str) -> tuple[bytes, bytes] | None:
        """(digest, response) of the answer kept for ``key``, unless it has expired."""
        with self._lock:
            row = self._db.execute(
                "SELECT digest, response FROM requests WHERE key = ? AND created >= ?",
                (key, time.time() - self.retention),
            ).fetchone()
        return None if row is None else (bytes(row[0]), bytes(row[1]))

    def put(self, key: str, digest: bytes, response: bytes) -> None:
        """Keep an answer (and forget the expired ones)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO requests (key, digest, response, created) "
                    "VALUES (?, ?, ?, ?)",
                    (key, digest, response, now),
                )
                self._db.execute("DELETE FROM requests WHERE created < ?", (now - self.retention,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RequestLog:
    """Runs creates once per request id (see the module's docstring)."""

    def __init__(
        self,
        path: Path,
        scope_of: Callable[[Call], str],
        retention: float = DEFAULT_RETENTION,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = RequestStore(path, retention)
        self.answered = Counter(
            "deltacloud_request_ids_total",
            "Creates sent with a request_id, by outcome: first (the driver was called), "
            "kept (a retry answered the first attempt's answer), reused (another request "
            "under the same id, refused).",
            ["outcome"],
        )
        if metrics is not None:
            metrics.register(self.answered)
        #: The call's scope as the event journal keys it (EventHub.key_of).
        self._scope_of = scope_of
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="requests")
        #: Creates with a request id running now, by key.
        self._running: dict[str, asyncio.Task[Any]] = {}

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def once(
        self,
        call: Call,
        request: Message,
        response_type: type[R],
        create: Callable[[Call], Awaitable[R]],
        same: Message | None = None,
    ) -> R:
        """``create(call)``, unless this request's id was answered before (the same answer
        again) or is being answered now (wait for it). Without a request id, just
        ``create(call)``. ``same``: the request in canonical form, when two spellings of
        it ask for the same thing (``instance_count`` 0 and 1): what identifies it."""
        raw: str = getattr(request, "request_id")  # noqa: B009 (every caller's has one)
        if not raw:
            return await create(call)
        request_id = canonical_request_id(raw)
        # A kept answer is given only to credentials the driver accepts now.
        await call.authenticate()
        key = f"{self._scope_of(call)}/{request.DESCRIPTOR.full_name}/{request_id}"
        digest = request_digest(same if same is not None else request)
        # An answer kept by a server that digested requests as sent is still this one's.
        also = request_digest(request) if same is not None else digest
        while True:
            running = self._running.get(key)
            if running is not None:
                # Another attempt with this id is running: its answer is ours (or, if it
                # fails, we try ourselves).
                with contextlib.suppress(Exception):
                    await asyncio.shield(running)
                continue
            kept = await self._in_thread(self.store.get, key)
            if key not in self._running:  # nobody started meanwhile
                break
        if kept is not None:
            kept_digest, response = kept
            if kept_digest not in (digest, also):
                self.answered.inc("reused")
                raise _reused(request_id)
            self.answered.inc("kept")
            return response_type.FromString(response)
        self.answered.inc("first")
        call.ctx = dataclasses.replace(call.ctx, request_id=request_id)
        task = asyncio.get_running_loop().create_task(self._first(key, digest, call, create))
        task.add_done_callback(_retrieve)
        self._running[key] = task
        # The first attempt goes on if its client gives up: a retry gets its answer.
        return await asyncio.shield(task)

    async def _first(
        self, key: str, digest: bytes, call: Call, create: Callable[[Call], Awaitable[R]]
    ) -> R:
        try:
            response = await create(call)
            try:
                await self._in_thread(self.store.put, key, digest, response.SerializeToString())
            except Exception:
                # The create itself stands and is answered; only a retry of it would not
                # find it (the driver's own token may still catch that).
                log.exception("keeping the answer of a request id failed")
            return response
        finally:
            del self._running[key]

    async def close(self, wait: float = CLOSE_WAIT) -> None:
        """Give creates still running (their clients gone) ``wait`` seconds to finish and
        be kept, then close the store."""
        tasks = list(self._running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=wait)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self._in_thread(self.store.close)
        self._thread.shutdown(wait=True)


def _reused(request_id: str) -> ApiError:
    return invalid_argument(
        "REQUEST_ID_REUSED",
        f"request_id {request_id} was used before with a different request; a retry must "
        "send the same request, and a new create a new request_id",
        request_id=request_id,
    )


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A first attempt's failure reaches its client (if still there) and any retry waiting;
    nobody else needs to hear of it (asyncio would log it as never retrieved)."""
    if not task.cancelled():
        task.exception()
