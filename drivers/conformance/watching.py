"""A subscriber of WatchInstanceEvents for tests: reads the stream on a thread and lets a
test wait, with a deadline, for what it expects."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import grpc

from deltacloud.v1 import instance_pb2, instance_pb2_grpc

Response = instance_pb2.WatchInstanceEventsResponse


class Watcher:
    def __init__(
        self,
        channel: grpc.Channel,
        metadata: Sequence[tuple[str, str]],
        request: instance_pb2.WatchInstanceEventsRequest | None = None,
    ) -> None:
        stub = instance_pb2_grpc.InstanceServiceStub(channel)
        self.messages: list[Response] = []
        self.error: grpc.RpcError | None = None
        self._changed = threading.Condition()
        self._call = stub.WatchInstanceEvents(
            request or instance_pb2.WatchInstanceEventsRequest(), metadata=list(metadata)
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self._call:
                with self._changed:
                    self.messages.append(message)
                    self._changed.notify_all()
        except grpc.RpcError as error:
            with self._changed:
                self.error = error
                self._changed.notify_all()

    @property
    def events(self) -> list[instance_pb2.InstanceEvent]:
        with self._changed:
            return [e for m in self.messages if m.kind == Response.KIND_EVENTS for e in m.events]

    def wait_until(self, predicate: Callable[[Watcher], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out; received {len(self.messages)} messages, error={self.error}"
                    )
                self._changed.wait(remaining)

    def wait_for_events(
        self, count: int, timeout: float = 10.0
    ) -> list[instance_pb2.InstanceEvent]:
        self.wait_until(lambda w: len(w.events) >= count or w.error is not None, timeout)
        return self.events

    def wait_for_error(self, timeout: float = 10.0) -> grpc.RpcError:
        self.wait_until(lambda w: w.error is not None, timeout)
        assert self.error is not None
        return self.error

    def wait_for_kind(self, kind: int, timeout: float = 10.0) -> Response:
        self.wait_until(lambda w: any(m.kind == kind for m in w.messages), timeout)
        return next(m for m in self.messages if m.kind == kind)

    def cancel(self) -> None:
        self._call.cancel()
        self._thread.join(5)


def transitions(events: Sequence[instance_pb2.InstanceEvent]) -> list[tuple[str, str, str]]:
    """(instance, previous -> state, cause) in readable names, for exact comparisons."""
    from deltacloud.v1 import common_pb2

    def name(state: int) -> str:
        return common_pb2.InstanceState.Name(state).removeprefix("INSTANCE_STATE_")

    return [
        (
            e.instance_id,
            f"{name(e.previous_state)}->{name(e.state)}",
            instance_pb2.EventCause.Name(e.cause).removeprefix("EVENT_CAUSE_"),
        )
        for e in events
    ]
