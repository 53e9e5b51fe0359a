"""The memory that upload parts in flight may hold, shared by every upload of the process
(every region's driver included)."""

from __future__ import annotations

import threading

from deltacloud.drivers import BackendUnavailableError


class ByteBudget:
    """Bytes that parts in flight may hold, shared by every upload: past it an upload waits
    for room (until its deadline) instead of growing the server's memory."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._room = threading.Condition()

    def acquire(self, size: int, timeout: float | None) -> int:
        """Take ``size`` bytes (at most the whole budget); returns what to release."""
        size = min(size, self.total)
        with self._room:
            if not self._room.wait_for(lambda: self._free >= size, timeout):
                raise BackendUnavailableError(
                    "too many uploads are in flight on this server; retry shortly",
                    reason="UPLOADS_BUSY",
                    metadata={"multipart_memory": self.total},
                )
            self._free -= size
        return size

    def release(self, size: int) -> None:
        with self._room:
            self._free += size
            self._room.notify_all()


_BUDGETS: dict[int, ByteBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def shared_budget(total: int) -> ByteBudget:
    """The process's budget of that size: every region's driver shares it."""
    with _BUDGETS_LOCK:
        return _BUDGETS.setdefault(total, ByteBudget(total))
