"""SQLite persistence for the mock driver: one table of JSON records plus blob files.

Every object lives in one row of ``objects``, keyed by (kind, owner, parent, id):

- ``kind`` is the collection ("instance", "key", "blob", ...);
- ``owner`` is the user that owns it ("" for shared objects such as images);
- ``parent`` scopes child objects (a blob's bucket), "" otherwise;
- ``data`` is the record as JSON.

So every getter is a primary-key lookup and tenancy is part of the key. Blob content lives
in files under ``blobs/`` whose names are random and never reused: a new version of a blob
is written beside the old one and the row is switched to it in one transaction, so a failed
upload never damages the old version and a reader holding the old file keeps reading it.

Durability: WAL journal with ``synchronous=FULL`` (a COMMIT returns only after the WAL is
fsynced), every write inside ``BEGIN IMMEDIATE ... COMMIT``. Thread safety: one connection
guarded by a re-entrant lock, so transactions of the server's worker threads are serialised
in-process; ``BEGIN IMMEDIATE`` plus a busy timeout also serialise them against another
process opening the same database.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..base import WouldBlock
from ..errors import DriverError, InternalDriverError, ResourceExhaustedError

Record = dict[str, Any]

SCHEMA_VERSION = "1"
#: How long a commit of another process sharing the directory may stay unseen by reads
#: (this process's commits are seen at once).
OTHER_WRITERS_LAG = 0.01
#: This process's commits remembered for the read cache; past this many unread, it reads
#: everything again instead.
MAX_OWN_COMMITS = 10_000
#: Temporary upload files older than this are leftovers of a crash and are removed at open;
#: so are blob files no record names (a crash between an upload's rename into blobs/ and
#: its commit, or between a delete's commit and its unlink). The age spares a file another
#: process sharing the directory has just renamed into place and is about to commit.
STALE_UPLOAD_SECONDS = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    kind   TEXT NOT NULL,
    owner  TEXT NOT NULL,
    parent TEXT NOT NULL DEFAULT '',
    id     TEXT NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (kind, owner, parent, id)
);
-- id allocation ("first free inst<N>", "one past the highest vol<N>") looks at every owner
CREATE INDEX IF NOT EXISTS objects_by_kind_id ON objects (kind, id);
"""


