"""The event hub: one ScopeHub per (driver, provider, credentials) scope orders that
scope's events, journals them, and wakes the subscribers; a monitor task per active scope
observes the backend.

Every change goes through ``ScopeHub._append`` under the scope's lock: the journal assigns
revisions in one transaction, then the events join an in-memory ring that live subscribers
read. Known instance states are kept per scope (and in the journal) so that each event's
previous_state is the state the previous event of that instance left it in.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from google.protobuf import timestamp_pb2

from deltacloud.drivers import BaseDriver, CallContext, InstanceState, StateMachine
from deltacloud.v1 import common_pb2, instance_pb2

from .. import convert, keyfiles
from ..gateway import Call, Gateway
from ..metrics import Metrics
from .journal import Journal

T = TypeVar("T")

log = logging.getLogger("deltacloud.server.events")

#: Seconds one observation of a watched backend (a driver's instance list) may take.
POLL_DEADLINE = 10.0
#: How long the time a gone instance went is kept (ScopeHub._known_at): longer than any
#: poll (POLL_DEADLINE) can run.
TOMBSTONE_SECONDS = 4 * POLL_DEADLINE

#: The next observation of a scope starts no sooner than this many times the last one took
#: after it ended: listing a large account (thousands of instances, seconds of parsing) is
#: then at most a fifth of the server's time and of the cloud's request rate, whatever the
#: poll intervals say.
POLL_PACE = 4.0

START = common_pb2.INSTANCE_STATE_START
FINISH = common_pb2.INSTANCE_STATE_FINISH
AUTOMATIC = instance_pb2.EVENT_CAUSE_AUTOMATIC
OBSERVED = instance_pb2.EVENT_CAUSE_OBSERVED

Response = instance_pb2.WatchInstanceEventsResponse
CAUSE_OF_ACTION = {
    "create": instance_pb2.EVENT_CAUSE_CREATE,
    "start": instance_pb2.EVENT_CAUSE_START,
    "stop": instance_pb2.EVENT_CAUSE_STOP,
    "reboot": instance_pb2.EVENT_CAUSE_REBOOT,
    "destroy": instance_pb2.EVENT_CAUSE_DESTROY,
}


@dataclass(frozen=True)
class EventSettings:
    """Tuning of the event system (server flags)."""

    poll_interval: float = 2.0  # while someone watches and nothing is transitional
    fast_poll_interval: float = 0.25  # while an instance is in a transitional state
    progress_interval: float = 5.0
    buffer: int = 1000  # events a live subscriber may lag behind before it is cut
    max_events: int = 100_000  # journal retention per scope
    max_age: float = 7 * 24 * 3600.0  # journal retention in seconds
    compact_every: float = 300.0


class Subscriber(Protocol):
    """What the hub needs of a live stream (see subscription.Subscription)."""

    live: bool
    cursor: int

    def cut(self, reason: str) -> None: ...


class ScopeKeys:
    """Keyed hashes of scopes: the journal can tell scopes apart but learns nothing about
    the credentials in them."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> ScopeKeys:
        return cls(keyfiles.load_or_create(data_dir / "scope.key", "scope key"))

    def of(self, driver: str, provider: str, user: str, password: str) -> str:
        material = "\0".join((driver, provider, user, password)).encode()
        return hmac.new(self._key, material, hashlib.sha256).hexdigest()


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _event(
    instance: instance_pb2.Instance,
    previous: common_pb2.InstanceState,
    cause: instance_pb2.EventCause,
) -> instance_pb2.InstanceEvent:
    return instance_pb2.InstanceEvent(
        event_id=uuid.uuid4().hex,
        instance_id=instance.id,
        previous_state=previous,
        state=instance.state,
        cause=cause,
        time=_now(),
        instance=instance,
    )


def _with_state(
    instance: instance_pb2.Instance, state: common_pb2.InstanceState, machine: StateMachine
) -> instance_pb2.Instance:
    """The instance as it was (or is) in ``state``, with that state's allowed actions."""
    copy = instance_pb2.Instance()
    copy.CopyFrom(instance)
    copy.state = state
    del copy.actions[:]
    model_state = convert.state_from_proto(state)
    if model_state is not None:
        copy.actions.extend(
            convert.action_to_proto(a) for a in machine.allowed_actions(model_state)
        )
    return copy


