"""The bookkeeping of a resumable WatchInstanceEvents subscription (docs/events.md, "How a
client resumes"), shared by the synchronous and the asyncio client: which request to send
next, which events are new, and whether a failed stream is resumed or raised."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from deltacloud.v1 import common_pb2, instance_pb2

from .errors import DeltacloudError, InstanceGone, RevisionCompacted, WaitTimeout, from_rpc_error
from .retry import RetryPolicy
from .rpc import build, enum_value, short_name

Response = instance_pb2.WatchInstanceEventsResponse
Event = instance_pb2.InstanceEvent

#: A dropped stream is resumed after these (UNAVAILABLE: the server restarts or shuts down;
#: CANCELLED: a proxy or the network cut it; INTERNAL/UNKNOWN: a broken connection
#: mid-stream), and after RESOURCE_EXHAUSTED with reason SUBSCRIBER_TOO_SLOW only: gRPC's
#: own (a message over this channel's receive limit) would come again at each resume.
RESUMABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)
TOO_SLOW = "SUBSCRIBER_TOO_SLOW"
#: Event ids remembered to drop a re-sent event; a resume re-sends at most a few.
SEEN_WINDOW = 10_000


@dataclass
class WatchState:
    """Where a subscription stands: the last revision it saw (EVENTS, PROGRESS and
    SNAPSHOT_COMPLETE all carry one) and the ids of recent events."""

    instance_ids: list[str] = field(default_factory=list)
    states: list[int | str] = field(default_factory=list)
    revision: int | None = None
    #: The journal ``revision`` counts in (every message names it); sent with it when
    #: resuming, so that another server's journal is not taken for this one's.
    journal_id: str | None = None
    initial_snapshot: bool = False
    progress_interval: float | None = None
    #: Set once the snapshot asked for is complete, or when none is asked for: none was,
    #: or the watch starts after a revision (the server sends no snapshot then).
    snapshot_complete: bool = False
    #: Resumes in a row (none between them delivered a message) before the watch gives up;
    #: None: never. Counted in a row, as the Node.js and TypeScript clients count: a watch
    #: that ran for weeks through many drops gave up on its max_resumes-th drop ever.
    max_resumes: int | None = None
    backoff: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(attempts=1_000_000, initial_delay=0.2, max_delay=5.0)
    )
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _delays: Iterator[float] | None = None
    #: Resumes over the watch's life, and since the last message.
    resumes: int = 0
    _in_a_row: int = 0
    #: Snapshots taken again (history gone, or another journal): each starts a new view.
    relists: int = 0

    def __post_init__(self) -> None:
        self.snapshot_complete = not self.initial_snapshot or self.revision is not None

    def request(self) -> instance_pb2.WatchInstanceEventsRequest:
        """The request that starts (or resumes) the stream: after the last revision seen;
        with a snapshot only if none has been received yet."""
        return build(
            instance_pb2.WatchInstanceEventsRequest,
            instance_ids=self.instance_ids,
            states=self.states,
            after_revision=self.revision,
            journal_id=self.journal_id if self.revision is not None else None,
            initial_snapshot=self.initial_snapshot and self.revision is None,
            progress_interval=self.progress_interval,
        )

    def accept(self, message: Response) -> list[Event]:
        """Record a message; the events in it not delivered before."""
        self._delays = None  # the stream works: the next failure starts a fresh backoff
        self._in_a_row = 0
        fresh: list[Event] = []
        for event in message.events:
            if event.event_id in self._seen:
                continue
            self._seen[event.event_id] = None
            if len(self._seen) > SEEN_WINDOW:
                self._seen.popitem(last=False)
            fresh.append(event)
        if message.kind == Response.KIND_SNAPSHOT_COMPLETE:
            self.snapshot_complete = True
        if message.kind != Response.KIND_EVENTS or self.snapshot_complete:
            # Snapshot events carry no position to resume from until the snapshot completes.
            self.revision = message.revision
            self.journal_id = message.journal_id or self.journal_id
        return fresh

    def resume_after(self, error: grpc.RpcError) -> float:
        """The wait before resuming after ``error``; raises the translated error when the
        stream must not be resumed (REVISION_COMPACTED, a bad request, ...)."""
        failure = from_rpc_error(error)
        if isinstance(failure, RevisionCompacted) and self.initial_snapshot:
            # List then watch again: the history after our revision is gone, or it is
            # another journal's (another server behind the same address).
            self.revision = self.journal_id = None
            self.snapshot_complete = False
            self._seen.clear()  # a new view: its snapshot is news, whatever came before
            self.relists += 1
            return self.next_delay(failure)
        too_slow = failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED and failure.reason == TOO_SLOW
        if failure.code not in RESUMABLE and not too_slow:
            raise failure
        return self.next_delay(failure)

    def next_delay(self, failure: DeltacloudError) -> float:
        if self.max_resumes is not None and self._in_a_row >= self.max_resumes:
            raise failure
        self.resumes += 1
        self._in_a_row += 1
        if self._delays is None:
            self._delays = self.backoff.delays()
        return next(self._delays, self.backoff.max_delay)


class Waiter:
    """The decision of ``wait_for``, fed from a watch with a snapshot: the instance once it
    is in the state, InstanceGone once it cannot get there (it vanished)."""

    def __init__(self, instance_id: str, state: int | str) -> None:
        self.instance_id = instance_id
        self.state = enum_value(common_pb2.InstanceState.DESCRIPTOR, state)
        #: The view (WatchState.relists) in which the instance was last seen.
        self._seen_in: int | None = None

    def watch_state(self) -> WatchState:
        return WatchState(instance_ids=[self.instance_id], initial_snapshot=True)

    def feed(
        self, message: Response, fresh: list[Event], watch: WatchState
    ) -> instance_pb2.Instance | None:
        """The instance when it reached the state; None to keep waiting."""
        for event in fresh:
            if event.instance_id != self.instance_id:
                continue
            self._seen_in = watch.relists
            if event.state == self.state:
                instance = instance_pb2.Instance()
                instance.CopyFrom(event.instance)
                instance.id = event.instance_id
                instance.state = event.state
                return instance
            if event.state == common_pb2.INSTANCE_STATE_FINISH:
                raise self._gone("was destroyed")
        if message.kind == Response.KIND_SNAPSHOT_COMPLETE and self._seen_in != watch.relists:
            if self.state == common_pb2.INSTANCE_STATE_FINISH:
                return build(instance_pb2.Instance, id=self.instance_id, state=self.state)
            raise self._gone("does not exist")
        return None

    def _gone(self, what: str) -> InstanceGone:
        state = short_name(common_pb2.InstanceState.DESCRIPTOR, self.state)
        return InstanceGone(
            f"instance {self.instance_id} {what} before reaching {state}",
            reason="INSTANCE_GONE",
            metadata={"instance_id": self.instance_id},
        )

    def timed_out(self, timeout: float) -> WaitTimeout:
        state = short_name(common_pb2.InstanceState.DESCRIPTOR, self.state)
        return WaitTimeout(
            f"instance {self.instance_id} did not reach {state} within {timeout:g} s",
            reason="WAIT_TIMEOUT",
            metadata={"instance_id": self.instance_id},
        )
