"""The event journal: every instance event of every scope, in SQLite under the data
directory, so a subscriber can resume after a disconnect, a restart or a kill -9.

A scope is known only by a keyed hash of (driver, provider, credentials); the journal
never sees credentials. Per scope it keeps the revision counter, the events (serialized
InstanceEvent messages) and the last known state of every instance, all written in one
transaction per append. Old events are compacted by count and age; asking for them later
is REVISION_COMPACTED.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deltacloud.v1 import instance_pb2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scopes (
    scope      TEXT PRIMARY KEY,
    head       INTEGER NOT NULL,   -- revision of the last event
    compacted  INTEGER NOT NULL,   -- every revision up to this one is gone
    baselined  INTEGER NOT NULL,   -- the monitor has seen the backend at least once
    journal_id TEXT                -- random: names this history of the scope's revisions
);
CREATE TABLE IF NOT EXISTS events (
    scope    TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created  REAL NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (scope, revision)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS known (
    scope       TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    data        BLOB NOT NULL,
    PRIMARY KEY (scope, instance_id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class ScopeState:
    head: int
    compacted: int
    baselined: bool
    known: dict[str, instance_pb2.Instance]
    #: Names the scope's history in this journal: revisions are positions in it, and mean
    #: nothing elsewhere (another server's journal, this one started afresh, a new scope
    #: key). Clients resuming send it back.
    journal_id: str


def new_journal_id() -> str:
    return secrets.token_hex(8)


class Journal:
    """Blocking, thread-safe; the hub writes from one writer thread, and reads history
    (``read``, ``compacted``) from reader threads, each on a connection of its own."""

    def __init__(self, path: Path, *, max_events: int, max_age: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self.max_age = max_age
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(scopes)")}
        if "journal_id" not in columns:  # a journal written before journal ids
            self._db.execute("ALTER TABLE scopes ADD COLUMN journal_id TEXT")
        self._path = path
        #: Connections of the reader threads (WAL: readers never wait for the writer).
        self._readers = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._readers, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout=10000")
            self._readers.db = db
            with self._readers_lock:  # not the writer's lock: a read never waits for it
                self._reader_connections.append(db)
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._readers_lock:
            for db in self._reader_connections:
                db.close()
            self._reader_connections.clear()

    def load(self, scope: str) -> ScopeState:
        """The scope's state; a scope seen for the first time (or journaled before journal
        ids existed) gets its journal id now."""
        with self._lock:
            row = self._db.execute(
                "SELECT head, compacted, baselined, journal_id FROM scopes WHERE scope = ?",
                (scope,),
            ).fetchone()
            if row is None or row[3] is None:
                journal_id = new_journal_id()
                self._db.execute(
                    "INSERT INTO scopes (scope, head, compacted, baselined, journal_id) "
                    "VALUES (?, 0, 0, 0, ?) "
                    "ON CONFLICT (scope) DO UPDATE SET journal_id = excluded.journal_id",
                    (scope, journal_id),
                )
                row = (*(row or (0, 0, 0))[:3], journal_id)
            known = {
                instance_id: instance_pb2.Instance.FromString(data)
                for instance_id, data in self._db.execute(
                    "SELECT instance_id, data FROM known WHERE scope = ?", (scope,)
                )
            }
        return ScopeState(row[0], row[1], bool(row[2]), known, row[3])

    def append(
        self,
        scope: str,
        events: Sequence[instance_pb2.InstanceEvent],
        known: Mapping[str, instance_pb2.Instance | None],
        baselined: bool,
    ) -> list[instance_pb2.InstanceEvent]:
        """Give the events the next revisions and store them with the known-state changes
        (None removes an instance) in one durable transaction; returns the stored events."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT head FROM scopes WHERE scope = ?", (scope,)
                ).fetchone()
                head = row[0] if row else 0
                stored = []
                for event in events:
                    head += 1
                    numbered = instance_pb2.InstanceEvent()
                    numbered.CopyFrom(event)
                    numbered.revision = head
                    self._db.execute(
                        "INSERT INTO events (scope, revision, created, data) VALUES (?, ?, ?, ?)",
                        (scope, head, now, numbered.SerializeToString()),
                    )
                    stored.append(numbered)
                self._db.execute(
                    "INSERT INTO scopes (scope, head, compacted, baselined, journal_id) "
                    "VALUES (?, ?, 0, ?, ?) "
                    "ON CONFLICT (scope) DO UPDATE SET head = excluded.head, "
                    "baselined = max(baselined, excluded.baselined)",
                    (scope, head, int(baselined), new_journal_id()),
                )
                for instance_id, instance in known.items():
                    if instance is None:
                        self._db.execute(
                            "DELETE FROM known WHERE scope = ? AND instance_id = ?",
                            (scope, instance_id),
                        )
                    else:
                        self._db.execute(
                            "INSERT OR REPLACE INTO known (scope, instance_id, data) "
                            "VALUES (?, ?, ?)",
                            (scope, instance_id, instance.SerializeToString()),
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return stored

    def read(
        self, scope: str, after: int, upto: int, limit: int
    ) -> list[instance_pb2.InstanceEvent]:
        """Events with after < revision <= upto, oldest first, at most ``limit``. On a
        connection of the calling thread's own (a reader thread), never the writer's."""
        rows = (
            self._reader()
            .execute(
                "SELECT data FROM events WHERE scope = ? AND revision > ? AND revision <= ? "
                "ORDER BY revision LIMIT ?",
                (scope, after, upto, limit),
            )
            .fetchall()
        )
        return [instance_pb2.InstanceEvent.FromString(data) for (data,) in rows]

    def compacted(self, scope: str) -> int:
        """Like ``read``, on the calling thread's own connection."""
        row = (
            self._reader()
            .execute("SELECT compacted FROM scopes WHERE scope = ?", (scope,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def compact(self, now: float | None = None) -> dict[str, int]:
        """Drop events beyond the retention (count per scope, and age); returns the new
        compacted revision of every scope that changed. The newest event of a scope is
        always kept, so a resume from the head never needs history."""
        cutoff = (time.time() if now is None else now) - self.max_age
        changed: dict[str, int] = {}
        with self._lock:
            scopes = self._db.execute("SELECT scope, head, compacted FROM scopes").fetchall()
            for scope, head, compacted in scopes:
                by_count = head - self.max_events
                row = self._db.execute(
                    "SELECT max(revision) FROM events WHERE scope = ? AND created < ?",
                    (scope, cutoff),
                ).fetchone()
                by_age = min(row[0] or 0, head - 1)
                target = max(by_count, by_age, compacted)
                if target <= compacted:
                    continue
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "DELETE FROM events WHERE scope = ? AND revision <= ?", (scope, target)
                )
                self._db.execute("UPDATE scopes SET compacted = ? WHERE scope = ?", (target, scope))
                self._db.execute("COMMIT")
                changed[scope] = target
        return changed
