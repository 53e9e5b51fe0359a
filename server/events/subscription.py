"""One WatchInstanceEvents stream: validate the request, optionally send the snapshot,
catch up from the journal, then follow the scope's live events, with progress messages
while nothing happens. Slow subscribers are cut once they fall out of the scope's buffer;
the others never wait for them."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc

from deltacloud.v1 import common_pb2, instance_pb2

from ..config import MAX_PROGRESS, MIN_PROGRESS
from ..convert import enum_name
from ..errors import ApiError, invalid_argument
from ..gateway import Call
from .hub import EventHub, ScopeHub

#: Most events in one message.
BATCH = 256
#: How long a snapshot waits for creates under way in a scope not yet baselined.
SNAPSHOT_WAIT = 10.0

Response = instance_pb2.WatchInstanceEventsResponse
SNAPSHOT = instance_pb2.EVENT_CAUSE_SNAPSHOT
FINISH_STATE = common_pb2.INSTANCE_STATE_FINISH


def _revision_of(
    sending: list[instance_pb2.InstanceEvent],
    matching: list[instance_pb2.InstanceEvent],
    last: int,
) -> int:
    """The revision a filtered message stands at: the batch's last (``last``) when it
    carries all its matching events, else that of the last event it carries."""
    return last if len(sending) == len(matching) else sending[-1].revision


def _resume_with(cursor: int | None) -> str:
    """How to go on after a cut: after the revision delivered, or as at first when none
    was (None: the stream was cut before its start, or while its initial snapshot was
    being sent, whose events stand at no revision one could resume after: the instances
    not sent yet would be missed)."""
    if cursor is None:
        return "no position was delivered: watch again as at first (with initial_snapshot if asked)"
    return f"resume with after_revision={cursor}"


def _shutting_down(cursor: int | None) -> ApiError:
    return ApiError(
        grpc.StatusCode.UNAVAILABLE,
        "SERVER_SHUTTING_DOWN",
        f"the server is shutting down; {_resume_with(cursor)}",
        {"last_revision": cursor},
    )


def _too_slow(cursor: int | None, buffer: int) -> ApiError:
    return ApiError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "SUBSCRIBER_TOO_SLOW",
        f"the subscriber fell more than {buffer} events behind; {_resume_with(cursor)}",
        {"last_revision": cursor},
    )


#: Longest journal_id a request may carry (the server's are 16 characters).
MAX_JOURNAL_ID = 64
#: Most instance ids a watch may name, and the longest each may be: a watch holds its
#: request for as long as it runs (190,000 ids held 11 MB per watch).
MAX_WATCHED_IDS = 1000
MAX_WATCHED_ID_LENGTH = 256


def _check_ids(ids: Sequence[str]) -> None:
    if len(ids) > MAX_WATCHED_IDS:
        raise invalid_argument(
            "TOO_MANY_INSTANCE_IDS",
            f"a watch names at most {MAX_WATCHED_IDS} instance ids, got {len(ids)}; watch "
            "all of the scope's instances (instance_ids empty) instead",
            limit=MAX_WATCHED_IDS,
            count=len(ids),
        )
    longest = max(map(len, ids), default=0)
    if longest > MAX_WATCHED_ID_LENGTH:
        raise invalid_argument(
            "INVALID_INSTANCE_ID",
            f"instance ids are at most {MAX_WATCHED_ID_LENGTH} characters; one of "
            f"instance_ids has {longest}",
            limit=MAX_WATCHED_ID_LENGTH,
        )


def _other_journal(requested: str, scope: ScopeHub) -> ApiError:
    """A resume from a revision of another journal (another server, or this one's journal
    started afresh): its revisions say nothing about this one's."""
    return ApiError(
        grpc.StatusCode.OUT_OF_RANGE,
        "JOURNAL_MISMATCH",
        f"after_revision counts in journal {requested}, not in this server's journal of "
        f"the scope ({scope.journal_id}); list the instances again, then watch from "
        f"revision {scope.head} of journal {scope.journal_id} (or watch with "
        "initial_snapshot)",
        {
            "journal_id": scope.journal_id,
            "requested_journal_id": requested,
            "current_revision": scope.head,
        },
    )


def _compacted(after: int, compacted: int, head: int) -> ApiError:
    return ApiError(
        grpc.StatusCode.OUT_OF_RANGE,
        "REVISION_COMPACTED",
        f"events after revision {after} are no longer kept (the journal starts after "
        f"{compacted}); list the instances again, then watch from revision {head}",
        {"after_revision": after, "compacted_revision": compacted, "current_revision": head},
    )


def _states(values: Iterable[int]) -> frozenset[int]:
    """The states filter: empty (any state) when it names INSTANCE_STATE_UNSPECIFIED, which
    as a filter means any state; INVALID_ARGUMENT for a value the contract does not
    define (it would match nothing, silently)."""
    states = frozenset(values)
    for value in sorted(states):
        enum_name(common_pb2.InstanceState, value, "states")
    return frozenset() if common_pb2.INSTANCE_STATE_UNSPECIFIED in states else states