def _alive(known: instance_pb2.Instance | None) -> instance_pb2.Instance | None:
    """A known instance, unless it finished: an instance listed again under the id of one
    that finished is a new one (a cloud may reuse ids; the mock takes the first free), and
    its history starts at START, not at the old one's FINISH."""
    return None if known is not None and known.state == FINISH else known


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _cause_name(cause: int) -> str:
    """``EVENT_CAUSE_OBSERVED`` as ``observed``."""
    try:
        name = instance_pb2.EventCause.Name(cause)
    except ValueError:
        return str(cause)
    return name.removeprefix("EVENT_CAUSE_").lower()


class ScopeHub:
    """The events of one scope."""

    def __init__(
        self,
        hub: EventHub,
        key: str,
        driver_class: type[BaseDriver],
        head: int,
        baselined: bool,
        known: dict[str, instance_pb2.Instance],
        journal_id: str = "",
    ) -> None:
        self.hub = hub
        self.key = key
        #: Names the history the revisions count in (Journal.load), in every message.
        self.journal_id = journal_id
        self.driver_class = driver_class
        machine = driver_class.instance_states
        assert machine is not None
        self.machine: StateMachine = machine
        self.head = head
        self.baselined = baselined
        self.known = known
        self._known_at: dict[str, float] = {}
        #: Actions on one instance take turns (one_at_a_time): lock, and its users.
        self._turns: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self.ring: list[instance_pb2.InstanceEvent] = []
        self.lock = asyncio.Lock()
        # Subscribers waiting for the next event: one future each, resolved by wake().
        self._waiters: list[asyncio.Future[None]] = []
        #: The live WatchInstanceEvents streams of this scope.
        self.subscriptions: set[Subscriber] = set()
        # Serialized KIND_EVENTS messages by (cursor, last revision): subscribers at the
        # same position share one encoding instead of one each.
        self._encoded: dict[tuple[int, int], bytes] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._poll: tuple[BaseDriver, CallContext] | None = None
        #: The poll fresh_poll callers share: when it began, and its task.
        self._shared_poll: tuple[float, asyncio.Task[list[instance_pb2.Instance]]] | None = None
        # Actions under way: an observation must not report their effect before the action
        # itself is recorded (it would be attributed to no one, or to the wrong cause).
        self._acting: dict[str, int] = {}
        self._creating = 0
        self._resync = False  # an observation was skipped for an action: look again after
        #: A pushed list passed over instances (actions of ours were under way or came
        #: after the list was taken): the push will not say it again, so list them.
        self._look_again = False
        self._soon = False  # an action asked for the next poll at the fast interval
        #: Coroutines holding this hub (EventHub.use): it is not evicted while held.
        self.users = 0
        #: The one load of recent events into the ring (see fill_ring).
        self._filling: asyncio.Future[None] | None = None

    # ---- reading -----------------------------------------------------------------------

    def events_after(self, cursor: int, limit: int) -> list[instance_pb2.InstanceEvent] | None:
        """Ring events after ``cursor``; None when they have left the ring already."""
        if cursor >= self.head:
            return []
        if not self.ring or cursor < self.ring[0].revision - 1:
            return None
        start = cursor - self.ring[0].revision + 1
        batch = self.ring[start : start + limit]
        if not batch or batch[0].revision != cursor + 1:
            # Not one run of revisions (never, while every append is published): the journal
            # says what follows, rather than a wrong batch or none (a subscriber spinning).
            return None
        return batch

    async def fill_ring(self) -> None:
        """After a restart (or an idle scope's eviction) the ring holds only what happened
        since, and every resuming subscriber would read the journal on its own: a reconnect
        storm of N watchers made N reads on the journal's one thread, which actions wait on
        too. The first one that needs history loads the events before the ring, up to
        ``--watch-buffer`` in all, once per hub, and the others share them."""
        if self.head == 0:
            return
        if self._filling is None:
            self._filling = asyncio.ensure_future(self._fill())
        elif self._filling.done():
            return  # loaded (or failed: the journal is read as before)
        await asyncio.shield(self._filling)

    async def _fill(self) -> None:
        upto = (self.ring[0].revision if self.ring else self.head + 1) - 1
        size = self.hub.settings.buffer - len(self.ring)
        if size <= 0 or upto <= 0:
            return
        older = await self.hub.in_reader(
            self.hub.journal.read, self.key, max(0, upto - size), upto, size
        )
        # Only one run of revisions that ends where the ring starts now (events may
        # have been appended, or the ring trimmed, while it read).
        follows = self.ring[0].revision if self.ring else self.head + 1
        if (
            older
            and older[-1].revision - older[0].revision + 1 == len(older)
            and older[-1].revision + 1 == follows
        ):
            self.ring = older + self.ring

    @property
    def subscribers(self) -> int:
        return len(self.subscriptions)

    def encoded(self, cursor: int, batch: list[instance_pb2.InstanceEvent]) -> bytes:
        """The serialized KIND_EVENTS message of ``batch`` (the events after ``cursor``)."""
        key = (cursor, batch[-1].revision)
        data = self._encoded.get(key)
        if data is None:
            if len(self._encoded) >= 256:
                self._encoded.clear()
            message = self.message(Response.KIND_EVENTS, batch[-1].revision, batch)
            data = self._encoded[key] = message.SerializeToString()
        return data

    def message(
        self,
        kind: instance_pb2.WatchInstanceEventsResponse.Kind,
        revision: int,
        events: list[instance_pb2.InstanceEvent] | None = None,
    ) -> instance_pb2.WatchInstanceEventsResponse:
        """A message of this scope's watch streams (every one names the journal)."""
        return Response(kind=kind, events=events, revision=revision, journal_id=self.journal_id)

    async def wait_after(self, cursor: int, timeout: float) -> None:
        """Return when an event after ``cursor`` exists, the hub closes, or on timeout."""
        if cursor < self.head or self.hub.closing:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if len(self._waiters) > 2 * len(self.subscriptions) + 16:
            # Waiters that timed out (progress) or were cancelled stay until the next event;
            # in a quiet scope, drop them now and then so the list stays bounded.
            self._waiters = [w for w in self._waiters if not w.done()]
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, _settle, waiter, None)
        try:
            await waiter
        finally:
            timer.cancel()

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ---- writing -----------------------------------------------------------------------

    async def _append(
        self,
        events: list[instance_pb2.InstanceEvent],
        known: Mapping[str, instance_pb2.Instance | None],
        baselined: bool,
    ) -> list[instance_pb2.InstanceEvent]:
        """Journal, then publish. Caller holds self.lock.

        Once the write is handed to the journal's thread it commits whatever becomes of the
        caller, so what it changes here is done whatever becomes of the caller too: a caller
        cancelled meanwhile (its client gave up) waits for the write, publishes it, and only
        then is cancelled, still holding the lock. Otherwise the journal would hold events
        the ring and ``known`` lack: a hole in every live stream, and a transition observed
        (and journaled) twice."""
        if not events and not known and baselined == self.baselined:
            return []
        write = asyncio.ensure_future(
            self.hub.in_writer(
                self.hub.journal.append, self.key, events, dict(known), baselined or self.baselined
            )
        )
        cancelled = False
        while True:
            try:
                stored = await asyncio.shield(write)
                break
            except asyncio.CancelledError:
                if write.done():  # the write itself was cancelled: nothing to publish
                    raise
                cancelled = True
        published = self._publish(stored, known, baselined)
        if cancelled:
            raise asyncio.CancelledError()
        return published

    def _publish(
        self,
        stored: list[instance_pb2.InstanceEvent],
        known: Mapping[str, instance_pb2.Instance | None],
        baselined: bool,
    ) -> list[instance_pb2.InstanceEvent]:
        """Take in what the journal now holds: the states known, the ring, the head."""
        self.baselined = self.baselined or baselined
        now = time.monotonic()
        for instance_id, instance in known.items():
            # A gone instance keeps its time too: a poll that began before it went (and
            # answers after another poll saw it go) must not take it for a new one.
            self._known_at[instance_id] = now
            if instance is None:
                self.known.pop(instance_id, None)
            else:
                self.known[instance_id] = instance
        if len(self._known_at) > 2 * len(self.known) + 64:
            # Times of gone instances no poll in flight can have begun before.
            horizon = now - TOMBSTONE_SECONDS
            self._known_at = {
                i: t for i, t in self._known_at.items() if i in self.known or t > horizon
            }
        if stored:
            journaled = self.hub.journaled
            for event in stored:
                journaled[event.cause] = journaled.get(event.cause, 0) + 1
            self.ring.extend(stored)
            self.head = stored[-1].revision
            if len(self.ring) > 2 * self.hub.settings.buffer:
                # This write's events stay, however many: a subscriber that had read
                # everything before it is not behind, even when one write (a create of many
                # instances, a poll finding many) brings more than the buffer holds.
                keep = max(self.hub.settings.buffer, len(stored))
                del self.ring[: len(self.ring) - keep]
                self._cut_laggards()
            self.wake()
        return stored

    def _cut_laggards(self) -> None:
        """Live subscribers whose next event has left the ring are stuck in a write the
        client does not take: cut them, resumably; the others never wait for them."""
        floor = self.ring[0].revision - 1
        for subscriber in list(self.subscriptions):
            if subscriber.live and subscriber.cursor < floor:
                subscriber.cut("slow")
                self.hub.cuts.inc("slow")

    def _cause_between(
        self, previous: common_pb2.InstanceState, state: common_pb2.InstanceState
    ) -> instance_pb2.EventCause:
        before = convert.state_from_proto(previous)
        after = convert.state_from_proto(state)
        if before is not None and after in self.machine.automatic_targets(before):
            return AUTOMATIC
        return OBSERVED

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, instance_id: str) -> AsyncIterator[None]:
        """Actions of this server on one instance, one after the other: each reads the
        state it starts from, acts and records what it did before the next reads. Without
        it, two stops of a running instance (a client's retry) both read RUNNING, EC2
        accepted both, and the second was journaled as a step back to RUNNING, then a stop."""
        turn = self._turns.get(instance_id)
        if turn is None:
            turn = self._turns[instance_id] = (asyncio.Lock(), [0])
        lock, users = turn
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._turns[instance_id]

    @contextlib.contextmanager
    def acting(self, instance_id: str | None) -> Iterator[None]:
        """Mark an action on ``instance_id`` (None: a create) as under way."""
        if instance_id is None:
            self._creating += 1
        else:
            self._acting[instance_id] = self._acting.get(instance_id, 0) + 1
        try:
            yield
        finally:
            if instance_id is None:
                self._creating -= 1
            elif self._acting[instance_id] == 1:
                del self._acting[instance_id]
            else:
                self._acting[instance_id] -= 1

    async def record_actions(
        self, actions: list[tuple[common_pb2.InstanceState, instance_pb2.Instance, str]]
    ) -> None:
        """Actions this server performed moved instances from a state ``before`` to the
        instance ``after``: journal them in one transaction."""
        async with self.lock:
            events = []
            changes: dict[str, instance_pb2.Instance | None] = {}
            for before, after, action in actions:
                known = _alive(changes.get(after.id) or self.known.get(after.id))
                if before == START and known is not None:
                    # A create answered with an instance the scope knows already: a retry
                    # the cloud (EC2's ClientToken, the mock's) answered with what its
                    # first attempt made. Nothing happened to the instance now.
                    continue
                if known is not None and known.state != before:
                    # The backend moved it on its own since we last looked: say so first, so
                    # every event starts where the previous one of this instance ended.
                    cause = self._cause_between(known.state, before)
                    events.append(
                        _event(_with_state(after, before, self.machine), known.state, cause)
                    )
                elif known is None and before != START and self.baselined:
                    # An instance no poll has shown us yet (another server, or the cloud's
                    # console, made it since): it comes from START, as every new one does.
                    events.append(_event(_with_state(after, before, self.machine), START, OBSERVED))
                events.append(_event(after, before, CAUSE_OF_ACTION[action]))
                changes[after.id] = after
            await self._append(events, changes, self.baselined)

    async def observe(self, instances: Iterable[instance_pb2.Instance], started: float) -> None:
        """Compare what the backend showed (a poll that began at ``started``) with what we
        know, and record the differences. Instances our own actions touched after the poll
        began are left alone: the poll saw them before the action."""
        async with self.lock:
            events: list[instance_pb2.InstanceEvent] = []
            changes: dict[str, instance_pb2.Instance | None] = {}
            seen: set[str] = set()
            # An observation that passed over instances it did not know is no baseline:
            # the next one would report them as new, though they were there all along.
            complete = True
            for instance in instances:
                seen.add(instance.id)
                if self._known_at.get(instance.id, float("-inf")) > started:
                    self._look_again = True
                    continue
                if instance.id in self._acting:
                    self._resync = self._look_again = True
                    if instance.id not in self.known:
                        # Not a baseline without it: an action recording it next would take
                        # it for an instance made since, and report it from START.
                        complete = False
                    continue
                known = self.known.get(instance.id)
                if instance.state != FINISH:
                    known = _alive(known)
                if known is None and self._creating:
                    self._resync = self._look_again = True
                    complete = False
                    continue  # perhaps the instance a create under way is making
                if known is None:
                    if self.baselined and instance.state != FINISH:
                        events.append(_event(instance, START, OBSERVED))
                    changes[instance.id] = instance
                elif known.state != instance.state:
                    cause = self._cause_between(known.state, instance.state)
                    events.append(_event(instance, known.state, cause))
                    changes[instance.id] = instance
                else:
                    self.known[instance.id] = instance  # fresher details, same state
            for instance_id, known in list(self.known.items()):
                if instance_id in seen:
                    continue
                if self._known_at.get(instance_id, float("-inf")) > started:
                    self._look_again = True
                    continue
                if instance_id in self._acting:
                    self._resync = self._look_again = True
                    continue
                if known.state != FINISH:
                    gone = _with_state(known, FINISH, self.machine)
                    events.append(_event(gone, known.state, OBSERVED))
                changes[instance_id] = None
            await self._append(events, changes, complete)

    # ---- the monitor -------------------------------------------------------------------

    def transitional(self) -> bool:
        for instance in self.known.values():
            state = convert.state_from_proto(instance.state)
            if state is not None and self.machine.is_transitional(state):
                return True
        return False

    def keep_watching(self, call: Call) -> None:
        """Make sure the backend is being observed, with this call's credentials (held in
        memory only while the monitor runs), and poll again soon: at the fast interval from
        the last poll, not at once (a burst of actions must not cost a listing each)."""
        ctx = CallContext(call.ctx.credentials, call.ctx.provider, None)
        self._poll = (call.driver, ctx)
        self._soon = True
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.get_running_loop().create_task(self._run_monitor())
        else:
            self._kick.set()

    @property
    def creating(self) -> bool:
        """A create of this server is under way in the scope."""
        return self._creating > 0

    async def poll_once(self) -> list[instance_pb2.Instance]:
        """List the backend's instances and record what changed; returns what it listed."""
        if self._poll is None:
            return []
        driver, ctx = self._poll
        started = time.monotonic()
        self._look_again = False  # this is the look
        # A deadline of its own: against a backend that stopped answering, the poll gives up
        # (and the monitor backs off) instead of waiting for the driver's longest timeout.
        ctx = CallContext(ctx.credentials, ctx.provider, started + POLL_DEADLINE)
        models = await self.hub.gateway.run_blocking(driver.list_instances, ctx, {}, pool="polls")
        listed = [convert.instance(i, self.machine) for i in models]
        await self.observe(listed, started)
        if log.isEnabledFor(logging.DEBUG):
            took = round((time.monotonic() - started) * 1000, 1)
            fields = {"scope": self.key[:12], "instances": len(models), "ms": took}
            log.debug("observed", extra={"fields": fields})
        return listed

    async def fresh_poll(self) -> list[instance_pb2.Instance]:
        """poll_once, shared by the callers it is fresh enough for: one that began after
        they asked. 200 snapshot watches opened at once made 224 listings of the cloud (on
        ec2, DescribeInstances with the user's keys) and slowed every other call; they now
        share one or two. A poll under way that began before the caller asked may have
        missed what the caller must see: it waits for that one, then shares the next."""
        asked = time.monotonic()
        while True:
            shared = self._shared_poll
            if shared is None or shared[1].done():
                task = asyncio.get_running_loop().create_task(self.poll_once())
                task.add_done_callback(self._shared_poll_done)
                self._shared_poll = shared = (time.monotonic(), task)
            began, task = shared
            if began >= asked:
                # Shielded: a caller that leaves does not cancel the others' poll.
                return await asyncio.shield(task)
            await asyncio.wait({task})

    def _shared_poll_done(self, task: asyncio.Task[list[instance_pb2.Instance]]) -> None:
        # Its callers may all have left: its outcome is retrieved all the same, and the hub
        # it kept in memory (it records through it) may leave now.
        if not task.cancelled():
            task.exception()
        self.hub.evict_if_idle(self)

    def idle(self) -> bool:
        """Nothing refers to this hub: it may leave memory (its state is in the journal)."""
        monitor = self._monitor
        shared = self._shared_poll
        return (
            self.users == 0
            and (shared is None or shared[1].done())
            and not self.subscriptions
            and (monitor is None or monitor.done() or monitor is asyncio.current_task())
            and not self._acting
            and not self._creating
            and not self.lock.locked()
        )

    @property
    def monitoring(self) -> bool:
        return self._monitor is not None and not self._monitor.done()

    def _should_stop(self) -> bool:
        return not self.subscribers and not self.transitional() and self.baselined

    async def _run_push(self, driver: BaseDriver, ctx: CallContext) -> None:
        """Observe a pushing driver: its blocking iterator runs on a thread of its own and
        hands each complete instance list to the event loop."""
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        async def observed(
            instances: list[instance_pb2.Instance], started: float
        ) -> Exception | None:
            # Reported to the pump's thread, which raises it: a task of the loop ending in
            # an exception is reported by asyncio as unhandled if the server stops meanwhile.
            try:
                await self.observe(instances, started)
            except Exception as exc:
                return exc
            return None

        def pump() -> None:
            lists = iter(driver.watch_instances(ctx, stop))
            while True:
                # The list the driver hands over next was taken after this moment, perhaps
                # well after (it may wait for the cloud's news, then ask the cloud), but
                # perhaps well before it is handed over: taken as of now, an old list would
                # undo what our actions did meanwhile.
                asked = time.monotonic()
                models = next(lists, None)
                if models is None:
                    return
                instances = [convert.instance(i, self.machine) for i in models]
                failed = asyncio.run_coroutine_threadsafe(observed(instances, asked), loop).result()
                if failed is not None:
                    raise failed
                if stop.is_set():
                    return

        thread: asyncio.Future[None] = loop.create_future()

        def run() -> None:
            try:
                pump()
            except BaseException as exc:  # handed to the event loop, not lost
                loop.call_soon_threadsafe(_settle, thread, exc)
            else:
                loop.call_soon_threadsafe(_settle, thread, None)

        # A thread of its own: a long-lived push must not hold a worker of the pool.
        threading.Thread(target=run, name=f"push-{self.key[:8]}", daemon=True).start()
        try:
            while not self.hub.closing and not thread.done():
                if self._should_stop():
                    break
                if self._look_again and not self._acting and not self._creating:
                    await self.poll_once()
                self._kick.clear()
                kicked: asyncio.Future[Any] = asyncio.ensure_future(self._kick.wait())
                try:  # an action that ends kicks: a list passed over it is looked at again
                    await asyncio.wait([thread, kicked], timeout=0.5)
                finally:
                    kicked.cancel()
        finally:
            stop.set()
        if thread.done():
            thread.result()  # surface the driver's error to the monitor

    async def _run_monitor(self) -> None:
        settings = self.hub.settings
        if self.driver_class.pushes_instance_changes and self._poll is not None:
            driver, ctx = self._poll
            try:
                await self._run_push(driver, ctx)
            except Exception as exc:
                log.warning(
                    "push observation failed; polling instead",
                    extra={"fields": {"error": type(exc).__name__}},
                )
            else:
                self._poll = None
                return
        failures = 0
        clock = asyncio.get_running_loop().time
        try:
            while not self.hub.closing:
                if self._should_stop() and not self._soon:  # a poll asked for is made first
                    return
                started = clock()
                self._soon = False
                driver_name = self.driver_class.name
                try:
                    await self.poll_once()
                    failures = 0
                    self.hub.polls.inc(driver_name, "ok")
                except Exception as exc:
                    failures += 1
                    self.hub.polls.inc(driver_name, "failed")
                    log.warning(
                        "observing instances failed",
                        extra={"fields": {"error": type(exc).__name__, "failures": failures}},
                    )
                ended = clock()
                self.hub.poll_seconds.observe(ended - started, driver_name)
                soonest = (ended - started) * POLL_PACE
                while not self.hub.closing:
                    # Again after each kick: an action may have made an instance transitional.
                    fast = self._soon or self.transitional()
                    interval = settings.fast_poll_interval if fast else settings.poll_interval
                    interval *= min(2**failures, 16) if failures else 1
                    left = ended + max(interval, soonest) - clock()
                    if left <= 0:
                        break
                    self._kick.clear()
                    try:
                        await asyncio.wait_for(self._kick.wait(), left)
                    except TimeoutError:
                        break
        finally:
            self._poll = None  # drop the credentials with the monitor
            self.hub.evict_if_idle(self)

    async def stop(self) -> None:
        self.wake()
        if self._monitor is not None and not self._monitor.done():
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._monitor


