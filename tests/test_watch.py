"""WatchInstanceEvents: the guarantees of the instance event stream, each tested against a
real server: order, no gaps and no duplicates across resume (disconnect, graceful restart,
kill -9), compaction, slow subscribers, shutdown, scopes, fan-out, snapshot, progress."""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import PENDING_DELAY, STOPPING_DELAY, Api, ServerProcess
from google.protobuf import duration_pb2
from watching import Watcher, transitions

from deltacloud.server.events.hub import POLL_PACE
from deltacloud.v1 import common_pb2, instance_pb2, realm_pb2
from support import ALICE, EXTRA_USERS, MD, MOCK_USER, failure, metadata

Request = instance_pb2.WatchInstanceEventsRequest
Response = instance_pb2.WatchInstanceEventsResponse
RUNNING = common_pb2.INSTANCE_STATE_RUNNING
STOPPED = common_pb2.INSTANCE_STATE_STOPPED
PENDING = common_pb2.INSTANCE_STATE_PENDING
FINISH = common_pb2.INSTANCE_STATE_FINISH

FAST_POLL = 0.05
WATCH_ARGS = [
    "--watch-fast-poll-interval",
    str(FAST_POLL),
    "--watch-poll-interval",
    "0.2",
    "--watch-progress-interval",
    "0.5",
]


def start(tmp_path: Path, *extra: str) -> ServerProcess:
    return ServerProcess(tmp_path, extra_args=[*WATCH_ARGS, *extra]).start()


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start(tmp_path)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def api(proc: ServerProcess) -> Iterator[Api]:
    channel = grpc.insecure_channel(proc.target)
    yield Api(channel)
    channel.close()


def create(api: Api, md: list[tuple[str, str]] = MD, image: str = "img1") -> str:
    request = instance_pb2.CreateInstanceRequest(image_id=image)
    return str(api.instances.CreateInstance(request, metadata=md).instances[0].id)


def wait_state(api: Api, instance_id: str, state: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = api.instances.GetInstance(
            instance_pb2.GetInstanceRequest(id=instance_id), metadata=MD
        )
        if got.state == state:
            return
        time.sleep(0.02)
    raise AssertionError(f"{instance_id} never reached {state}")


def lifecycle(api: Api, md: list[tuple[str, str]] = MD) -> str:
    """create, (auto) running, stop, (auto) stopped, destroy: five events."""
    instance_id = create(api, md)
    wait_state(api, instance_id, RUNNING) if md is MD else time.sleep(PENDING_DELAY + 0.2)
    api.instances.StopInstance(instance_pb2.StopInstanceRequest(id=instance_id), metadata=md)
    wait_state(api, instance_id, STOPPED) if md is MD else time.sleep(STOPPING_DELAY + 0.2)
    api.instances.DeleteInstance(instance_pb2.DeleteInstanceRequest(id=instance_id), metadata=md)
    return instance_id


LIFECYCLE = [
    "START->PENDING:CREATE",
    "PENDING->RUNNING:AUTOMATIC",
    "RUNNING->STOPPING:STOP",
    "STOPPING->STOPPED:AUTOMATIC",
    "STOPPED->FINISH:DESTROY",
]


def steps(events: list[instance_pb2.InstanceEvent], instance_id: str) -> list[str]:
    return [f"{t}:{c}" for i, t, c in transitions(events) if i == instance_id]


def assert_consecutive(events: list[instance_pb2.InstanceEvent], first: int) -> None:
    assert [e.revision for e in events] == list(range(first, first + len(events)))
    assert len({e.event_id for e in events}) == len(events)


# ---- the stream itself -----------------------------------------------------------------


def test_a_lifecycle_streams_every_transition_in_order_with_its_cause(
    proc: ServerProcess, api: Api
) -> None:
    watcher = Watcher(api.channel, MD)
    time.sleep(0.2)  # the subscription is live
    instance_id = lifecycle(api)
    events = watcher.wait_for_events(5)
    watcher.cancel()
    assert steps(events, instance_id) == LIFECYCLE
    assert_consecutive(events, 1)
    final = events[-1]
    assert (
        final.instance.id == instance_id
        and final.instance.state == common_pb2.INSTANCE_STATE_FINISH
    )
    assert events[1].instance.actions == [
        common_pb2.INSTANCE_ACTION_REBOOT,
        common_pb2.INSTANCE_ACTION_STOP,
    ]


def test_automatic_transition_arrives_within_delay_plus_one_poll(
    proc: ServerProcess, api: Api
) -> None:
    watcher = Watcher(api.channel, MD)
    time.sleep(0.2)
    created_at = time.monotonic()
    create(api)
    watcher.wait_for_events(2)
    arrived = time.monotonic() - created_at
    watcher.cancel()
    # delay, plus one fast poll, plus generous slack for a loaded CI machine
    assert arrived < PENDING_DELAY + FAST_POLL + 1.0
    assert arrived >= PENDING_DELAY * 0.9


def test_reboot_is_a_running_to_running_event(proc: ServerProcess, api: Api) -> None:
    watcher = Watcher(api.channel, MD)
    time.sleep(0.2)
    api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst1"), metadata=MD)
    events = watcher.wait_for_events(1)
    watcher.cancel()
    assert transitions(events) == [("inst1", "RUNNING->RUNNING", "REBOOT")]


def test_filters_select_instances_and_new_states(proc: ServerProcess, api: Api) -> None:
    by_state = Watcher(api.channel, MD, Request(states=[RUNNING]))
    by_id = Watcher(api.channel, MD, Request(instance_ids=["inst2"]))
    time.sleep(0.2)
    api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst1"), metadata=MD)
    api.instances.StopInstance(instance_pb2.StopInstanceRequest(id="inst2"), metadata=MD)
    by_id.wait_for_events(2)  # STOP, then automatic STOPPED
    by_state.wait_for_events(1)
    time.sleep(0.3)
    assert transitions(by_id.events) == [
        ("inst2", "RUNNING->STOPPING", "STOP"),
        ("inst2", "STOPPING->STOPPED", "AUTOMATIC"),
    ]
    assert transitions(by_state.events) == [("inst1", "RUNNING->RUNNING", "REBOOT")]
    by_id.cancel()
    by_state.cancel()


def test_a_states_filter_of_unspecified_means_any_state(proc: ServerProcess, api: Api) -> None:
    # As a filter INSTANCE_STATE_UNSPECIFIED means any state (common.proto); it matched none.
    watcher = Watcher(api.channel, MD, Request(states=[common_pb2.INSTANCE_STATE_UNSPECIFIED]))
    time.sleep(0.2)
    api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst1"), metadata=MD)
    events = watcher.wait_for_events(1)
    watcher.cancel()
    assert transitions(events) == [("inst1", "RUNNING->RUNNING", "REBOOT")]


def test_a_states_filter_of_an_undefined_state_is_invalid_argument(
    proc: ServerProcess, api: Api
) -> None:
    # It matched nothing, silently; a list with such a state is refused the same way.
    error = Watcher(api.channel, MD, Request(states=[RUNNING, 99])).wait_for_error()
    f = failure(error)
    assert (f.code, f.reason, f.metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ENUM_VALUE",
        "states",
    )


def test_several_ready_events_travel_in_one_message(proc: ServerProcess, api: Api) -> None:
    for _ in range(5):
        api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD)
    watcher = Watcher(api.channel, MD, Request(after_revision=0))
    events = watcher.wait_for_events(5)
    watcher.cancel()
    first = next(m for m in watcher.messages if m.kind == Response.KIND_EVENTS)
    assert len(first.events) == 5 and first.revision == 5
    assert_consecutive(events, 1)


