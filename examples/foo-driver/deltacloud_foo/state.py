"""The Foo "cloud": one JSON file holding every provider's instances and keys.

Thread safety: the server calls a driver from many worker threads, and keeps one driver
instance per (driver, provider), so two driver instances (two providers) may share one
file. Every read and every read-modify-write therefore holds a lock that belongs to the
file's path, not to the driver instance.

Durability: a write goes to a temporary file in the same directory, is flushed and fsynced,
then renamed over the state file with ``os.replace`` (atomic on POSIX), and the directory is
fsynced so the rename itself survives a crash. A reader sees the old file or the new one,
never half of one.

One process owns a state file: the lock is per process, not a file lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deltacloud.drivers import BackendTimeoutError, CallContext, InternalDriverError

log = logging.getLogger("deltacloud_foo")

#: Version of the file's layout, stored in it.
FORMAT = 1

State = dict[str, Any]

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def empty_state() -> State:
    return {"format": FORMAT, "providers": {}}


def provider_state(state: State, provider: str) -> dict[str, Any]:
    """The part of the state of one provider (region), created on first use."""
    providers: dict[str, Any] = state.setdefault("providers", {})
    return providers.setdefault(provider, {"next_instance": 1, "instances": {}, "keys": {}})


class StateFile:
    """``read(ctx)`` and ``update(ctx)`` on the JSON file at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self._lock = _lock_for(self.path)

    @contextlib.contextmanager
    def _locked(self, ctx: CallContext) -> Iterator[None]:
        # Wait for the lock no longer than the client waits for the answer.
        left = ctx.time_left()
        if not self._lock.acquire(timeout=-1 if left is None else left):
            raise BackendTimeoutError("the foo cloud is busy; try again")
        try:
            yield
        finally:
            self._lock.release()

    def _load(self) -> State:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return empty_state()
        try:
            state = json.loads(text)
        except ValueError:
            log.error("foo state file %s is not valid JSON", self.path)
            raise InternalDriverError("the foo cloud's state is unreadable") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            log.error("foo state file %s has an unknown format", self.path)
            raise InternalDriverError("the foo cloud's state is unreadable")
        return state

    def _save(self, state: State) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def read(self, ctx: CallContext) -> State:
        """A private copy of the whole state (changing it changes nothing)."""
        with self._locked(ctx):
            return self._load()

    @contextlib.contextmanager
    def update(self, ctx: CallContext) -> Iterator[State]:
        """Read, let the caller change the state, write it back atomically. Nothing is
        written when the block raises."""
        with self._locked(ctx):
            state = self._load()
            yield state
            self._save(state)
