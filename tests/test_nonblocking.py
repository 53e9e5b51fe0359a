"""Driver methods marked ``nonblocking`` run on the event loop; everything else, and any
nonblocking method that finds it must block after all (WouldBlock), runs on a worker.
Also the mock's in-memory read snapshots that make its reads nonblocking: coherent with
every commit, this process's or another's."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deltacloud.drivers import (
    AuthenticationError,
    BaseDriver,
    CallContext,
    Credentials,
    DriverConfig,
    DriverRegistry,
    WouldBlock,
    is_nonblocking,
    nonblocking,
)
from deltacloud.drivers import models as m
from deltacloud.drivers.mock import MockDriver
from deltacloud.drivers.mock.store import OTHER_WRITERS_LAG, Store
from deltacloud.server.config import ServerConfig
from deltacloud.server.gateway import Gateway

MOCK = CallContext(Credentials("mockuser", "mockpassword"), "default")
ON_LOOP = CallContext(Credentials("mockuser", "mockpassword"), "default", on_event_loop=True)


# ---- the SDK ---------------------------------------------------------------------------


def test_nonblocking_marks_functions_and_bound_methods() -> None:
    class Probe:
        @nonblocking
        def fast(self) -> None: ...

        def slow(self) -> None: ...

    assert is_nonblocking(Probe.fast) and is_nonblocking(Probe().fast)
    assert not is_nonblocking(Probe.slow) and not is_nonblocking(Probe().slow)


def test_leave_event_loop_raises_only_on_the_loop() -> None:
    MOCK.leave_event_loop()  # on a worker: nothing happens
    with pytest.raises(WouldBlock):
        ON_LOOP.leave_event_loop()


# ---- the gateway -----------------------------------------------------------------------


class Probe(BaseDriver):
    """Records the thread each method ran on; ``realm`` "blocks" asks the nonblocking
    method to leave the loop."""

    name = "probe"
    collections = frozenset({"realms"})
    ran: list[tuple[str, str, bool]] = []
    authenticate_nonblocking = True

    def authenticate(self, ctx: CallContext) -> None:
        self.ran.append(("authenticate", threading.current_thread().name, ctx.on_event_loop))
        if ctx.credentials.user != "probe":
            raise AuthenticationError("not probe")

    @nonblocking
    def list_realms(self, ctx: CallContext, filters: Any) -> list[m.Realm]:
        self.ran.append(("list_realms", threading.current_thread().name, ctx.on_event_loop))
        if filters.get("id") == "blocks":
            ctx.leave_event_loop()
        if filters.get("id") == "slow":
            time.sleep(0.02)  # what a method marked nonblocking must not do
        return [m.Realm("r1")]

    def get_realm(self, ctx: CallContext, realm_id: str) -> m.Realm:
        self.ran.append(("get_realm", threading.current_thread().name, ctx.on_event_loop))
        return m.Realm(realm_id)


class NonblockingAuthProbe(Probe):
    name = "probe-fast-auth"

    @nonblocking
    def authenticate(self, ctx: CallContext) -> None:
        super().authenticate(ctx)


class FakeContext:
    def __init__(self, driver: str, user: str = "probe") -> None:
        import base64

        token = base64.b64encode(f"{user}:pw".encode()).decode()
        self.metadata = (("x-deltacloud-driver", driver), ("authorization", f"Basic {token}"))

    def invocation_metadata(self) -> Any:
        return self.metadata

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def time_remaining(self) -> float | None:
        return None


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    registry = DriverRegistry({"probe": Probe, "probe-fast-auth": NonblockingAuthProbe})
    gw = Gateway(ServerConfig(data_dir=tmp_path, driver="probe"), registry)
    Probe.ran = []
    yield gw
    gw.close()


def run(gateway: Gateway, driver: str, method: str, *args: Any, user: str = "probe") -> Any:
    async def go() -> Any:
        call = await gateway.open(FakeContext(driver, user), "realms")  # type: ignore[arg-type]
        return await call.run(getattr(call.driver, method), *args)

    return asyncio.run(go())


def test_nonblocking_method_with_nonblocking_authenticate_runs_on_the_loop(
    gateway: Gateway,
) -> None:
    loop_thread = threading.current_thread().name
    run(gateway, "probe-fast-auth", "list_realms", {})
    assert Probe.ran == [
        ("authenticate", loop_thread, True),
        ("list_realms", loop_thread, True),
    ]


def test_blocking_authenticate_sends_even_a_nonblocking_method_to_a_worker(
    gateway: Gateway,
) -> None:
    run(gateway, "probe", "list_realms", {})
    (auth, method) = Probe.ran
    assert auth[1].startswith("driver") and method[1].startswith("driver")
    assert not auth[2] and not method[2]


def test_blocking_method_runs_on_a_worker(gateway: Gateway) -> None:
    run(gateway, "probe-fast-auth", "get_realm", "r9")
    assert Probe.ran[-1][0] == "get_realm" and Probe.ran[-1][1].startswith("driver")


def test_would_block_runs_the_method_again_on_a_worker(gateway: Gateway) -> None:
    loop_thread = threading.current_thread().name
    realms = run(gateway, "probe-fast-auth", "list_realms", {"id": "blocks"})
    assert [r.id for r in realms] == ["r1"]
    calls = [(name, thread == loop_thread, on_loop) for name, thread, on_loop in Probe.ran]
    assert calls == [
        ("authenticate", True, True),
        ("list_realms", True, True),  # left the loop...
        ("authenticate", False, False),  # ...and ran again, checked again, on a worker
        ("list_realms", False, False),
    ]


def test_a_slow_nonblocking_method_is_reported_once(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="deltacloud.server.gateway"):
        for _ in range(3):
            run(gateway, "probe-fast-auth", "list_realms", {"id": "slow"})
        run(gateway, "probe-fast-auth", "list_realms", {})
    slow = [r for r in caplog.records if "held the event loop" in r.getMessage()]
    assert len(slow) == 1
    fields = slow[0].fields  # type: ignore[attr-defined]
    assert fields["method"].endswith("list_realms") and fields["ms"] >= 20


def test_wrong_credentials_are_refused_inline_before_the_method(gateway: Gateway) -> None:
    with pytest.raises(AuthenticationError):
        run(gateway, "probe-fast-auth", "list_realms", {}, user="intruder")
    assert [name for name, _, _ in Probe.ran] == ["authenticate"]


# ---- the mock's read snapshots ---------------------------------------------------------

TABLES = [("instance", "mockuser"), ("volume", "mockuser"), ("address", "mockuser")]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[MockDriver]:
    d = MockDriver("default", DriverConfig(tmp_path, {"pending_delay": "0.2"}))
    yield d
    d.close()


def test_mock_reads_are_served_on_the_loop_once_in_memory(driver: MockDriver) -> None:
    assert is_nonblocking(driver.get_instance) and is_nonblocking(driver.list_instances)
    with pytest.raises(WouldBlock):  # nothing in memory yet: reading SQLite is for workers
        driver.get_instance(ON_LOOP, "inst0")
    assert driver.get_instance(MOCK, "inst0").id == "inst0"  # a worker loads the tables
    assert driver.get_instance(ON_LOOP, "inst0").id == "inst0"
    on_worker = driver.list_instances(MOCK, {})
    assert driver.list_instances(ON_LOOP, {}) == on_worker and len(on_worker) >= 2


def test_a_write_is_seen_by_the_next_read(driver: MockDriver) -> None:
    driver.get_instance(MOCK, "inst0")
    driver.stop_instance(MOCK, "inst0")
    # The commit moved the database: memory is stale, so the loop must not answer.
    with pytest.raises(WouldBlock):
        driver.get_instance(ON_LOOP, "inst0")
    assert driver.get_instance(MOCK, "inst0").state.name in ("STOPPING", "STOPPED")
    assert driver.get_instance(ON_LOOP, "inst0").state.name in ("STOPPING", "STOPPED")


def test_an_automatic_transition_due_is_written_by_a_worker(driver: MockDriver) -> None:
    image = driver.list_images(MOCK, {})[0]
    created = driver.create_instance(MOCK, m.CreateInstance(image_id=image.id))[0]
    assert driver.get_instance(MOCK, created.id).state.name == "PENDING"
    assert driver.get_instance(ON_LOOP, created.id).state.name == "PENDING"
    time.sleep(0.25)  # pending_delay passed: reading it means writing RUNNING
    with pytest.raises(WouldBlock):
        driver.get_instance(ON_LOOP, created.id)
    assert driver.get_instance(MOCK, created.id).state.name == "RUNNING"


def test_commits_of_another_process_are_seen_within_the_lag(
    tmp_path: Path, driver: MockDriver
) -> None:
    driver.get_instance(MOCK, "inst0")
    assert driver.get_instance(ON_LOOP, "inst0").state.name == "RUNNING"
    # Another server on the same fake cloud (its own Store on the same directory).
    other = MockDriver("default", DriverConfig(tmp_path, {}))
    try:
        other.stop_instance(MOCK, "inst0")
    finally:
        other.close()
    time.sleep(2 * OTHER_WRITERS_LAG)  # this process asks SQLite again after the lag
    with pytest.raises(WouldBlock):
        driver.get_instance(ON_LOOP, "inst0")
    assert driver.get_instance(MOCK, "inst0").state.name in ("STOPPING", "STOPPED")


def test_snapshot_does_not_wait_for_a_thread_holding_the_cache(tmp_path: Path) -> None:
    store = Store(tmp_path, lambda tx: None)
    try:
        store.snapshot(TABLES)
        holding = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with store._cache_lock:
                holding.set()
                release.wait(5)

        thread = threading.Thread(target=hold)
        thread.start()
        holding.wait(5)
        try:
            with pytest.raises(WouldBlock):
                store.snapshot(TABLES, wait=False)
        finally:
            release.set()
            thread.join()
        assert store.snapshot(TABLES, wait=False).list("instance", "mockuser") == []
    finally:
        store.close()


def test_snapshot_tables_are_read_at_one_version(tmp_path: Path) -> None:
    """A table loaded after another commit is not mixed with tables cached before it."""
    store = Store(tmp_path, lambda tx: None)
    try:
        with store.transaction() as tx:
            tx.put("instance", "u", "i1", {"id": "i1"})
        first = store.snapshot([("instance", "u")])
        assert [r["id"] for r in first.list("instance", "u")] == ["i1"]
        with store.transaction() as tx:
            tx.put("instance", "u", "i2", {"id": "i2"})
            tx.put("volume", "u", "v1", {"id": "v1", "instance_id": "i2"})
        both = store.snapshot([("instance", "u"), ("volume", "u")])
        assert [r["id"] for r in both.list("instance", "u")] == ["i1", "i2"]
        assert [r["id"] for r in both.list("volume", "u")] == ["v1"]
    finally:
        store.close()


def test_every_mock_read_is_answered_on_the_loop_once_in_memory(driver: MockDriver) -> None:
    reads = {
        "list_realms": ({},),
        "get_realm": ("us",),
        "list_hardware_profiles": ({},),
        "get_hardware_profile": ("m1-small",),
        "list_images": ({},),
        "get_image": ("img1",),
        "list_instances": ({},),
        "get_instance": ("inst0",),
        "list_keys": ({},),
        "get_key": ("test-key",),
        "get_address": ("192.168.0.1",),
        "list_storage_volumes": ({},),
        "get_storage_volume": ("vol1",),
        "list_storage_snapshots": ({},),
        "get_storage_snapshot": ("snap1",),
        "list_buckets": ({},),
        "get_bucket": ("bucket1",),
        "list_blobs": ("bucket1", {}),
        "get_blob": ("bucket1", "blob1"),
        "list_addresses": ({},),
        "list_firewalls": ({},),
        "list_load_balancers": ({},),
    }
    for name, args in reads.items():
        method = getattr(driver, name)
        assert is_nonblocking(method), name
        on_worker = method(MOCK, *args)
        assert method(ON_LOOP, *args) == on_worker, name


def test_a_hanging_realm_leaves_the_loop_instead_of_sleeping_on_it(driver: MockDriver) -> None:
    started = time.monotonic()
    with pytest.raises(WouldBlock):
        driver.get_realm(ON_LOOP, "hang")
    assert time.monotonic() - started < 1.0