def test_idle_stream_sends_progress_with_the_current_revision(
    proc: ServerProcess, api: Api
) -> None:
    api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD)
    interval = duration_pb2.Duration(nanos=200_000_000)
    watcher = Watcher(api.channel, MD, Request(progress_interval=interval))
    watcher.wait_until(
        lambda w: sum(m.kind == Response.KIND_PROGRESS for m in w.messages) >= 3, timeout=5
    )
    watcher.cancel()
    progress = [m for m in watcher.messages if m.kind == Response.KIND_PROGRESS]
    assert {m.revision for m in progress} == {1}


def test_bad_progress_interval_is_invalid_argument(proc: ServerProcess, api: Api) -> None:
    interval = duration_pb2.Duration(seconds=0, nanos=1000)
    error = Watcher(api.channel, MD, Request(progress_interval=interval)).wait_for_error()
    f = failure(error)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PROGRESS_INTERVAL")


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(1, -500_000_000), (-1, 500_000_000), (0, 1_500_000_000)]
)
def test_a_malformed_progress_interval_is_invalid_argument(
    proc: ServerProcess, api: Api, seconds: int, nanos: int
) -> None:
    # Not a Duration (nanos of another sign, or a second or more): refused, not read as
    # 0.5 s or 1.5 s.
    interval = duration_pb2.Duration(seconds=seconds, nanos=nanos)
    error = Watcher(api.channel, MD, Request(progress_interval=interval)).wait_for_error()
    f = failure(error)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PROGRESS_INTERVAL")


def test_initial_snapshot_lists_then_marks_then_watches(proc: ServerProcess, api: Api) -> None:
    watcher = Watcher(api.channel, MD, Request(initial_snapshot=True))
    complete = watcher.wait_for_kind(Response.KIND_SNAPSHOT_COMPLETE)
    snapshot = list(watcher.events)
    assert [e.instance_id for e in snapshot] == ["inst0", "inst1", "inst2", "inst3"]
    assert {instance_pb2.EventCause.Name(e.cause) for e in snapshot} == {"EVENT_CAUSE_SNAPSHOT"}
    assert all(e.state == RUNNING and e.instance.state == RUNNING for e in snapshot)
    assert complete.revision == 0
    api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst3"), metadata=MD)
    events = watcher.wait_for_events(5)
    watcher.cancel()
    assert transitions(events[4:]) == [("inst3", "RUNNING->RUNNING", "REBOOT")]
    assert events[4].revision == 1


def test_a_snapshot_while_a_create_is_under_way_lists_every_instance(tmp_path: Path) -> None:
    """A scope's first poll, made while a create is under way, passes over the instances it
    does not know: a snapshot built from it listed none of the mock's four, and no later
    event told of them. It waits for the create and lists all."""
    server = ServerProcess(tmp_path, extra_args=["--workers", "1"]).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            api.realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=MD)  # warm reads
            # A slow backend holds the only worker, so the create waits, under way.
            hold = api.realms.GetRealm.future(
                realm_pb2.GetRealmRequest(id="hang"), metadata=MD, timeout=2
            )
            time.sleep(0.3)
            create = api.instances.CreateInstance.future(
                instance_pb2.CreateInstanceRequest(image_id="img1"), metadata=MD, timeout=20
            )
            time.sleep(0.3)
            watcher = Watcher(channel, MD, Request(initial_snapshot=True))
            watcher.wait_for_kind(Response.KIND_SNAPSHOT_COMPLETE, timeout=15)
            snapshot = {e.instance_id for e in watcher.events}
            [made] = create.result().instances
            with contextlib.suppress(grpc.RpcError):
                hold.result()
            # In the snapshot, or (the create had not begun when it was taken) an event
            # soon after: journaled before the create answered, on its way to the stream.
            watcher.wait_until(lambda w: made.id in {e.instance_id for e in w.events})
            watcher.cancel()
            assert {"inst0", "inst1", "inst2", "inst3"} <= snapshot
    finally:
        server.kill()