class Tx:
    """The operations available inside one transaction."""

    def __init__(self, conn: sqlite3.Connection, store: Store) -> None:
        self._conn = conn
        self.store = store
        #: Paths of blob files to delete once the transaction has committed (replaced or
        #: deleted blobs): deleting them earlier would lose data if it rolled back.
        self.files_to_delete: list[Path] = []
        #: Paths of blob files written for this transaction, removed if it rolls back.
        self.files_written: list[Path] = []
        #: Records this transaction wrote or deleted, (kind, owner, parent, id), and kinds
        #: it changed in bulk: what the read cache must take again once it commits.
        self.touched: set[tuple[str, str, str, str]] = set()
        self.touched_kinds: set[str] = set()

    def get(self, kind: str, owner: str, item_id: str, parent: str = "") -> Record | None:
        row = self._conn.execute(
            "SELECT data FROM objects WHERE kind=? AND owner=? AND parent=? AND id=?",
            (kind, owner, parent, item_id),
        ).fetchone()
        return None if row is None else _load(row[0])

    def list(self, kind: str, owner: str | None, parent: str | None = "") -> list[Record]:
        """Records of ``kind``; ``owner`` None means every owner, ``parent`` None means
        every parent."""
        sql = "SELECT data FROM objects WHERE kind=?"
        args: list[str] = [kind]
        if owner is not None:
            sql += " AND owner=?"
            args.append(owner)
        if parent is not None:
            sql += " AND parent=?"
            args.append(parent)
        return [_load(row[0]) for row in self._conn.execute(sql, args)]

    def ids(self, kind: str) -> set[str]:
        """The ids of ``kind`` across every owner (for global id allocation)."""
        rows = self._conn.execute("SELECT id FROM objects WHERE kind=?", (kind,))
        return {row[0] for row in rows}

    def fresh_id(self, kind: str, prefix: str) -> str:
        """A ``<prefix><N>`` never given to a ``kind`` in this data directory: one past the
        highest N given so far (kept in meta, so a deleted item's id is not given again:
        what referred to the old item, a snapshot to its volume, an instance to its image,
        would take the newcomer for it)."""
        number = self.ids_given(kind, prefix) + 1
        self._given(kind, number)
        return f"{prefix}{number}"

    def ids_given(self, kind: str, prefix: str) -> int:
        """The highest N of a ``<prefix><N>`` given to a ``kind``: by fresh_id, or present
        (fixtures, items of a directory from before fresh_id)."""
        row = self._conn.execute(
            "SELECT value FROM meta WHERE key=?", (f"last_id.{kind}",)
        ).fetchone()
        last = int(row[0]) if row else 0
        for item_id in self.ids(kind):
            number = item_id[len(prefix) :]
            if item_id.startswith(prefix) and number.isascii() and number.isdigit():
                last = max(last, int(number))
        return last

    def remember_ids(self, kind: str, prefix: str) -> None:
        """Count the ids present as given (after seeding fixtures: a deleted fixture's id
        is not given again either)."""
        self._given(kind, self.ids_given(kind, prefix))

    def _given(self, kind: str, number: int) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (f"last_id.{kind}", str(number)),
        )

    def count(self, kind: str, owner: str, parent: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM objects WHERE kind=? AND owner=? AND parent=?",
            (kind, owner, parent),
        ).fetchone()
        return int(row[0])

    def put(self, kind: str, owner: str, item_id: str, data: Record, parent: str = "") -> None:
        """Insert or replace one record."""
        self.touched.add((kind, owner, parent, item_id))
        self._conn.execute(
            "INSERT OR REPLACE INTO objects (kind, owner, parent, id, data) VALUES (?, ?, ?, ?, ?)",
            (kind, owner, parent, item_id, json.dumps(data, sort_keys=True)),
        )

    def prune(self, kind: str, before: float) -> None:
        """Delete the records of ``kind`` whose ``time`` is before ``before``."""
        self.touched_kinds.add(kind)
        self._conn.execute(
            "DELETE FROM objects WHERE kind=? AND json_extract(data, '$.time') < ?",
            (kind, before),
        )

    def delete(self, kind: str, owner: str, item_id: str, parent: str = "") -> bool:
        self.touched.add((kind, owner, parent, item_id))
        cursor = self._conn.execute(
            "DELETE FROM objects WHERE kind=? AND owner=? AND parent=? AND id=?",
            (kind, owner, parent, item_id),
        )
        return cursor.rowcount > 0


class Snapshot:
    """Read-only records of some tables, as committed at one moment (Store.snapshot)."""

    def __init__(self, tables: dict[tuple[str, str], dict[tuple[str, str], Record]]) -> None:
        self._tables = tables

    def get(self, kind: str, owner: str, item_id: str, parent: str = "") -> Record | None:
        return self._tables[(kind, owner)].get((parent, item_id))

    def list(self, kind: str, owner: str, parent: str | None = "") -> list[Record]:
        """Records of ``kind`` owned by ``owner`` (under ``parent``; None: any parent)."""
        table = self._tables[(kind, owner)]
        if parent is None:
            return list(table.values())
        return [rec for (p, _), rec in table.items() if p == parent]

    def count(self, kind: str, owner: str, parent: str) -> int:
        return sum(1 for p, _ in self._tables[(kind, owner)] if p == parent)

    def table(self, kind: str, owner: str) -> Mapping[tuple[str, str], Record]:
        """The records of one table, by (parent, id). Tables are never changed in place:
        a commit that changes one gives later snapshots a new one, so the object's identity
        stands for its contents (what is derived from it may be kept with it)."""
        return self._tables[(kind, owner)]


def _select(reader: sqlite3.Connection, table: tuple[str, str]) -> dict[tuple[str, str], Record]:
    kind, owner = table
    rows = reader.execute(
        "SELECT parent, id, data FROM objects WHERE kind=? AND owner=?", (kind, owner)
    )
    return {(parent, item_id): _load(data) for parent, item_id, data in rows}