class EventHub:
    """All scopes of the server."""

    def __init__(self, gateway: Gateway, data_dir: Path, settings: EventSettings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.journal = Journal(
            data_dir / "events.sqlite3", max_events=settings.max_events, max_age=settings.max_age
        )
        self.keys = ScopeKeys.from_data_dir(data_dir)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._readers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-read")
        self._scopes: dict[str, ScopeHub] = {}
        self._creating: dict[str, asyncio.Future[ScopeHub]] = {}
        self.closing = False
        self._compactor: asyncio.Task[None] | None = None
        self._register_metrics(gateway.metrics)

    def _register_metrics(self, metrics: Metrics) -> None:
        #: Events journaled since the start, by cause (EventCause number).
        self.journaled: dict[int, int] = {}
        self.cuts = metrics.counter(
            "deltacloud_watch_cuts_total",
            "Watch streams the server ended, resumably: reason slow (the subscriber fell "
            "--watch-buffer events behind) or shutdown.",
            ["reason"],
        )
        self.polls = metrics.counter(
            "deltacloud_monitor_polls_total",
            "Observations of a watched or transitioning scope's instances (one list call to "
            "the cloud each), by driver and outcome (ok, failed).",
            ["driver", "outcome"],
        )
        self.poll_seconds = metrics.histogram(
            "deltacloud_monitor_poll_seconds",
            "Seconds an observation took, the cloud's list call included.",
            ["driver"],
        )
        metrics.add(
            "deltacloud_events_journaled_total",
            "counter",
            "Instance events journaled, by cause (create, start, stop, reboot, destroy, automatic, "
            "observed).",
            lambda: [
                ({"cause": _cause_name(cause)}, float(count))
                for cause, count in self.journaled.items()
            ],
        )
        metrics.gauge(
            "deltacloud_watch_streams",
            "Open WatchInstanceEvents streams.",
            lambda: sum(scope.subscribers for scope in self._scopes.values()),
        )
        metrics.gauge(
            "deltacloud_watch_scopes",
            "Scopes (driver, provider, credentials) held in memory: watched, acting or "
            "with an instance in a transitional state.",
            lambda: len(self._scopes),
        )
        metrics.gauge(
            "deltacloud_watch_monitors",
            "Scopes whose cloud is being observed (polled, or pushing) now.",
            lambda: sum(scope.monitoring for scope in self._scopes.values()),
        )

    async def in_writer(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def in_reader(self, fn: Callable[..., T], *args: Any) -> T:
        """Journal reads (history for resuming subscribers), on threads of their own: a
        storm of them never delays the writes that actions wait for."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)

    def key_of(self, call: Call) -> str:
        creds = call.ctx.credentials
        return self.keys.of(call.driver.name, call.ctx.provider, creds.user, creds.password)

    async def scope(self, call: Call) -> ScopeHub:
        key = self.key_of(call)
        found = self._scopes.get(key)
        if found is not None:
            return found
        pending = self._creating.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ScopeHub] = asyncio.get_running_loop().create_future()
        self._creating[key] = future
        try:
            state = await self.in_writer(self.journal.load, key)
            hub = ScopeHub(
                self,
                key,
                call.driver_class,
                state.head,
                state.baselined,
                state.known,
                state.journal_id,
            )
            self._scopes[key] = hub
            future.set_result(hub)
            return hub
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            del self._creating[key]

    @contextlib.asynccontextmanager
    async def use(self, call: Call) -> AsyncIterator[ScopeHub]:
        """The call's scope hub, held in memory for the duration (idle hubs are evicted:
        a server that saw many credentials keeps only the active scopes in memory)."""
        scope = await self.scope(call)
        scope.users += 1  # no await between: eviction cannot slip in
        try:
            yield scope
        finally:
            scope.users -= 1
            self.evict_if_idle(scope)

    def evict_if_idle(self, scope: ScopeHub) -> None:
        if scope.idle() and self._scopes.get(scope.key) is scope:
            del self._scopes[scope.key]

    @contextlib.asynccontextmanager
    async def acting(self, call: Call, instance_id: str | None) -> AsyncIterator[None]:
        """Wrap a driver action (``instance_id`` None for a create) so that the monitor
        does not report its effect before ``record_actions`` does; actions on one instance
        take turns (ScopeHub.one_at_a_time), so read the state the action starts from
        inside."""
        # The journal keeps a row per scope it loads: only for credentials the driver took.
        await call.authenticate()
        async with contextlib.AsyncExitStack() as stack:
            try:
                scope = await stack.enter_async_context(self.use(call))
            except Exception:  # the action must not fail for the event system's sake
                log.exception("opening the event scope failed")
                yield
                return
            if instance_id is not None:
                await stack.enter_async_context(scope.one_at_a_time(instance_id))
            with scope.acting(instance_id):
                yield
            if scope._resync and not scope._acting and not scope._creating:
                # Observe again, at the fast interval from the last poll: at once, a burst
                # of actions would cost a listing each.
                scope._resync = False
                scope.keep_watching(call)

    async def record_actions(
        self, call: Call, actions: list[tuple[InstanceState, Any, str]]
    ) -> None:
        """Journal the transitions actions caused (before state, instance model after,
        action), and keep observing the scope while an instance is transitional. A journal
        failure is logged, not raised: the actions themselves succeeded, and the monitor
        will observe the states anyway."""
        try:
            async with self.use(call) as scope:
                machine = scope.machine
                await scope.record_actions(
                    [
                        (convert.state_to_proto(before), convert.instance(after, machine), action)
                        for before, after, action in actions
                    ]
                )
                if scope.subscribers or scope.transitional():
                    scope.keep_watching(call)
        except Exception:
            log.exception("recording instance events failed")

    def start(self) -> None:
        self._compactor = asyncio.get_running_loop().create_task(self._compact_forever())

    async def _compact_forever(self) -> None:
        while True:
            try:
                await self.in_writer(self.journal.compact)
            except Exception:
                log.exception("journal compaction failed")
            await asyncio.sleep(self.settings.compact_every)

    async def end_streams(self, wait: float = 1.0) -> None:
        """End every watch stream (they answer UNAVAILABLE with their last revision); new
        ones end at once. Actions still record their events until ``close``."""
        self.closing = True
        scopes = list(self._scopes.values())  # streams ending evict their scopes meanwhile
        for scope in scopes:
            scope.wake()
            for subscriber in list(scope.subscriptions):
                subscriber.cut("shutdown")
                self.cuts.inc("shutdown")
        deadline = time.monotonic() + wait
        while any(s.subscribers for s in scopes) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Stop the monitors and close the journal (after the last call has answered)."""
        for scope in list(self._scopes.values()):
            await scope.stop()
        if self._compactor is not None:
            self._compactor.cancel()
        self._readers.shutdown(wait=True)
        await self.in_writer(self.journal.close)
        self._writer.shutdown(wait=True)