class Subscription:
    def __init__(
        self,
        hub: EventHub,
        scope: ScopeHub,
        call: Call,
        request: instance_pb2.WatchInstanceEventsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        self.hub = hub
        self.scope = scope
        self.call = call
        self.request = request
        self.context = context
        _check_ids(request.instance_ids)
        self.ids = set(request.instance_ids)
        self.states = _states(request.states)
        self.interval = self._interval()
        self.cursor = 0
        #: The revision of the last message whose write completed; None while an initial
        #: snapshot is being sent (a cut then has no revision to resume after).
        self.delivered: int | None = (
            request.after_revision if request.HasField("after_revision") else None
        )
        self.live = False
        self.cut_reason: str | None = None
        self.task: asyncio.Task[Any] | None = None

    def _interval(self) -> float:
        if not self.request.HasField("progress_interval"):
            return self.hub.settings.progress_interval
        interval = self.request.progress_interval
        seconds = interval.seconds + interval.nanos / 1e9  # no timedelta: it overflows
        # A Duration's nanos lie within a second and share the sign of its seconds.
        if abs(interval.nanos) >= 1_000_000_000 or interval.seconds * interval.nanos < 0:
            raise invalid_argument(
                "INVALID_PROGRESS_INTERVAL",
                "progress_interval is not a valid Duration: its nanos must lie within a "
                f"second and share the sign of its seconds (got {interval.seconds} s, "
                f"{interval.nanos} ns)",
                field="progress_interval",
            )
        if not MIN_PROGRESS <= seconds <= MAX_PROGRESS:
            raise invalid_argument(
                "INVALID_PROGRESS_INTERVAL",
                f"progress_interval must be between {MIN_PROGRESS} and {MAX_PROGRESS} "
                f"seconds (got {seconds})",
                progress_interval=seconds,
            )
        return seconds

    def matches(self, event: instance_pb2.InstanceEvent) -> bool:
        if self.ids and event.instance_id not in self.ids:
            return False
        return not self.states or event.state in self.states

    def cut(self, reason: str) -> None:
        """End this stream from outside (the hub: "slow" or "shutdown"): the task is
        cancelled wherever it waits, a blocked write included, and answers resumably."""
        if self.cut_reason is None and self.task is not None:
            self.cut_reason = reason
            self.task.cancel()

    def _encode_some(
        self,
        matching: list[instance_pb2.InstanceEvent],
        last: int,
        events: list[instance_pb2.InstanceEvent],
    ) -> bytes:
        """The message of ``events``, a leading part of a batch's ``matching`` events."""
        return self._encode(events, _revision_of(events, matching, last))

    def _encode(self, events: list[instance_pb2.InstanceEvent], revision: int) -> bytes:
        return self.scope.message(Response.KIND_EVENTS, revision, events).SerializeToString()

    def _fitting(
        self,
        events: list[instance_pb2.InstanceEvent],
        encode: Callable[[list[instance_pb2.InstanceEvent]], bytes],
    ) -> tuple[list[instance_pb2.InstanceEvent], bytes]:
        """The longest leading part of ``events`` (halving) whose message fits in the
        largest message, and that message; the rest goes in the next ones."""
        limit = self.hub.gateway.config.max_message_bytes
        data = encode(events)
        while len(data) > limit and len(events) > 1:
            events = events[: len(events) // 2]
            data = encode(events)
        if len(data) > limit:
            # Not RESOURCE_EXHAUSTED, which clients resume after: a resume meets the same
            # event again, for ever. The server's --max-message-bytes must grow.
            raise ApiError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "EVENT_TOO_LARGE",
                f"the event at revision {events[0].revision} takes {len(data)} bytes, more "
                f"than the server's largest message ({limit} bytes, --max-message-bytes)",
                {"revision": events[0].revision, "last_revision": self.delivered},
            )
        return events, data

    async def send(self, message: Response | bytes) -> None:
        """Write one message (or its serialized bytes); ``delivered`` follows the writes
        that completed, so a cut reports a revision the client really has."""
        await self.context.write(message)
        if self.delivered is not None:
            self.delivered = self.cursor

    async def _start_position(self) -> None:
        request, scope = self.request, self.scope
        if request.journal_id:
            if len(request.journal_id) > MAX_JOURNAL_ID:
                raise invalid_argument(
                    "INVALID_JOURNAL_ID",
                    f"journal_id is at most {MAX_JOURNAL_ID} characters (the server's are "
                    f"16); got {len(request.journal_id)}",
                    length=len(request.journal_id),
                )
            if not request.HasField("after_revision"):
                raise invalid_argument(
                    "INVALID_WATCH_REQUEST",
                    "journal_id names the journal of after_revision; set both, or neither",
                )
        if request.HasField("after_revision"):
            if request.initial_snapshot:
                raise invalid_argument(
                    "INVALID_WATCH_REQUEST",
                    "initial_snapshot and after_revision exclude each other",
                )
            after = request.after_revision
            if request.journal_id and request.journal_id != scope.journal_id:
                raise _other_journal(request.journal_id, scope)
            if after < 0:
                raise invalid_argument(
                    "INVALID_REVISION",
                    f"after_revision {after} is negative",
                    after_revision=after,
                    current_revision=scope.head,
                )
            if after > scope.head:
                # A revision this journal never reached: the client's is another journal's
                # (one lost, restored from a backup, another server's) and it resumed
                # without journal_id. As good as compacted: list again.
                raise ApiError(
                    grpc.StatusCode.OUT_OF_RANGE,
                    "REVISION_AHEAD",
                    f"after_revision {after} is ahead of this journal (its current revision "
                    f"is {scope.head}): the revision is another journal's; list the instances "
                    "again and watch from there (or watch with initial_snapshot)",
                    {"after_revision": after, "current_revision": scope.head},
                )
            compacted = await self.hub.in_reader(self.hub.journal.compacted, scope.key)
            if after < compacted:
                raise _compacted(after, compacted, scope.head)
            self.cursor = after
            return
        if request.initial_snapshot:
            listed = await scope.fresh_poll()
            # A poll while a create is under way passes over every instance it does not
            # know yet (one may be the create's), and a scope's first poll knows none: the
            # snapshot would miss them all, and no later event tells of them. Poll again
            # once the creates have been recorded.
            waited = time.monotonic() + SNAPSHOT_WAIT
            while not scope.baselined and time.monotonic() < waited:
                while scope.creating and time.monotonic() < waited:
                    await asyncio.sleep(0.02)
                listed = await scope.fresh_poll()
            async with scope.lock:
                self.cursor = scope.head
                current = dict(scope.known)
                if not scope.baselined:  # creates kept coming: what the last poll listed
                    current = {i.id: i for i in listed} | current
                instances = [i for i in current.values() if i.state != FINISH_STATE]
            events = [
                instance_pb2.InstanceEvent(
                    revision=self.cursor,
                    # Unique across journals too: a client that relists on another server
                    # must not take its snapshot for one it had.
                    event_id=f"snapshot-{scope.journal_id}-{self.cursor}-{i.id}",
                    instance_id=i.id,
                    previous_state=i.state,
                    state=i.state,
                    cause=SNAPSHOT,
                    instance=i,
                )
                for i in sorted(instances, key=lambda i: i.id)
            ]
            events = [e for e in events if self.matches(e)]
            self.delivered = None  # until the snapshot is complete
            sent = 0
            while sent < len(events):
                chunk, data = self._fitting(
                    events[sent : sent + BATCH], lambda chunk: self._encode(chunk, self.cursor)
                )
                await self.send(data)
                sent += len(chunk)
            await self.send(self.scope.message(Response.KIND_SNAPSHOT_COMPLETE, self.cursor))
            self.delivered = self.cursor
            return
        self.cursor = scope.head

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            if self.cut_reason is None:
                raise
            if self.task is not None:
                self.task.uncancel()
            if self.cut_reason == "slow":
                raise _too_slow(self.delivered, self.hub.settings.buffer) from None
            raise _shutting_down(self.delivered) from None

    async def _run(self) -> None:
        scope = self.scope
        self.task = asyncio.current_task()
        scope.subscriptions.add(self)
        try:
            scope.keep_watching(self.call)
            await self._start_position()
            self.delivered = self.cursor
            last_sent = time.monotonic()
            while True:
                if self.hub.closing:
                    raise _shutting_down(self.delivered)
                batch = scope.events_after(self.cursor, BATCH)
                if batch is None and not self.live:
                    await scope.fill_ring()
                    batch = scope.events_after(self.cursor, BATCH)
                if batch is None:
                    if self.live:
                        raise _too_slow(self.delivered, self.hub.settings.buffer)
                    batch = await self.hub.in_reader(
                        self.hub.journal.read, scope.key, self.cursor, scope.head, BATCH
                    )
                    if not batch or batch[0].revision != self.cursor + 1:
                        compacted = await self.hub.in_reader(self.hub.journal.compacted, scope.key)
                        raise _compacted(self.cursor, compacted, scope.head)
                if batch:
                    if not self.ids and not self.states:
                        batch, data = self._fitting(
                            batch, functools.partial(scope.encoded, self.cursor)
                        )
                        self.cursor = batch[-1].revision
                        await self.send(data)
                        last_sent = time.monotonic()
                        continue
                    matching = [e for e in batch if self.matches(e)]
                    if not matching:
                        self.cursor = batch[-1].revision
                        self.delivered = self.cursor  # nothing to send is delivered too
                        continue
                    encode = functools.partial(self._encode_some, matching, batch[-1].revision)
                    sending, data = self._fitting(matching, encode)
                    self.cursor = _revision_of(sending, matching, batch[-1].revision)
                    await self.send(data)
                    last_sent = time.monotonic()
                    continue
                self.live = True
                wait = self.interval - (time.monotonic() - last_sent)
                if wait <= 0:
                    await self.send(self.scope.message(Response.KIND_PROGRESS, self.cursor))
                    last_sent = time.monotonic()
                    continue
                await scope.wait_after(self.cursor, wait)
        finally:
            scope.subscriptions.discard(self)