def _commits(reader: sqlite3.Connection) -> int:
    row = reader.execute("SELECT value FROM meta WHERE key='commits'").fetchone()
    return int(row[0]) if row else 0


def _load(text: str) -> Record:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise InternalDriverError("mock store holds a malformed record")
    return data


class Store:
    """The mock driver's database and blob directory under ``root``."""

    def __init__(self, root: Path, seed: Callable[[Tx], None]) -> None:
        self.root = root
        self.db_path = root / "mock.sqlite3"
        self.blob_dir = root / "blobs"
        self.tmp_dir = root / "tmp"
        self._seed = seed
        # One connection shared by every thread, guarded by this lock: simplest way to make
        # concurrent creates race-free (no duplicate ids, no lost writes) in one process.
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        # Reads served from memory (snapshot): a connection of their own (WAL readers never
        # wait for the writer), decoded tables, and the data_version they were read at.
        self._cache_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._cached: dict[tuple[str, str], dict[tuple[str, str], Record]] = {}
        self._cached_version: int | None = None
        # This process's commits, counted: the cache is checked against data_version when
        # this moved, or when OTHER_WRITERS_LAG passed since the last check.
        self._generation = 0
        self._checked_generation = -1
        self._checked_at = float("-inf")
        # Every committing transaction of any process numbers itself (meta 'commits'). This
        # process's commits, by number, with what each changed: the cache takes those
        # records again instead of every table (a write among thousands of instances cost
        # a read of them all). A number not here is another process's: then all is read.
        self._own: dict[int, tuple[set[tuple[str, str, str, str]], set[str]]] = {}
        self._own_lock = threading.Lock()
        #: The commit number the cache reflects (None: not known).
        self._commits_seen: int | None = None

    # ---- lifecycle --------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """Open (and on first use create and seed) the database. Caller holds the lock."""
        if self._conn is not None:
            return self._conn
        for directory in (self.root, self.blob_dir, self.tmp_dir):
            # Private when made here: the users' blobs and instances (user data) are in it.
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._remove_stale_uploads()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each method is exactly
        # one transaction. check_same_thread=False: the lock serialises use across threads.
        conn = sqlite3.connect(
            self.db_path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            seeded = conn.execute("SELECT value FROM meta WHERE key='seeded'").fetchone()
            if seeded is None:
                # Fixtures go in with the schema in one transaction: a crash mid-seed
                # leaves an empty database that is seeded again next time.
                tx = Tx(conn, self)
                try:
                    self._seed(tx)
                except BaseException:
                    _unlink_all(tx.files_written)
                    raise
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('seeded', ?), ('schema_version', ?)",
                    (str(time.time()), SCHEMA_VERSION),
                )
            conn.execute("COMMIT")
            self._remove_orphan_blob_files(conn)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            conn.close()
            raise
        self._conn = conn
        return conn

    def _remove_stale_uploads(self) -> None:
        now = time.time()
        for path in self.tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_UPLOAD_SECONDS:
                    path.unlink()

    def _remove_orphan_blob_files(self, conn: sqlite3.Connection) -> None:
        named = {
            _load(data).get("file")
            for (data,) in conn.execute("SELECT data FROM objects WHERE kind='blob'")
        }
        now = time.time()
        for path in self.blob_dir.iterdir():
            if path.name in named:
                continue
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_UPLOAD_SECONDS:
                    path.unlink()

    def close(self) -> None:
        with self._lock, self._cache_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            self._cached.clear()
            self._cached_version = None
            self._checked_generation = -1
            self._commits_seen = None

    # ---- transactions -----------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One ``BEGIN IMMEDIATE ... COMMIT``; rolls back on any exception. Storage
        failures surface as SDK errors (see storage_failure; never a raw SQLite message)."""
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise storage_failure(exc) from exc
            tx = Tx(conn, self)
            try:
                yield tx
                number = self._number(conn) if tx.touched or tx.touched_kinds else None
                conn.execute("COMMIT")
                if number is not None:
                    with self._own_lock:
                        if len(self._own) >= MAX_OWN_COMMITS:  # nobody read for long
                            self._own.clear()
                        self._own[number] = (tx.touched, tx.touched_kinds)
                self._generation += 1  # before the call that wrote answers: see snapshot
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                _unlink_all(tx.files_written)
                if isinstance(exc, sqlite3.Error):
                    raise storage_failure(exc) from exc
                raise
            _unlink_all(tx.files_to_delete)

    @staticmethod
    def _number(conn: sqlite3.Connection) -> int:
        """This transaction's commit number (the last one's plus one, across processes)."""
        row = conn.execute(
            "INSERT INTO meta (key, value) VALUES ('commits', '1') ON CONFLICT (key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value"
        ).fetchone()
        return int(row[0])

    def snapshot(self, tables: Iterable[tuple[str, str]], *, wait: bool = True) -> Snapshot:
        """The committed records of ``tables`` ((kind, owner) pairs), from memory.

        Decoded records are kept per table and are valid while the database's
        ``data_version`` (which moves with every commit, this process's or another's, so
        servers sharing the directory stay coherent) has not moved; a table not in memory is
        loaded in one read transaction with the others missing. The version is asked for
        after each commit of this process, and otherwise at most every OTHER_WRITERS_LAG
        seconds: a read sees every write acknowledged before it by this process, and a
        write of another process sharing the directory within that lag (asking SQLite on
        every read cost a tenth of a GetInstance's CPU). With ``wait=False`` (the
        caller is on the event loop) it never waits: it raises WouldBlock instead when
        another thread holds the cache or a table would have to be read from disk.

        The records are shared: read them, copy them before changing anything."""
        if self._reader is None:
            if not wait:
                raise WouldBlock()
            # Before taking the cache lock: opening takes the writer's lock, and a writer
            # inside a transaction may be waiting for the cache lock.
            try:
                self._open_reader()
            except sqlite3.Error as exc:
                raise storage_failure(exc) from exc
        if not self._cache_lock.acquire(blocking=wait):
            raise WouldBlock()
        try:
            reader = self._reader
            if reader is None:  # closed meanwhile
                raise InternalDriverError("the mock driver's storage is closed")
            generation, now = self._generation, time.monotonic()
            if (
                generation != self._checked_generation
                or now - self._checked_at >= OTHER_WRITERS_LAG
            ):
                version = reader.execute("PRAGMA data_version").fetchone()[0]
                if version != self._cached_version:
                    if not wait:
                        raise WouldBlock()  # catching up reads the disk
                    self._catch_up(reader)
                self._checked_generation, self._checked_at = generation, now
            wanted = list(tables)
            if any(t not in self._cached for t in wanted):
                if not wait:
                    raise WouldBlock()
                self._read_tables(reader, wanted)
            return Snapshot({t: self._cached[t] for t in wanted})
        except sqlite3.Error as exc:
            raise storage_failure(exc) from exc
        finally:
            self._cache_lock.release()

    def _open_reader(self) -> None:
        with self._lock:
            self._connection()  # creates and seeds the database on first use
        reader = sqlite3.connect(
            self.db_path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        reader.execute("PRAGMA busy_timeout=30000")
        with self._cache_lock:
            if self._reader is None:
                self._reader = reader
                return
        reader.close()  # another thread opened one first

    def _catch_up(self, reader: sqlite3.Connection) -> None:
        """The database moved: bring the cache to its current version, in one read
        transaction. When every commit since the cache's is this process's, only the
        records they changed are read again (into copies of their tables: snapshots
        handed out keep theirs); otherwise the cache is dropped."""
        reader.execute("BEGIN")
        try:
            version = reader.execute("PRAGMA data_version").fetchone()[0]
            latest = _commits(reader)
            seen = self._commits_seen
            with self._own_lock:
                numbers = range(seen + 1, latest + 1) if seen is not None else range(0)
                changes = [self._own[n] for n in numbers if n in self._own]
                # Only this process's numbered commits since: apply them. Anything else (a
                # number of another process, none at all though the database moved, the
                # count going back as with a restored file): read everything again.
                complete = seen is not None and latest > seen and len(changes) == len(numbers)
                for number in [n for n in self._own if n <= latest]:
                    del self._own[number]
            if complete:
                self._apply(reader, changes)
            else:
                self._cached.clear()
            self._cached_version, self._commits_seen = version, latest
        finally:
            reader.execute("COMMIT")

    def _apply(
        self,
        reader: sqlite3.Connection,
        changes: list[tuple[set[tuple[str, str, str, str]], set[str]]],
    ) -> None:
        kinds = set().union(*(bulk for _, bulk in changes))
        for table in [t for t in self._cached if t[0] in kinds]:
            del self._cached[table]
        updated: dict[tuple[str, str], dict[tuple[str, str], Record]] = {}
        # Each record once, however many of the commits touched it.
        for kind, owner, parent, item_id in set().union(*(touched for touched, _ in changes)):
            table = (kind, owner)
            if table not in self._cached:
                continue  # not in memory: read whole when asked for
            records = updated.get(table)
            if records is None:
                records = updated[table] = dict(self._cached[table])
            row = reader.execute(
                "SELECT data FROM objects WHERE kind=? AND owner=? AND parent=? AND id=?",
                (kind, owner, parent, item_id),
            ).fetchone()
            if row is None:
                records.pop((parent, item_id), None)
            else:
                records[(parent, item_id)] = _load(row[0])
        self._cached.update(updated)

    def _read_tables(self, reader: sqlite3.Connection, wanted: list[tuple[str, str]]) -> None:
        """Bring every table of ``wanted`` into memory from one read transaction. If the
        database moved since the cache's version, everything cached is dropped and every
        wanted table read, all at the version this transaction sees."""
        reader.execute("BEGIN")
        try:
            loaded = {t: _select(reader, t) for t in wanted if t not in self._cached}
            version = reader.execute("PRAGMA data_version").fetchone()[0]
            if version != self._cached_version or self._commits_seen is None:
                self._cached.clear()
                self._cached_version = version
                self._commits_seen = _commits(reader)
                loaded.update({t: _select(reader, t) for t in wanted if t not in loaded})
            self._cached.update(loaded)
        finally:
            reader.execute("COMMIT")

    # ---- blob files -------------------------------------------------------------------

    def write_blob_file(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Stream ``chunks`` into a new blob file: temp file, fsync, rename into place,
        fsync the directory. Returns (file name, size). Nothing is left behind on failure:
        an exception of ``chunks`` passes as it is, a failure of the disk becomes an SDK
        error (STORAGE_FULL when it is full). Called outside any transaction so a slow
        upload does not block other callers."""
        name = uuid.uuid4().hex
        tmp = self.tmp_dir / f"{name}.part"
        size = 0
        try:
            with _storage_errors():
                self.tmp_dir.mkdir(parents=True, exist_ok=True)
                self.blob_dir.mkdir(parents=True, exist_ok=True)
                out = open(tmp, "wb")  # noqa: SIM115 - the with below closes it
            with out:
                for chunk in chunks:
                    if not isinstance(chunk, bytes | bytearray | memoryview):
                        raise TypeError("blob chunks must be bytes")
                    with _storage_errors():
                        out.write(chunk)
                    size += len(chunk)
                with _storage_errors():
                    out.flush()
                    os.fsync(out.fileno())
            with _storage_errors():
                os.replace(tmp, self.blob_dir / name)
                _fsync_dir(self.blob_dir)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return name, size

    def blob_path(self, name: str) -> Path:
        return self.blob_dir / name


#: Errors of a full disk, a quota or a file-size limit: the client may retry later.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def storage_failure(exc: BaseException) -> DriverError:
    """The SDK error for a failure of the mock's storage: RESOURCE_EXHAUSTED STORAGE_FULL
    when the disk (or a quota) is full, INTERNAL otherwise; never SQLite's message."""
    full = (isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS) or (
        isinstance(exc, sqlite3.Error)
        and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )
    if full:
        return ResourceExhaustedError("the mock driver's storage is full", reason="STORAGE_FULL")
    return InternalDriverError("the mock driver's storage failed")


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise storage_failure(exc) from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_all(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


__all__ = ["Record", "Snapshot", "Store", "Tx"]