def test_snapshot_and_resume_together_are_refused(proc: ServerProcess, api: Api) -> None:
    error = Watcher(
        api.channel, MD, Request(initial_snapshot=True, after_revision=0)
    ).wait_for_error()
    assert failure(error).reason == "INVALID_WATCH_REQUEST"


def test_resume_ahead_of_the_journal_is_out_of_range(proc: ServerProcess, api: Api) -> None:
    """A revision the journal never reached is another journal's (one lost or restored from
    a backup, and no journal_id sent): OUT_OF_RANGE, which clients handle by listing again,
    as for compaction. It was INVALID_ARGUMENT, which they raise."""
    error = Watcher(api.channel, MD, Request(after_revision=99)).wait_for_error()
    f = failure(error)
    assert (f.code, f.reason) == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_AHEAD")
    assert (f.metadata["after_revision"], f.metadata["current_revision"]) == ("99", "0")
    error = Watcher(api.channel, MD, Request(after_revision=-1)).wait_for_error()
    f = failure(error)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REVISION")


def test_watching_needs_valid_credentials(proc: ServerProcess, api: Api) -> None:
    bad = [("authorization", "Basic bW9ja3VzZXI6bm9wZQ==")]  # mockuser:nope
    error = Watcher(api.channel, bad).wait_for_error()
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


# ---- sources of events -----------------------------------------------------------------


def test_instances_changed_by_another_server_on_the_same_backend_are_observed(
    proc: ServerProcess, api: Api, tmp_path_factory: pytest.TempPathFactory
) -> None:
    watcher = Watcher(api.channel, MD)
    time.sleep(0.3)  # the monitor has seen the backend once (baseline)
    # A second server process on the same fake cloud (the mock's state directory) and its
    # own data directory is "another client of the same backend".
    other = ServerProcess(
        tmp_path_factory.mktemp("other"),
        extra_args=[*WATCH_ARGS, "--driver-option", f"mock.data_dir={proc.data_dir / 'mock'}"],
    ).start()
    try:
        with grpc.insecure_channel(other.target) as channel:
            other_api = Api(channel)
            foreign = create(other_api)
            watcher.wait_for_events(2, timeout=10)
            other_api.instances.StopInstance(
                instance_pb2.StopInstanceRequest(id="inst3"), metadata=MD
            )
            watcher.wait_until(
                lambda w: (
                    ("inst3", "STOPPING->STOPPED", "AUTOMATIC") in transitions(w.events)
                    or ("inst3", "RUNNING->STOPPED", "OBSERVED") in transitions(w.events)
                ),
                timeout=10,
            )
            # Destroyed elsewhere: it vanishes from the backend, and the watcher hears so.
            other_api.instances.DeleteInstance(
                instance_pb2.DeleteInstanceRequest(id="inst3"), metadata=MD
            )
            watcher.wait_until(
                lambda w: ("inst3", "STOPPED->FINISH", "OBSERVED") in transitions(w.events),
                timeout=10,
            )
    finally:
        other.kill()
    watcher.cancel()
    seen = transitions(watcher.events)
    assert seen[0] == (foreign, "START->PENDING", "OBSERVED")
    assert seen[1] == (foreign, "PENDING->RUNNING", "AUTOMATIC")
    finish = next(e for e in watcher.events if e.instance_id == "inst3" and e.state == FINISH)
    assert (finish.instance.id, finish.instance.state) == ("inst3", FINISH)
    assert_consecutive(watcher.events, watcher.events[0].revision)


# ---- resume ----------------------------------------------------------------------------


def test_disconnect_and_resume_from_last_seen_revision_loses_and_repeats_nothing(
    proc: ServerProcess, api: Api
) -> None:
    first = Watcher(api.channel, MD)
    time.sleep(0.2)
    for _ in range(3):
        api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD)
    seen = first.wait_for_events(3)
    first.cancel()
    last = seen[-1].revision
    for _ in range(4):  # while disconnected
        api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst1"), metadata=MD)
    second = Watcher(api.channel, MD, Request(after_revision=last))
    more = second.wait_for_events(4)
    api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst2"), metadata=MD)
    more = second.wait_for_events(5)
    second.cancel()
    everything = seen + more
    assert_consecutive(everything, 1)
    assert [e.instance_id for e in everything] == ["inst0"] * 3 + ["inst1"] * 4 + ["inst2"]


