"""Turns: at most ``limit`` pieces of work of one key (a scope: driver, provider and
credentials; one user of one cloud) at once, the others waiting in order. One user whose
cloud stalls, or who floods the server, then holds at most that many workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class _Slot:
    __slots__ = ("running", "semaphore", "users")

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        #: Work running or waiting; running.
        self.users = self.running = 0


class Turns:
    """Turns per key; a key's slot lives while work of it runs or waits (the map does not
    grow with the scopes ever seen)."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: str, limit: int) -> AsyncIterator[None]:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(limit)
        slot.users += 1
        try:
            async with slot.semaphore:
                slot.running += 1
                try:
                    yield
                finally:
                    slot.running -= 1
        finally:
            slot.users -= 1
            if not slot.users:
                del self._slots[key]

    def waiting(self) -> dict[str, int]:
        """Work waiting for its turn now, by kind: the part of a key before its first "/"
        (Call.turn's keys are "call/SCOPE", "upload/SCOPE", "download/SCOPE")."""
        counts: dict[str, int] = {}
        for key, slot in self._slots.items():
            if slot.users > slot.running:
                kind = key.partition("/")[0]
                counts[kind] = counts.get(kind, 0) + slot.users - slot.running
        return counts
