"""The gateway between servicers and drivers: resolves each call's driver, provider and
credentials, keeps one driver instance per (driver, provider), and runs driver methods in a
bounded thread pool so the event loop never blocks on a backend."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import grpc

from deltacloud.drivers import (
    BackendOutcome,
    BackendTimeoutError,
    BaseDriver,
    CallContext,
    CollectionNotSupportedError,
    DriverConfig,
    DriverError,
    DriverRegistry,
    OperationNotSupportedError,
    WouldBlock,
    is_nonblocking,
    nonblocking,
)

from .config import ServerConfig
from .context import DRIVER_KEY, PROVIDER_KEY, parse_metadata
from .errors import ApiError, code_of
from .logs import redact
from .metrics import Counter, Metrics
from .turns import Turns

T = TypeVar("T")
Pool = Literal["calls", "uploads", "downloads", "polls"]
log = logging.getLogger("deltacloud.server.gateway")

#: A nonblocking method that holds the event loop longer than this is reported (once).
SLOW_INLINE = 0.005

#: Driver instances kept for providers their driver does not list (an ec2 ``REGION@URL``
#: provider, when the server accepts them): past this many, the oldest is dropped (its
#: running calls finish with it; a later call builds it again).
MAX_UNLISTED_PROVIDERS = 256

#: The current call's driver and provider, for error metadata and logs.
current_scope: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("current_scope")


@dataclass
class Call:
    """One RPC's resolved backend: the driver instance and the driver's call context."""

    gateway: Gateway
    driver: BaseDriver
    ctx: CallContext
    #: The credentials are checked by the first driver call, in the same worker hop.
    unauthenticated: bool = False
    #: The call's scope (driver, provider, credentials) as Gateway.turns keys it; made on
    #: first use.
    _scope: str | None = None

    @property
    def driver_class(self) -> type[BaseDriver]:
        return type(self.driver)

    def turn(self, kind: str, limit: int) -> contextlib.AbstractAsyncContextManager[None]:
        """This call's turn among its scope's work of ``kind``: at most ``limit`` at once,
        the others wait in order (server/turns.py)."""
        if self._scope is None:
            self._scope = self.gateway.scope_of(self.driver.name, self.ctx)
        return self.gateway.turns.turn(f"{kind}/{self._scope}", limit)

    async def run(self, fn: Callable[..., T], *args: Any, pool: Pool = "calls") -> T:
        """Run a driver method with this call's context: off the event loop, unless it is
        marked nonblocking (and so is ``authenticate`` when the credentials are not checked
        yet), in which case it runs here unless it raises WouldBlock. A call whose deadline
        passed while it waited for a worker is not started at all; the first one checks
        the credentials before anything else. ``pool``: the workers it runs on (see
        Gateway.run_blocking)."""
        began = time.perf_counter()
        code = "OK"
        try:
            check = self.driver.authenticate if self.unauthenticated else None
            result: T
            if pool == "calls" and is_nonblocking(fn) and (check is None or is_nonblocking(check)):
                ctx = self.ctx
                inline = CallContext(
                    ctx.credentials, ctx.provider, ctx.deadline, True, ctx.request_id
                )
                try:
                    result = _unless_expired(check, fn, inline, *args)
                except WouldBlock:
                    pass
                else:
                    self.unauthenticated = False
                    return result
                finally:
                    self.gateway.check_inline_time(fn, time.perf_counter() - began)
            if pool == "calls":
                # One scope holds at most --calls-per-scope workers: a user whose cloud
                # stalls, or who floods the server, leaves the others workers.
                async with self.turn("call", self.gateway.config.calls_per_scope):
                    result = await self.gateway.run_blocking(
                        _unless_expired, check, fn, self.ctx, *args
                    )
            else:
                result = await self.gateway.run_blocking(
                    _unless_expired, check, fn, self.ctx, *args, pool=pool
                )
            self.unauthenticated = False
            return result
        except BaseException as exc:
            code = _code_name(exc)
            raise
        finally:
            self.gateway.observe_driver_call(
                self.driver.name, fn, code, time.perf_counter() - began
            )

    @property
    def echo(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return ((DRIVER_KEY, self.driver.name), (PROVIDER_KEY, self.ctx.provider))

    async def echo_first(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Streams: send the driver/provider echo as initial metadata, before any message."""
        await context.send_initial_metadata(self.echo)

    async def authenticate(self) -> None:
        """Check the credentials now, when server-side work (not a driver call) would come
        first otherwise."""
        if self.unauthenticated:
            await self.run(_nothing)