def test_resume_across_a_graceful_restart(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            watcher = Watcher(channel, MD)
            time.sleep(0.2)
            instance_id = create(api)
            seen = watcher.wait_for_events(1)
            assert server.stop() == 0
            watcher.wait_for_error()
        server.restart()
        with grpc.insecure_channel(server.target) as channel:
            watcher = Watcher(channel, MD, Request(after_revision=seen[-1].revision))
            more = watcher.wait_for_events(1)  # the PENDING->RUNNING observed after restart
            watcher.cancel()
    finally:
        server.kill()
    everything = seen + more
    assert_consecutive(everything, 1)
    assert steps(everything, instance_id) == LIFECYCLE[:2]


def test_resume_across_kill_9(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            for _ in range(3):
                api.instances.RebootInstance(
                    instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD
                )
            watcher = Watcher(channel, MD, Request(after_revision=0))
            seen = watcher.wait_for_events(3)
            watcher.cancel()
            api.instances.RebootInstance(
                instance_pb2.RebootInstanceRequest(id="inst1"), metadata=MD
            )  # acknowledged, then...
        server.kill()  # ...kill -9
        server.restart()
        with grpc.insecure_channel(server.target) as channel:
            watcher = Watcher(channel, MD, Request(after_revision=2))
            more = watcher.wait_for_events(2)
            watcher.cancel()
    finally:
        server.kill()
    assert_consecutive(seen, 1)
    assert [(e.revision, e.instance_id) for e in more] == [(3, "inst0"), (4, "inst1")]
    assert more[0].event_id == seen[2].event_id  # the same event, the same id


def test_history_older_than_retention_is_revision_compacted(tmp_path: Path) -> None:
    server = start(tmp_path, "--journal-max-events", "3")
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            for _ in range(6):
                api.instances.RebootInstance(
                    instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD
                )
        assert server.stop() == 0
        server.restart()  # compaction runs at start
        with grpc.insecure_channel(server.target) as channel:
            error = Watcher(channel, MD, Request(after_revision=1)).wait_for_error()
            f = failure(error)
            assert (f.code, f.reason) == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED")
            assert f.metadata["compacted_revision"] == "3"
            assert f.metadata["current_revision"] == "6"
            kept = Watcher(channel, MD, Request(after_revision=3))
            events = kept.wait_for_events(3)
            kept.cancel()
            assert [e.revision for e in events] == [4, 5, 6]
    finally:
        server.kill()


# ---- subscribers -----------------------------------------------------------------------


def test_graceful_shutdown_ends_streams_unavailable_with_last_revision(tmp_path: Path) -> None:
    """last_revision is the last revision whose write to the stream had completed in the
    server: a client may hold a later one (its message left, the write's completion not
    yet seen by the server), never an earlier one. Once a progress mark followed the
    event, the event's write had completed."""
    server = start(tmp_path)
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            interval = duration_pb2.Duration(nanos=100_000_000)
            watcher = Watcher(channel, MD, Request(progress_interval=interval))
            time.sleep(0.2)
            api.instances.RebootInstance(
                instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD
            )
            watcher.wait_for_events(1)
            watcher.wait_until(
                lambda w: any(
                    m.kind == Response.KIND_PROGRESS and m.revision == 1 for m in w.messages
                )
            )
            assert server.stop() == 0
            f = failure(watcher.wait_for_error())
            assert (f.code, f.reason) == (grpc.StatusCode.UNAVAILABLE, "SERVER_SHUTTING_DOWN")
            assert f.metadata["last_revision"] == "1"
    finally:
        server.kill()


def test_two_subscribers_see_identical_sequences(proc: ServerProcess, api: Api) -> None:
    a = Watcher(api.channel, MD)
    b = Watcher(grpc.insecure_channel(proc.target), MD)
    time.sleep(0.2)
    instance_id = lifecycle(api)
    a.wait_for_events(5)
    b.wait_for_events(5)
    a.cancel()
    b.cancel()
    assert [(e.revision, e.event_id) for e in a.events] == [
        (e.revision, e.event_id) for e in b.events
    ]
    assert steps(a.events, instance_id) == LIFECYCLE


def test_a_subscriber_never_sees_another_scopes_events(proc: ServerProcess, api: Api) -> None:
    alice = Watcher(api.channel, ALICE)
    mock = Watcher(api.channel, MD)
    time.sleep(0.2)
    alice_instance = create(api, ALICE)
    api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD)
    alice.wait_for_events(2)
    mock.wait_for_events(1)
    time.sleep(0.3)
    alice.cancel()
    mock.cancel()
    assert {e.instance_id for e in alice.events} == {alice_instance}
    assert {e.instance_id for e in mock.events} == {"inst0"}
    assert [e.revision for e in alice.events][:2] == [1, 2]  # revisions count per scope


def test_journal_holds_no_credentials(proc: ServerProcess, api: Api) -> None:
    create(api, ALICE)
    api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD)
    time.sleep(0.2)
    journal = proc.data_dir / "events.sqlite3"
    with sqlite3.connect(journal) as db:
        dumped = "\n".join(db.iterdump())
    raw = b"".join(p.read_bytes() for p in proc.data_dir.glob("events.sqlite3*"))
    for secret in ("mockpassword", EXTRA_USERS["alice"]):
        assert secret not in dumped
        assert secret.encode() not in raw


def test_hundred_concurrent_subscribers_all_receive_every_event(
    proc: ServerProcess, api: Api
) -> None:
    channels = [grpc.insecure_channel(proc.target) for _ in range(4)]
    watchers = [Watcher(channels[i % 4], MD) for i in range(100)]
    time.sleep(1.0)
    for i in range(10):
        api.instances.RebootInstance(
            instance_pb2.RebootInstanceRequest(id=f"inst{i % 4}"), metadata=MD
        )
    for watcher in watchers:
        watcher.wait_for_events(10, timeout=20)
    expected = [(e.revision, e.event_id) for e in watchers[0].events]
    assert [r for r, _ in expected] == list(range(1, 11))
    for watcher in watchers:
        assert [(e.revision, e.event_id) for e in watcher.events] == expected
        watcher.cancel()
    for channel in channels:
        channel.close()


