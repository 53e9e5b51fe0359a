"""When a call is retried and how long to wait: only reads, only on UNAVAILABLE, with
exponential backoff and jitter. Shared by both client flavours."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for safe calls; ``attempts`` counts the first try."""

    attempts: int = 6
    initial_delay: float = 0.2
    max_delay: float = 3.0
    multiplier: float = 2.0
    retry_codes: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})

    def delays(self) -> Iterator[float]:
        """The waits before the second, third, ... attempt (full jitter)."""
        delay = self.initial_delay
        for _ in range(self.attempts - 1):
            yield random.uniform(delay / 2, delay)
            delay = min(delay * self.multiplier, self.max_delay)

    def should_retry(self, code: grpc.StatusCode, safe: bool) -> bool:
        return safe and code in self.retry_codes


NO_RETRY = RetryPolicy(attempts=1)
