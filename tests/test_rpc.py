"""The servicer wrapper (server/rpc.py) on its own: what leaves a handler, and what the
access log says of it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from deltacloud.server.metrics import Metrics
from deltacloud.server.rpc import CallGone, unary


class _Gateway:
    metrics = Metrics()


class _Context:
    """A call without a deadline."""

    def time_remaining(self) -> None:
        return None


class _Handlers:
    gateway = _Gateway()

    @unary
    async def Gone(self, request: Any, context: Any) -> None:
        raise CallGone("Failed execute_batch")  # what context.write raises then


def test_a_write_to_a_call_whose_client_has_gone_ends_it_as_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not an error of the server: gRPC logs any exception other than a cancellation that
    leaves a handler as one (with a traceback), so the wrapper turns it into one."""
    caplog.set_level(logging.DEBUG, logger="deltacloud.server.access")
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(_Handlers().Gone(object(), _Context()))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    calls = [r for r in caplog.records if r.name == "deltacloud.server.access"]
    assert [r.fields["code"] for r in calls] == ["CANCELLED"]  # type: ignore[attr-defined]
    stats = _Gateway.metrics.rpcs.of(_Handlers, "Gone")
    assert (stats.started, stats.handled) == (1, {"CANCELLED": 1})
