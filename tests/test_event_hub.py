"""The event hub's bookkeeping, driven directly (no server): what a scope's observations of
the backend journal."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from deltacloud.drivers import InstanceState
from deltacloud.drivers import models as m
from deltacloud.drivers.mock import MockDriver
from deltacloud.server import convert
from deltacloud.server.config import ServerConfig
from deltacloud.server.events.hub import EventHub, EventSettings, ScopeHub
from deltacloud.server.gateway import Gateway

MACHINE = MockDriver.instance_states


def test_instances_passed_over_during_a_create_are_not_reported_later_as_new(
    tmp_path: Path,
) -> None:
    """The first observation of a scope is its baseline: what it finds is known, not new.
    One made while a create is under way passes over the instances it does not know (one
    of them may be the create's); it must not count as the baseline, or the next
    observation reports every instance that was already there as appearing (START ->
    RUNNING, OBSERVED: four extra events of the mock's fixtures, now and then, in
    tests/test_watch.py)."""
    present = [
        convert.instance(m.Instance(id=f"inst{i}", state=InstanceState.RUNNING), MACHINE)
        for i in range(4)
    ]

    async def scenario() -> tuple[int, bool]:
        hub = EventHub(Gateway(ServerConfig(data_dir=tmp_path)), tmp_path, EventSettings())
        scope = ScopeHub(hub, "scope", MockDriver, head=0, baselined=False, known={})
        with scope.acting(None):  # a create under way
            await scope.observe(present, time.monotonic())
        await scope.observe(present, time.monotonic())
        return scope.head, scope.baselined

    head, baselined = asyncio.run(scenario())
    assert (head, baselined) == (0, True), "instances already there were journaled as new"


def test_a_poll_that_began_before_an_instance_went_does_not_bring_it_back(
    tmp_path: Path,
) -> None:
    """Two polls of one scope overlap (the monitor's and a snapshot's): the later one sees
    X gone and journals its end; the earlier one, answering after it, saw X still there.
    It must not report X as new (START -> RUNNING, OBSERVED), nor the next poll its end
    again: two events that never happened."""
    x = convert.instance(m.Instance(id="X", state=InstanceState.RUNNING), MACHINE)

    async def scenario() -> list[tuple[str, int, int]]:
        hub = EventHub(Gateway(ServerConfig(data_dir=tmp_path)), tmp_path, EventSettings())
        scope = ScopeHub(hub, "scope", MockDriver, head=0, baselined=True, known={"X": x})
        first_began = time.monotonic()
        await asyncio.sleep(0.01)
        await scope.observe([], time.monotonic())  # the later poll: X is gone
        await scope.observe([x], first_began)  # the earlier poll answers last
        await scope.observe([], time.monotonic())
        return [(e.instance_id, e.previous_state, e.state) for e in scope.ring]

    journaled = asyncio.run(scenario())
    assert journaled == [
        (
            "X",
            x.state,
            convert.instance(m.Instance(id="X", state=InstanceState.FINISH), MACHINE).state,
        )
    ]


def test_a_stream_cut_during_its_snapshot_names_no_revision_to_resume_after(
    tmp_path: Path,
) -> None:
    """Snapshot events stand at the snapshot's revision, but a snapshot cut short lists only
    some instances: a client resuming after that revision would miss the others for good.
    A cut (here the server's shutdown) while the snapshot is being written must name no
    last_revision, and say to watch again as at first. (Through a real server this needs a
    snapshot of many megabytes, which gRPC otherwise buffers whole.)"""
    from deltacloud.server.errors import ApiError
    from deltacloud.server.events.subscription import Subscription
    from deltacloud.v1 import instance_pb2

    instances = {
        f"inst{i}": convert.instance(
            m.Instance(id=f"inst{i}", name="x" * 200, state=InstanceState.RUNNING), MACHINE
        )
        for i in range(400)
    }

    class Context:
        """A client that takes the first message, then reads no more."""

        def __init__(self) -> None:
            self.written = 0
            self.blocked = asyncio.Event()

        async def write(self, message: object) -> None:
            if self.written:
                self.blocked.set()
                await asyncio.Event().wait()
            self.written += 1

    async def scenario() -> ApiError:
        config = ServerConfig(data_dir=tmp_path, max_message_bytes=64 * 1024)
        hub = EventHub(Gateway(config), tmp_path, EventSettings())
        scope = ScopeHub(hub, "scope", MockDriver, head=7, baselined=True, known=dict(instances))

        async def listed() -> list[instance_pb2.Instance]:
            return list(instances.values())

        scope.poll_once = listed  # type: ignore[method-assign]
        scope.keep_watching = lambda call: None  # type: ignore[method-assign]
        context = Context()
        request = instance_pb2.WatchInstanceEventsRequest(initial_snapshot=True)
        subscription = Subscription(hub, scope, None, request, context)  # type: ignore[arg-type]
        task = asyncio.create_task(subscription.run())
        await asyncio.wait_for(context.blocked.wait(), 10)
        subscription.cut("shutdown")
        try:
            await asyncio.wait_for(task, 10)
        except ApiError as error:
            return error
        raise AssertionError("the cut stream ended without an error")

    error = asyncio.run(scenario())
    assert error.reason == "SERVER_SHUTTING_DOWN"
    assert "last_revision" not in error.metadata
    assert "watch again as at first" in error.message