@nonblocking
def _nothing(ctx: CallContext) -> None:
    """The operation of a call that only checks credentials."""


def _code_name(exc: BaseException) -> str:
    """The status a driver call's failure becomes (errors.to_api_error's mapping)."""
    if isinstance(exc, DriverError):
        return code_of(exc).name
    if isinstance(exc, ApiError):
        return exc.code.name
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    return "INTERNAL"


def _unless_expired(
    check: Callable[[CallContext], None] | None,
    fn: Callable[..., T],
    ctx: CallContext,
    *args: Any,
) -> T:
    if check is not None:
        check(ctx)
    if ctx.deadline is not None and ctx.time_left() == 0:
        raise BackendTimeoutError(
            "the call's deadline passed before the driver could be called",
            reason="DEADLINE_PASSED_IN_QUEUE",
        )
    return fn(ctx, *args)


class _Meter:
    """A driver's BackendMeter: its requests to the cloud, counted for /metrics."""

    __slots__ = ("counter", "driver")

    def __init__(self, driver: str, counter: Counter) -> None:
        self.driver, self.counter = driver, counter

    def attempt(self, service: str, operation: str, outcome: BackendOutcome) -> None:
        self.counter.inc(self.driver, service, operation, outcome)


class _Work:
    """One piece of driver work on a pool, counted as queued, then busy, then done; work
    cancelled before a worker took it (its caller gone, or the server stopping) leaves the
    queue count too."""

    __slots__ = ("args", "fn", "gateway", "pool", "started")

    def __init__(self, gateway: Gateway, pool: Pool, fn: Callable[..., Any], args: Any) -> None:
        self.gateway, self.pool, self.fn, self.args = gateway, pool, fn, args
        self.started = False

    def run(self) -> Any:
        gateway = self.gateway
        with gateway._running_lock:
            if not self.started:
                self.started = True
                gateway._queued[self.pool] -= 1
            gateway._busy[self.pool] += 1
        try:
            return self.fn(*self.args)
        finally:
            with gateway._running_lock:
                gateway._busy[self.pool] -= 1

    def settle(self, _future: object) -> None:
        with self.gateway._running_lock:
            if not self.started:  # never ran
                self.started = True
                self.gateway._queued[self.pool] -= 1