def test_a_write_of_more_events_than_the_buffer_cuts_no_subscriber_that_keeps_up(
    tmp_path: Path,
) -> None:
    """One write (a create of many instances) bringing more events than --watch-buffer cut
    every live subscriber, though each had read everything before it: the ring was trimmed
    to the buffer before anyone could read the new events. Now a reading subscriber gets
    them all, twice over, and no error."""
    server = start(tmp_path, "--watch-buffer", "5")
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            watcher = Watcher(channel, MD)
            watcher.wait_for_kind(Response.KIND_PROGRESS)  # subscribed, at the head
            seen = 0
            for _ in range(2):
                created = api.instances.CreateInstance(
                    instance_pb2.CreateInstanceRequest(image_id="img1", instance_count=12),
                    metadata=MD,
                ).instances
                assert len(created) == 12
                # 12 creates, and 12 runs (in one poll's write or several).
                seen += 24
                watcher.wait_for_events(seen, timeout=30)
            assert watcher.error is None, watcher.error
            assert_consecutive(watcher.events, watcher.events[0].revision)
            watcher.cancel()
    finally:
        server.kill()


def test_an_action_on_an_instance_not_seen_yet_reports_it_from_start_first(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Two servers on one cloud: an instance made through one and stopped through the
    other before that one polled came to its watchers as RUNNING->STOPPING with nothing
    before it, though every new instance comes from START. Now START->RUNNING (OBSERVED)
    first, then the stop."""
    slow = ["--watch-poll-interval", "60", "--watch-progress-interval", "0.5"]
    here = ServerProcess(tmp_path_factory.mktemp("here"), extra_args=slow).start()
    cloud = ["--driver-option", f"mock.data_dir={here.data_dir / 'mock'}"]
    there = ServerProcess(tmp_path_factory.mktemp("there"), extra_args=cloud).start()
    try:
        with (
            grpc.insecure_channel(here.target) as here_channel,
            grpc.insecure_channel(there.target) as there_channel,
        ):
            watcher = Watcher(here_channel, MD, Request(initial_snapshot=True))
            watcher.wait_for_kind(Response.KIND_SNAPSHOT_COMPLETE)
            there_api = Api(there_channel)
            made = create(there_api)
            deadline = time.monotonic() + 20
            while (
                there_api.instances.GetInstance(
                    instance_pb2.GetInstanceRequest(id=made), metadata=MD
                ).state
                != RUNNING
            ):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            Api(here_channel).instances.StopInstance(
                instance_pb2.StopInstanceRequest(id=made), metadata=MD
            )
            watcher.wait_until(
                lambda w: (made, "RUNNING->STOPPING", "STOP") in transitions(w.events),
                timeout=20,
            )
            watcher.cancel()
        mine = [t for t in transitions(watcher.events) if t[0] == made]
        assert mine[:2] == [
            (made, "START->RUNNING", "OBSERVED"),
            (made, "RUNNING->STOPPING", "STOP"),
        ], mine
    finally:
        here.kill()
        there.kill()


def test_a_watch_names_at_most_a_thousand_instance_ids_of_256_characters(api: Api) -> None:
    """A watch holds its request while it runs: 190,000 ids (a 4 MB request) held 11 MB of
    the server per watch, without limit. Now at most 1,000 ids of at most 256 characters."""
    ok = Watcher(api.channel, MD, Request(instance_ids=[f"i{n}" for n in range(1000)]))
    ok.wait_for_kind(Response.KIND_PROGRESS)
    ok.cancel()
    for ids, reason in [
        ([f"i{n}" for n in range(1001)], "TOO_MANY_INSTANCE_IDS"),
        (["inst0", "x" * 257], "INVALID_INSTANCE_ID"),
    ]:
        call = api.instances.WatchInstanceEvents(Request(instance_ids=ids), metadata=MD)
        with pytest.raises(grpc.RpcError) as caught:
            next(iter(call))
        f = failure(caught.value)
        assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason), f.message


def test_an_event_larger_than_the_largest_message_is_not_resumed_for_ever(
    tmp_path: Path,
) -> None:
    """An event that does not fit in --max-message-bytes was RESOURCE_EXHAUSTED, which the
    clients resume after: each resume met the same event, for ever. It is
    FAILED_PRECONDITION now, and the Python client's watch raises it at once."""
    from deltacloud.client import Client, FailedPrecondition

    server = start(tmp_path, "--max-message-bytes", "200")
    try:
        with grpc.insecure_channel(server.target) as channel:
            # Its answer takes 179 bytes; its event, which carries more, 267.
            named = instance_pb2.CreateInstanceRequest(image_id="img1", name="n" * 64)
            Api(channel).instances.CreateInstance(named, metadata=MD)
        with Client(server.target, username=MOCK_USER[0], password=MOCK_USER[1]) as client:
            started = time.monotonic()
            with pytest.raises(FailedPrecondition) as raised:
                for _ in client.watch(after_revision=0, timeout=20):
                    pass
            assert raised.value.reason == "EVENT_TOO_LARGE"
            assert time.monotonic() - started < 10
    finally:
        server.kill()


def test_snapshot_watches_opened_at_once_share_their_listing_of_the_cloud(
    tmp_path: Path,
) -> None:
    """Each snapshot lists the cloud afresh (a poll): 200 opened at once made 224 listings
    (on ec2, DescribeInstances with the user's keys) and slowed every other call. Opened
    together they now share a poll that began after they asked."""
    server = start(tmp_path, "--log-level", "DEBUG", "--watch-poll-interval", "30")
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            for _ in range(3):
                api.instances.CreateInstance(
                    instance_pb2.CreateInstanceRequest(image_id="img1", instance_count=100),
                    metadata=MD,
                )
            time.sleep(PENDING_DELAY + 1)  # all running: no fast polls
            before = server.log().count('"message": "observed"')
            watchers = [Watcher(channel, MD, Request(initial_snapshot=True)) for _ in range(40)]
            for watcher in watchers:
                done = watcher.wait_for_kind(Response.KIND_SNAPSHOT_COMPLETE, timeout=60)
                assert done.revision > 0
                assert len(watcher.events) == 304  # the four fixtures' and the 300 made
                watcher.cancel()
            # One listing per watch before (44 here, with the monitor's); now those that
            # ask while one is under way share the next: 10 to 15 measured alone, up to 33
            # with the suite's other workers busy on the same two cores (the watches open
            # one after another, over more listings when each takes longer). Fewer listings
            # than watches can only come from sharing.
            polls = server.log().count('"message": "observed"') - before
            assert 1 <= polls < len(watchers), polls
    finally:
        server.kill()


def test_slow_subscriber_is_cut_resumably_while_others_keep_pace(tmp_path: Path) -> None:
    server = start(tmp_path, "--watch-buffer", "5")
    try:
        fast_channel = grpc.insecure_channel(server.target)
        # A client that reads nothing: tiny flow-control window, no window growth.
        slow_channel = grpc.insecure_channel(
            server.target,
            options=[("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)],
        )
        api = Api(fast_channel)
        fast = Watcher(fast_channel, MD)
        slow_call = Api(slow_channel).instances.WatchInstanceEvents(Request(), metadata=MD)
        time.sleep(0.3)
        total = 120
        for i in range(total):
            api.instances.RebootInstance(
                instance_pb2.RebootInstanceRequest(id=f"inst{i % 4}"), metadata=MD
            )
        events = fast.wait_for_events(total, timeout=30)
        assert_consecutive(events, 1)
        # Now the slow one reads: what it got, then a resumable error.
        received: list[instance_pb2.InstanceEvent] = []
        with pytest.raises(grpc.RpcError) as caught:
            for message in slow_call:
                received.extend(message.events)
        f = failure(caught.value)
        assert (f.code, f.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SUBSCRIBER_TOO_SLOW")
        assert len(received) < total
        last = received[-1].revision if received else 0
        resumed = Watcher(slow_channel, MD, Request(after_revision=last))
        rest = resumed.wait_for_events(total - last, timeout=30)
        resumed.cancel()
        fast.cancel()
        assert_consecutive(received + rest, 1)
        assert len(received + rest) == total
        fast_channel.close()
        slow_channel.close()
    finally:
        server.kill()


def test_watch_stream_survives_concurrent_actions_without_gaps(
    proc: ServerProcess, api: Api
) -> None:
    watcher = Watcher(api.channel, MD)
    time.sleep(0.2)

    def reboot(instance_id: str) -> None:
        for _ in range(10):
            api.instances.RebootInstance(
                instance_pb2.RebootInstanceRequest(id=instance_id), metadata=MD
            )

    threads = [threading.Thread(target=reboot, args=(f"inst{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = watcher.wait_for_events(40)
    watcher.cancel()
    assert_consecutive(events, 1)
    for i in range(4):
        assert sum(e.instance_id == f"inst{i}" for e in events) == 10


PUSHY = [("x-deltacloud-driver", "pushy"), *MD]


@contextlib.contextmanager
def pushy_server(tmp_path: Path, *flags: str) -> Iterator[tuple[Api, Watcher]]:
    """A server whose polls are so slow (60 s) they cannot explain a prompt event, only the
    pushy test driver's push can; an API and a watcher of pushy's instances on it."""
    server = ServerProcess(
        tmp_path,
        extra_args=["--watch-poll-interval", "60", "--watch-fast-poll-interval", "60", *flags],
    ).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            watcher = Watcher(channel, PUSHY)
            time.sleep(0.3)
            try:
                yield Api(channel), watcher
            finally:
                watcher.cancel()
    finally:
        server.kill()


def _create_pushy(api: Api) -> instance_pb2.Instance:
    return api.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(image_id="any"), metadata=PUSHY
    ).instances[0]


def test_a_pushing_driver_delivers_changes_without_polling(
    tmp_path: Path, test_drivers: list[str]
) -> None:
    with pushy_server(tmp_path) as (api, watcher):
        created = _create_pushy(api)
        events = watcher.wait_for_events(2, timeout=5)
    assert transitions(events) == [
        (created.id, "START->PENDING", "CREATE"),
        (created.id, "PENDING->RUNNING", "AUTOMATIC"),
    ]


def test_a_pushed_list_older_than_an_action_does_not_undo_it(
    tmp_path: Path, test_drivers: list[str]
) -> None:
    """A push driver hands over each list some time after taking it (here 1.5 s: it heard
    of a change, then asked its cloud). An instance destroyed in between is still in that
    list; it is the list that is old, not the instance that came back: no START->RUNNING
    for it, and no second end."""
    with pushy_server(tmp_path, "--driver-option", "pushy.listing_delay=1.5") as (api, watcher):
        created = _create_pushy(api)
        # It runs 0.3 s after the create; the list taken when the first one is handed
        # over (1.5 s) shows it running, and is handed over at 3 s: destroy it between.
        time.sleep(2.25)
        api.instances.DeleteInstance(
            instance_pb2.DeleteInstanceRequest(id=created.id), metadata=PUSHY
        )
        watcher.wait_for_events(3, timeout=5)
        time.sleep(3.5)  # every list taken before the destroy has been handed over
        events = list(watcher.events)
    assert transitions(events) == [
        (created.id, "START->PENDING", "CREATE"),
        (created.id, "PENDING->RUNNING", "AUTOMATIC"),
        (created.id, "RUNNING->FINISH", "DESTROY"),
    ]


def test_history_older_than_the_age_limit_is_revision_compacted(tmp_path: Path) -> None:
    server = start(tmp_path, "--journal-max-age", "0.5")
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            for _ in range(3):
                api.instances.RebootInstance(
                    instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD
                )
        time.sleep(0.6)  # every event is now older than the limit
        assert server.stop() == 0
        server.restart()  # compaction runs at start; the newest event is always kept
        with grpc.insecure_channel(server.target) as channel:
            f = failure(Watcher(channel, MD, Request(after_revision=0)).wait_for_error())
            assert (f.code, f.reason) == (grpc.StatusCode.OUT_OF_RANGE, "REVISION_COMPACTED")
            assert f.metadata["compacted_revision"] == "2"
            kept = Watcher(channel, MD, Request(after_revision=2))
            assert [e.revision for e in kept.wait_for_events(1)] == [3]
            kept.cancel()
    finally:
        server.kill()


def test_an_absurd_progress_interval_is_invalid_argument_not_a_crash(
    proc: ServerProcess, api: Api
) -> None:
    huge = duration_pb2.Duration(seconds=2**62)
    f = failure(Watcher(api.channel, MD, Request(progress_interval=huge)).wait_for_error())
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PROGRESS_INTERVAL")


def test_a_quiet_scope_with_progress_only_keeps_answering(proc: ServerProcess, api: Api) -> None:
    interval = duration_pb2.Duration(nanos=100_000_000)
    watchers = [Watcher(api.channel, MD, Request(progress_interval=interval)) for _ in range(5)]
    for watcher in watchers:
        watcher.wait_until(
            lambda w: sum(m.kind == Response.KIND_PROGRESS for m in w.messages) >= 8, timeout=10
        )
    api.instances.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD)
    for watcher in watchers:
        assert transitions(watcher.wait_for_events(1)) == [("inst0", "RUNNING->RUNNING", "REBOOT")]
        watcher.cancel()


def test_event_messages_never_exceed_the_largest_message(tmp_path: Path) -> None:
    """Up to 256 events travel in one message: where they would not fit in the largest
    message (here 2 KiB, about eight events), they go in several, each within it, so a
    catch-up, a filtered watch and a snapshot all deliver everything (the stream failed
    with RESOURCE_EXHAUSTED, and failed again on every resume)."""
    limit = 2048
    server = start(tmp_path, "--max-message-bytes", str(limit))
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            created = [create(api) for _ in range(12)]
            for instance_id in created:
                wait_state(api, instance_id, RUNNING)
            head = 2 * len(created)  # each: created pending, then running

            def received(request: instance_pb2.WatchInstanceEventsRequest, count: int) -> Watcher:
                watcher = Watcher(channel, MD, request)
                watcher.wait_until(lambda w: len(w.events) >= count or w.error is not None)
                watcher.cancel()
                assert watcher.error is None or watcher.error.code() == grpc.StatusCode.CANCELLED
                assert len(watcher.messages) > 1
                assert max(m.ByteSize() for m in watcher.messages) <= limit
                return watcher

            everything = received(Request(after_revision=0), head)
            assert [e.revision for e in everything.events] == list(range(1, head + 1))
            running = received(Request(after_revision=0, states=[RUNNING]), len(created))
            assert sorted(e.instance_id for e in running.events) == sorted(created)
            snapshot = received(Request(initial_snapshot=True), len(created) + 4)
            assert {e.instance_id for e in snapshot.events} >= set(created)
    finally:
        server.kill()


def test_resumes_after_a_restart_share_the_journals_recent_events_and_miss_none(
    tmp_path: Path,
) -> None:
    """After a restart the first resume loads the last --watch-buffer events (10 here) for
    every subscriber of the scope; a resume from before them reads the journal as ever.
    Resumes from inside, from before and from the start, while actions go on, each get
    every revision once, in order, up to the newest."""
    server = start(tmp_path, "--watch-buffer", "10")
    reboot = instance_pb2.RebootInstanceRequest(id="inst0")
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            for _ in range(30):
                api.instances.RebootInstance(reboot, metadata=MD)
        assert server.stop() == 0
        server.restart()
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            stop = threading.Event()
            done = [0]

            def act() -> None:
                while not stop.is_set():
                    api.instances.RebootInstance(reboot, metadata=MD)
                    done[0] += 1  # one RUNNING->RUNNING event each
                    time.sleep(0.01)

            actor = threading.Thread(target=act)
            actor.start()
            try:
                watchers = {
                    after: Watcher(channel, MD, Request(after_revision=after))
                    for after in (25, 15, 0, 28)
                }
                time.sleep(0.5)
            finally:
                stop.set()
                actor.join(10)
            head = 30 + done[0]
            assert done[0] > 0
            for after, watcher in watchers.items():
                events = watcher.wait_for_events(head - after)
                watcher.cancel()
                assert [e.revision for e in events] == list(range(after + 1, head + 1)), after
    finally:
        server.kill()


def test_a_slow_listing_is_not_repeated_at_once(tmp_path: Path) -> None:
    """A watched scope whose instance list takes 0.2 s (``limited.list_seconds``; a large
    account takes seconds) is observed no sooner than POLL_PACE times that after each
    observation, though the poll intervals ask for every 0.05 s: listing is a bounded share
    of the server's time and of the cloud's request rate. Read from the server's DEBUG
    "observed" lines (each logged as its poll ends, with what it took)."""
    server = start(tmp_path, "--driver-option", "limited.list_seconds=0.2", "--log-level", "DEBUG")
    try:
        with grpc.insecure_channel(server.target) as channel:
            watcher = Watcher(channel, metadata(driver="limited"))
            time.sleep(3)
            watcher.cancel()
        server.stop()
    finally:
        server.kill()
    polls = []
    for line in server.log().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("message") == "observed":
            ended = datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
            polls.append((ended.timestamp(), record["ms"] / 1000))
    assert len(polls) >= 2, polls
    for (ended, took), (next_ended, next_took) in itertools.pairwise(polls):
        gap = (next_ended - next_took) - ended
        assert gap >= POLL_PACE * took - 0.01, (gap, took, polls)


def test_an_id_used_again_after_its_instance_finished_starts_a_new_history(
    tmp_path: Path,
) -> None:
    """The mock gives a new instance the first free id, so a create right after a delete
    reuses the deleted one's, before the monitor (polling every 5 s here) has seen it go:
    the new instance's events start at START, with no FINISH->START between the two."""
    server = ServerProcess(
        tmp_path, extra_args=["--watch-fast-poll-interval", "5", "--watch-poll-interval", "5"]
    ).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            watcher = Watcher(channel, MD)
            watcher.wait_for_kind(Response.KIND_PROGRESS)
            first = create(api)
            wait_state(api, first, RUNNING)
            api.instances.StopInstance(instance_pb2.StopInstanceRequest(id=first), metadata=MD)
            wait_state(api, first, STOPPED)
            api.instances.DeleteInstance(instance_pb2.DeleteInstanceRequest(id=first), metadata=MD)
            assert create(api) == first, "the test needs the id used again"
            watcher.wait_until(lambda w: sum(e.instance_id == first for e in w.events) >= 6)
            history = transitions([e for e in watcher.events if e.instance_id == first])
            watcher.cancel()
    finally:
        server.kill()
    assert history[-2:] == [
        (first, "STOPPED->FINISH", "DESTROY"),
        (first, "START->PENDING", "CREATE"),
    ], history


def test_journal_reads_never_wait_for_its_writer(tmp_path: Path) -> None:
    """Resuming subscribers read history on a connection and thread of their own: while
    an append holds the writer (its lock taken, its transaction open, not yet committed),
    a read answers at once, with what was committed. A storm of resumes reading far back
    then does not delay the actions that wait for the writer (docs/performance.md)."""
    from deltacloud.server.events.journal import Journal

    journal = Journal(tmp_path / "events.sqlite3", max_events=1000, max_age=3600)
    scope = "s" * 64
    journal.load(scope)
    event = instance_pb2.InstanceEvent(event_id="e", instance_id="inst0")
    journal.append(scope, [event] * 5, {}, True)
    result: list[list[int]] = []

    def read() -> None:
        result.append([e.revision for e in journal.read(scope, 0, 10, 10)])

    with journal._lock:  # the writer, mid-append
        journal._db.execute("BEGIN IMMEDIATE")
        journal._db.execute(
            "INSERT INTO events (scope, revision, created, data) VALUES (?, 6, 0, x'')",
            (scope,),
        )
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(5)
        journal._db.execute("ROLLBACK")
    assert result == [[1, 2, 3, 4, 5]]
    assert journal.compacted(scope) == 0
    journal.close()


def test_an_event_journaled_for_a_call_its_client_gave_up_reaches_every_stream(
    tmp_path: Path,
) -> None:
    """A reboot whose client cancels while its event waits for the journal (its writer
    held up, here by an outside transaction, as by a slow disk): the event is journaled all
    the same, so live streams and resumes get it too, in order, and later events follow
    it without a hole (it used to be journaled but left out of the server's memory:
    streams skipped it and then spun at their last revision)."""
    server = start(tmp_path)
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)

            def reboot() -> None:
                api.instances.RebootInstance(
                    instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD, timeout=10
                )

            live = Watcher(channel, MD, Request(after_revision=0))
            reboot()
            reboot()
            live.wait_for_events(2)
            db = sqlite3.connect(server.data_dir / "events.sqlite3", isolation_level=None)
            try:
                db.execute("BEGIN IMMEDIATE")  # the server's next append waits for this
                given_up = api.instances.RebootInstance.future(
                    instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD, timeout=10
                )
                time.sleep(0.5)  # rebooted; its event waits for the journal
                given_up.cancel()
                time.sleep(0.3)
                db.execute("COMMIT")
            finally:
                db.close()
            reboot()
            reboot()
            events = live.wait_for_events(5)
            live.cancel()
            resumed = Watcher(channel, MD, Request(after_revision=2))
            later = resumed.wait_for_events(3)
            resumed.cancel()
            # The server still answers at once (no stream spinning on the event loop).
            began = time.monotonic()
            api.instances.GetInstance(instance_pb2.GetInstanceRequest(id="inst1"), metadata=MD)
            answered = time.monotonic() - began
    finally:
        server.kill()
    assert [e.revision for e in events] == [1, 2, 3, 4, 5]
    assert [e.revision for e in later] == [3, 4, 5]
    assert transitions(events) == [("inst0", "RUNNING->RUNNING", "REBOOT")] * 5
    assert answered < 2.0