@dataclass
class Gateway:
    config: ServerConfig
    registry: DriverRegistry = field(default_factory=DriverRegistry)
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        config = self.config
        #: Each kind of work has its workers, so one kind cannot take those the others need:
        #: an upload holds one for as long as its client takes to send; a download holds one
        #: for each piece it reads from the cloud; watch monitors poll on theirs.
        self.pool_sizes: dict[Pool, int] = {
            "calls": config.workers,
            "uploads": config.upload_workers,
            "downloads": config.download_workers,
            "polls": config.poll_workers,
        }
        names = {"calls": "driver", "uploads": "upload", "downloads": "download", "polls": "poll"}
        self.executors: dict[Pool, ThreadPoolExecutor] = {
            pool: ThreadPoolExecutor(size, thread_name_prefix=names[pool])
            for pool, size in self.pool_sizes.items()
        }
        self._drivers: dict[tuple[str, str], BaseDriver] = {}
        self._resolved: dict[tuple[str, str], tuple[type[BaseDriver], str]] = {}
        #: Keys of ``_drivers`` whose provider the driver does not list, oldest first.
        self._unlisted: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._warned_slow: set[str] = set()
        self._lock = threading.Lock()
        #: Work running on a worker now, and waiting for one, by pool (the shutdown does
        #: not wait past its grace for driver calls still running then).
        self._busy: dict[Pool, int] = dict.fromkeys(self.executors, 0)
        self._queued: dict[Pool, int] = dict.fromkeys(self.executors, 0)
        self._running_lock = threading.Lock()
        #: Turns of the scopes' work (driver calls; transfers): server/turns.py.
        self.turns = Turns()
        self._scope_key = os.urandom(32)  # this process's: the keys live in memory only
        self._register_metrics()

    def scope_of(self, driver: str, ctx: CallContext) -> str:
        """A call's scope (driver, provider, credentials) as a keyed hash: the turns tell
        scopes apart without keeping credentials."""
        creds = ctx.credentials
        material = "\0".join((driver, ctx.provider, creds.user, creds.password)).encode()
        return hashlib.blake2b(material, key=self._scope_key, digest_size=16).hexdigest()

    def _register_metrics(self) -> None:
        sizes = self.pool_sizes

        def by_pool(counts: dict[Pool, int]) -> list[tuple[dict[str, str], float]]:
            with self._running_lock:
                return [({"pool": pool}, float(count)) for pool, count in counts.items()]

        metrics = self.metrics
        metrics.add(
            "deltacloud_workers",
            "gauge",
            "Threads of each worker pool (--workers, --upload-workers, --download-workers, "
            "--poll-workers).",
            lambda: [({"pool": pool}, float(size)) for pool, size in sizes.items()],
        )
        metrics.add(
            "deltacloud_workers_busy",
            "gauge",
            "Workers of each pool running driver work now.",
            lambda: by_pool(self._busy),
        )
        metrics.add(
            "deltacloud_workers_queued",
            "gauge",
            "Driver work waiting for a worker of its pool.",
            lambda: by_pool(self._queued),
        )
        metrics.add(
            "deltacloud_turns_waiting",
            "gauge",
            "Work waiting for its scope's turn (--calls-per-scope, --transfers-per-scope), by "
            "kind: call, upload, download.",
            lambda: [
                ({"kind": kind}, float(self.turns.waiting().get(kind, 0)))
                for kind in ("call", "upload", "download")
            ],
        )
        self._driver_calls = metrics.counter(
            "deltacloud_driver_calls_total",
            "Driver method calls made for RPCs, by driver, method and the status code their "
            "outcome becomes (OK; UNAVAILABLE: the cloud failed or throttled; ...).",
            ["driver", "method", "code"],
        )
        self._backend_attempts = metrics.counter(
            "deltacloud_backend_attempts_total",
            "Requests drivers sent to their clouds, every retry included, by driver, the "
            "cloud's service and operation, and outcome (ok, throttled, client_error, "
            "server_error, network_error).",
            ["driver", "service", "operation", "outcome"],
        )
        self._driver_seconds = metrics.histogram(
            "deltacloud_driver_call_seconds",
            "Seconds a driver method call took, waiting for a worker included: on a cloud "
            "driver, mostly the cloud's answer.",
            ["driver", "method"],
        )
        metrics.gauge(
            "deltacloud_driver_instances",
            "Driver instances kept (one per driver and provider used).",
            lambda: self.driver_instances,
        )

    def observe_driver_call(
        self, driver: str, fn: Callable[..., Any], code: str, seconds: float
    ) -> None:
        """Count a driver method call of an RPC (on the event loop)."""
        method = "authenticate" if fn is _nothing else getattr(fn, "__name__", "?")
        self._driver_calls.inc(driver, method, code)
        self._driver_seconds.observe(seconds, driver, method)

    def check_inline_time(self, fn: Callable[..., Any], seconds: float) -> None:
        """Warn (once per method) when a method marked nonblocking held the event loop
        longer than SLOW_INLINE: every other call waited meanwhile."""
        if seconds < SLOW_INLINE:
            return
        name = getattr(fn, "__qualname__", repr(fn))
        if name in self._warned_slow:
            return
        self._warned_slow.add(name)
        log.warning(
            "a @nonblocking driver method held the event loop",
            extra={
                "fields": {
                    "method": name,
                    "ms": round(seconds * 1000, 1),
                    "hint": "it must answer from memory; leave the loop (WouldBlock) otherwise",
                }
            },
        )

    async def run_blocking(self, fn: Callable[..., T], *args: Any, pool: Pool = "calls") -> T:
        """Run ``fn`` on a worker of ``pool``: "calls" (``--workers``), "uploads" (an
        upload reading its client's stream, ``--upload-workers``), "downloads" (a piece of
        a download read from the cloud, ``--download-workers``) or "polls" (a watch
        monitor's observation, ``--poll-workers``). Slow clients or a slow cloud then delay
        only their own kind of work."""
        loop = asyncio.get_running_loop()
        work = _Work(self, pool, fn, args)
        with self._running_lock:
            self._queued[pool] += 1
        future = loop.run_in_executor(self.executors[pool], work.run)
        future.add_done_callback(work.settle)
        result: T = await future
        return result

    @property
    def running_calls(self) -> int:
        """Driver calls on a worker now (an abandoned call's coroutine may be gone while
        its thread still waits on the backend)."""
        with self._running_lock:
            return sum(self._busy.values())

    def driver_class(self, name: str) -> type[BaseDriver]:
        return self.registry.load(name)

    def instance(self, cls: type[BaseDriver], provider: str) -> BaseDriver:
        """The driver instance of (cls, provider), built on first use (may open files).
        Instances of the providers a driver lists are kept for the server's life; of
        others, the last MAX_UNLISTED_PROVIDERS (clients name those: the map must not grow
        with whatever they send)."""
        key = (cls.name, provider)
        with self._lock:
            driver = self._drivers.get(key)
            if driver is None:
                data_dir = self.config.data_dir
                options = self.config.options_for(cls.name)
                meter = _Meter(cls.name, self._backend_attempts)
                driver = cls(provider, DriverConfig(data_dir, options, meter))
                self._drivers[key] = driver
                if provider not in {listed.id for listed in cls.providers()}:
                    self._unlisted[key] = None
                    while len(self._unlisted) > MAX_UNLISTED_PROVIDERS:
                        # Dropped, not closed: calls still running may be using it.
                        oldest, _ = self._unlisted.popitem(last=False)
                        del self._drivers[oldest]
            return driver

    @property
    def driver_instances(self) -> int:
        """Driver instances kept now."""
        with self._lock:
            return len(self._drivers)

    def resolve_names(self, driver_name: str, provider: str) -> tuple[type[BaseDriver], str]:
        """Apply the server's defaults and check the driver and provider exist (answers
        are kept: they depend only on the names and the installed drivers)."""
        key = (driver_name, provider)
        known = self._resolved.get(key)
        if known is not None:
            return known
        resolved = self._resolve(driver_name, provider)
        if len(self._resolved) >= 4096:  # names come from clients: keep the map bounded
            self._resolved.clear()
        self._resolved[key] = resolved
        return resolved

    def _resolve(self, driver_name: str, provider: str) -> tuple[type[BaseDriver], str]:
        name = driver_name or self.config.driver
        cls = self.registry.load(name)
        if not provider:
            if name == self.config.driver and self.config.provider:
                provider = self.config.provider
            else:
                provider = cls.default_provider()
        shown = redact(provider)
        if shown != provider:
            # It would be echoed, logged and journaled (scopes are named by it): refused
            # before it goes anywhere.
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "CREDENTIALS_IN_PROVIDER",
                f"provider {shown!r} holds what looks like a credential (user:password@ in "
                "a URL, an access key id): credentials go in the authorization metadata only",
                {"driver": name, "provider": shown},
            )
        if not cls.accepts_provider(provider):
            known = [p.id for p in cls.providers()]
            raise ApiError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "UNKNOWN_PROVIDER",
                f"driver {name!r} has no provider {provider!r}; known: {', '.join(known)}",
                {"driver": name, "provider": provider, "known_providers": known},
            )
        return cls, provider

    async def open(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        collection: str | None,
        operation: str = "list",
        *,
        authenticate: bool = True,
    ) -> Call:
        """Resolve the call's driver, provider and credentials; refuse collections and
        operations the driver lacks; check credentials before any driver work; echo the
        driver and provider in the response's initial metadata."""
        requested = parse_metadata(context.invocation_metadata(), credentials=authenticate)
        cls, provider = self.resolve_names(requested.driver, requested.provider)
        scope = {"driver": cls.name, "provider": provider}
        current_scope.set(scope)
        echo = ((DRIVER_KEY, cls.name), (PROVIDER_KEY, provider))
        # Trailing metadata travels with the status (errors too: see errors.abort) at no
        # cost; streams send it as initial metadata too (Call.echo_first).
        context.set_trailing_metadata(echo)
        if collection is not None:
            if collection not in cls.collections:
                raise CollectionNotSupportedError(cls.name, collection)
            if not cls.supports(collection, operation):
                raise OperationNotSupportedError(cls.name, collection, operation)
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        ctx = CallContext(requested.credentials, provider, deadline)
        driver = self._drivers.get((cls.name, provider))
        if driver is None:  # the first call builds it (it may open files): off the loop
            driver = await self.run_blocking(self.instance, cls, provider)
        return Call(self, driver, ctx, unauthenticated=authenticate)

    def close(self) -> None:
        with self._lock:
            drivers = list(self._drivers.values())
            self._drivers.clear()
        for driver in drivers:
            try:
                driver.close()
            except Exception:
                log.exception("closing driver %s failed", driver.name)
        for executor in self.executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
