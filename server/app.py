"""Builds and runs the grpc.aio server: collection services, reflection, health, limits,
TLS, and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import resource
import signal
import socket
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from deltacloud.drivers import DriverRegistry
from deltacloud.drivers.registry import load_driver_class

from . import metrics, reflection
from .config import ServerConfig, package_version
from .events.hub import EventHub, EventSettings
from .gateway import Gateway
from .pagination import PageTokens
from .requests import RequestLog
from .servicers import SERVICE_NAMES, register_all
from .tls import CertificateFiles

log = logging.getLogger("deltacloud.server")

T = TypeVar("T")


class HealthServicer(health.aio.HealthServicer):
    """The standard health service, whose Watch streams end (UNAVAILABLE) once they have
    said NOT_SERVING at shutdown: a client watching health (gRPC's client-side health
    checking keeps such a stream on every connection) held the server for the whole grace
    period, with nothing else in flight."""

    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, int] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._changed = asyncio.Condition()
        self._ending = False

    async def set(self, service: str, status: int) -> None:
        await super().set(service, status)
        async with self._changed:
            if not self._ending:
                self._statuses[service] = status
                self._changed.notify_all()

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        async with self._changed:
            self._ending = True
            self._statuses = dict.fromkeys(
                self._statuses, health_pb2.HealthCheckResponse.NOT_SERVING
            )
            self._changed.notify_all()

    def _status(self, service: str) -> int:
        return self._statuses.get(service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)

    async def Watch(
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.aio.ServicerContext[
            health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        ],
    ) -> None:
        service, sent = request.service, None

        def news(last: int | None) -> Callable[[], bool]:
            return lambda: self._ending or self._status(service) != last

        while True:
            async with self._changed:
                await self._changed.wait_for(news(sent))
                status, ending = self._status(service), self._ending
            if status != sent:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                sent = status
            if ending:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")


@dataclass
class RunningServer:
    server: grpc.aio.Server
    gateway: Gateway
    events: EventHub
    requests: RequestLog
    health: HealthServicer
    port: int
    data_dir_lock: TextIO
    #: The Prometheus endpoint (--metrics-listen), if any.
    metrics_server: asyncio.Server | None = None

    @property
    def metrics_address(self) -> str | None:
        """HOST:PORT the metrics endpoint listens on (the port it bound, with port 0)."""
        if self.metrics_server is None:
            return None
        host, port = self.metrics_server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        # Watch streams end first, each with its last revision, so clients resume cleanly;
        # then in-flight calls get the grace period, their actions still journaled; then
        # the monitors stop and the journal closes.
        await self.events.end_streams()
        await self.server.stop(grace)
        await self.requests.close()
        await self.events.close()
        self.gateway.close()
        if self.metrics_server is not None:  # scrapable until the end
            self.metrics_server.close()
        self.data_dir_lock.close()


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    # Renewed files are served to new connections without a restart (server/tls.py).
    return CertificateFiles(config.tls_cert, config.tls_key, config.tls_client_ca).credentials()


def _lock_data_dir(data_dir: Path) -> TextIO:
    """One server per data directory: the event journal's revisions are assigned by one
    process. The lock dies with the process, kill -9 included. A new directory is made
    private (0700): it holds users' data (the mock's blobs and instances, kept answers)."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle = (data_dir / "server.lock").open("a+")
    except OSError as exc:  # said "[Errno 17] File exists: '...'", naming no flag
        if data_dir.exists() and not data_dir.is_dir():
            reason = "not a directory"
        else:
            reason = exc.strerror or str(exc)
            if exc.filename and Path(exc.filename) != data_dir:
                reason += f" ({exc.filename})"
        raise RuntimeError(f"--data-dir {data_dir}: {reason}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise RuntimeError(
            f"data directory {data_dir} is in use by another deltacloud-server (pid {owner}); "
            "give each server its own --data-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _open_store(data_dir: Path, name: str, open_it: Callable[[], T]) -> T:
    """``open_it()``, a SQLite file of the data directory; its failure names the file (it
    said "unable to open database file", or "file is not a database", and nothing more)."""
    try:
        return open_it()
    except sqlite3.Error as exc:
        raise RuntimeError(f"--data-dir {data_dir}: {name}: {exc}") from None


async def _build_configured_drivers(gateway: Gateway, config: ServerConfig) -> None:
    optioned = {key.partition(".")[0] for key in config.driver_options} - {config.driver}
    names = [config.driver, *sorted(optioned)]
    for name in names:
        provider = config.provider if name == config.driver else ""
        cls, provider = gateway.resolve_names(name, provider)
        try:
            await gateway.run_blocking(gateway.instance, cls, provider)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"driver {name!r} refused its options: {exc}") from None


def keepalive_options(config: ServerConfig) -> list[tuple[str, int]]:
    """HTTP/2 keepalive both ways (docs/operations.md): the server pings every connection
    every ``keepalive_time`` seconds, calls or not, and closes it when the answer does not
    come within ``keepalive_timeout``, so the watches of a client that vanished end
    (and stop its scope's polling); clients may ping every ``keepalive_min_client_interval``
    seconds, with or without calls in flight (gRPC's default allows one ping per 5 minutes,
    and none without calls, and answers more with GOAWAY)."""
    return [
        ("grpc.keepalive_time_ms", round(config.keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", round(config.keepalive_timeout * 1000)),
        # gRPC core waits for a ping's answer for ping_timeout_ms (a minute by default)
        # whatever keepalive_timeout_ms says (grpc/grpc#34647): both, or the timeout is 60 s.
        ("grpc.http2.ping_timeout_ms", round(config.keepalive_timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            round(config.keepalive_min_client_interval * 1000),
        ),
    ]


async def start(config: ServerConfig, registry: DriverRegistry | None = None) -> RunningServer:
    lock = _lock_data_dir(config.data_dir)
    if config.port_file is not None:
        # "Once serving": the last run's file, its port gone, said so from the start on.
        # Once the data directory is ours: a second server refused must leave the file be.
        with contextlib.suppress(OSError):
            config.port_file.unlink(missing_ok=True)
    if registry is None:
        extra = [load_driver_class(path) for path in config.driver_classes]
        registry = DriverRegistry({cls.name: cls for cls in extra})
    gateway = Gateway(config, registry)
    # Fail at start, not at the first call, when the default driver is unknown or broken,
    # or a driver's options are malformed: build the default driver, and every driver given
    # options, now (off the loop: a driver may open files).
    await _build_configured_drivers(gateway, config)
    if config.page_token_key is not None:
        tokens = PageTokens.from_file(config.page_token_key)
    else:
        tokens = PageTokens.from_data_dir(config.data_dir)
    settings = EventSettings(
        poll_interval=config.watch_poll_interval,
        fast_poll_interval=config.watch_fast_poll_interval,
        progress_interval=config.watch_progress_interval,
        buffer=config.watch_buffer,
        max_events=config.journal_max_events,
        max_age=config.journal_max_age,
    )
    events = _open_store(
        config.data_dir,
        "events.sqlite3",
        lambda: EventHub(gateway, config.data_dir, settings),
    )
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", 0),
            # A reconnect storm of watchers after a restart must not be shed: gRPC core
            # drops calls the application has not picked up beyond these (1000 and 3000 by
            # default), while the event loop works through them.
            ("grpc.server.max_pending_requests", 20_000),
            ("grpc.server.max_pending_requests_hard_limit", 50_000),
            *keepalive_options(config),
        ],
    )
    metrics_server: asyncio.Server | None = None
    try:
        requests = _open_store(
            config.data_dir,
            "requests.sqlite3",
            lambda: RequestLog(
                config.data_dir / "requests.sqlite3",
                events.key_of,
                config.request_id_retention,
                gateway.metrics,
            ),
        )
        register_all(server, gateway, tokens, events, requests)
        health_servicer = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable(server, [*SERVICE_NAMES, health.SERVICE_NAME])
        credentials = _credentials(config)
        # gRPC says only "Failed to bind to address", its reason on a line of its own;
        # and it takes a unix socket's path from a running server (unlinks it, binds anew).
        problem = listen_problem(config.listen)
        if problem:
            raise OSError(f"cannot listen on {config.listen} (--listen): {problem}")
        try:
            if credentials is None:
                port = server.add_insecure_port(config.listen)
            else:
                port = server.add_secure_port(config.listen, credentials)
        except RuntimeError:
            port = 0
        if port == 0:
            raise OSError(f"cannot listen on {config.listen} (--listen): gRPC could not bind it")
        if config.metrics_listen:
            build = {"version": package_version(), "grpcio": grpc.__version__}
            gateway.metrics.add(
                "deltacloud_build_info",
                "gauge",
                "Always 1; the labels say which server this is.",
                lambda: [(build, 1.0)],
            )
            files = None
            if config.metrics_scheme == "https" and config.tls_cert and config.tls_key:
                # Files of its own: the gRPC server's reload their certificate on their own.
                files = CertificateFiles(config.tls_cert, config.tls_key, config.tls_client_ca)
            where = f"cannot serve metrics on {config.metrics_listen} (--metrics-listen)"
            problem = listen_problem(config.metrics_listen)
            if problem:
                raise OSError(f"{where}: {problem}")
            try:
                metrics_server = await metrics.serve(gateway.metrics, config.metrics_listen, files)
            except OSError as exc:
                raise OSError(f"{where}: {exc}") from None
        # Not cancelled half-way (a signal during the start): gRPC's stop then raised
        # InvalidStateError. It finishes, and the server is stopped below.
        serving = asyncio.ensure_future(server.start())
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            await serving
            raise
        events.start()
        for name in ["", *SERVICE_NAMES]:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return RunningServer(
            server, gateway, events, requests, health_servicer, port, lock, metrics_server
        )
    except BaseException:
        # A start that fails, or a signal (SIGINT cancels it), once the server is made: it
        # is stopped here, or gRPC stopped it as the loop closed, with a traceback ("Event
        # loop is closed").
        await server.stop(None)
        if metrics_server is not None:
            metrics_server.close()
        raise


def listen_problem(listen: str) -> str | None:
    """Why the server cannot listen on ``listen`` (HOST:PORT, or unix:PATH), found before
    gRPC binds it (gRPC says only "Failed to bind to address", its reason on a line of its
    own): an address in use (:func:`addresses_in_use`), a host that does not resolve, an
    address this host does not have, a port below 1024 without the right to it; for a unix
    socket, a directory missing, a file that is not a socket, or a socket another process
    listens on (gRPC would unlink it and bind anew, taking the path from a running server).
    None when nothing is known to be wrong."""
    if listen.startswith("unix:"):
        return _unix_socket_problem(Path(listen.removeprefix("unix:").removeprefix("//")))
    host, port = metrics.split_listen(listen)  # checked by config already
    try:
        candidates = _candidates(host, port)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r}: {exc.strerror}"
    errors = _bind_errors(candidates, port)
    taken = [text for text, error in errors if error == errno.EADDRINUSE]
    if taken and port != 0:
        return f"{', '.join(taken)} in use"
    if errors and len(errors) == len(candidates):  # gRPC serves if any one binds
        text, error = errors[0]
        reason = f"{text}: {os.strerror(error)}"
        if error == errno.EACCES and port < 1024:
            reason += " (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
        return reason
    return None


def addresses_in_use(listen: str) -> list[str]:
    """The addresses of ``listen`` (HOST:PORT) that another socket listens on now. gRPC
    binds every address a name stands for (both loopbacks for ``localhost``) and serves if
    any one of them binds: with 127.0.0.1:P held by another process, ``localhost:P`` would
    serve on ::1 alone, and clients dialling 127.0.0.1 would reach the other process. An
    address this host does not have (no IPv6) is not in use: gRPC skips it, as it should.
    Port 0 picks a free port, so nothing is in use."""
    if listen.startswith("unix:"):
        return []
    host, port = metrics.split_listen(listen)  # checked by config already
    if port == 0:
        return []
    try:
        candidates = _candidates(host, port)
    except socket.gaierror:
        return []  # listen_problem says so
    return [text for text, error in _bind_errors(candidates, port) if error == errno.EADDRINUSE]


def _candidates(host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
    """The addresses gRPC binds for ``host``; socket.gaierror when it does not resolve."""
    if host == "localhost":
        return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return list(dict.fromkeys((info[0], str(info[4][0])) for info in found))


def _bind_errors(
    candidates: list[tuple[socket.AddressFamily, str]], port: int
) -> list[tuple[str, int]]:
    """(HOST:PORT, errno) of each of ``candidates`` that cannot be bound now."""
    errors = []
    for family, address in candidates:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                # As gRPC's listeners: a port held only by closing connections is free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((address, port))
        except OSError as exc:
            text = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
            errors.append((text, exc.errno or 0))
    return errors


def _unix_socket_problem(path: Path) -> str | None:
    if not path.parent.is_dir():
        return f"{path.parent} is not a directory"
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if not stat.S_ISSOCK(mode):
        return f"{path} exists and is not a socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except OSError:
            return None  # left by a server that died: gRPC replaces it
    return f"{path} is in use: another process listens on it"


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one: every client connection, watch
    and blob file takes a descriptor, and many systems start services with a soft limit of
    1024 (and a hard one far above). Returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def lost_isolation(config: ServerConfig) -> list[str]:
    """The per-scope limits that are not under their pool (docs/operations.md: "keep it
    under"): one scope may then take every worker of the pool, which they are meant to
    prevent. Said at start, not refused: a small --workers alone was silently such a case."""
    pairs = [
        ("--calls-per-scope", config.calls_per_scope, "--workers", config.workers),
        ("--transfers-per-scope", config.transfers_per_scope, "--upload-workers",
         config.upload_workers),
        ("--transfers-per-scope", config.transfers_per_scope, "--download-workers",
         config.download_workers),
    ]  # fmt: skip
    return [
        f"{limit} {value} is not under {pool} {size}: one scope may take every worker"
        for limit, value, pool, size in pairs
        if value >= size
    ]


async def serve(config: ServerConfig) -> int:
    """Serve until SIGTERM/SIGINT/SIGHUP; returns how many driver calls were still running on
    workers when the server stopped (main exits without waiting for them)."""
    open_files = raise_open_files_limit()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hurried: list[asyncio.Task[None]] = []
    running: RunningServer | None = None
    starting = asyncio.ensure_future(start(config))

    def on_signal() -> None:
        if not starting.done():
            # Nothing served yet, nothing to drain. The handlers were installed once it
            # served: a SIGINT during the start went on to serve without a graceful stop
            # (gRPC's traceback at exit), a SIGTERM killed the process.
            stop.set()
            starting.cancel()
        elif not stop.is_set():
            stop.set()
        elif running is not None and not hurried:
            # It was ignored: an operator's second Ctrl-C waited out the whole grace period.
            log.warning("second signal: ending the grace period now")
            hurried.append(loop.create_task(running.server.stop(0)))

    # SIGHUP too (a terminal or SSH session closing on `make serve`): by default it ended
    # the process at once, with no grace for the calls in flight. Unless it is ignored
    # (nohup): then the terminal's closing must not stop the server either.
    signals = [signal.SIGTERM, signal.SIGINT]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signals.append(signal.SIGHUP)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        running = await starting
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        log.info("stopped", extra={"fields": {"during_start": True}})
        return 0
    for warning in lost_isolation(config):
        log.warning(warning)
    if config.listen.startswith("unix:"):
        listen = config.listen  # gRPC's "port" of a unix socket is 1: it said "unix:1"
    else:
        listen = f"{config.listen.rsplit(':', 1)[0]}:{running.port}"
    log.info(
        "serving",
        extra={
            "fields": {
                "listen": listen,
                "version": package_version(),
                "driver": config.driver,
                "data_dir": str(config.data_dir),
                "tls": config.tls_cert is not None,
                "max_open_files": open_files,
                **({"metrics": running.metrics_address} if running.metrics_server else {}),
            }
        },
    )
    if config.port_file is not None:
        try:
            tmp = config.port_file.with_suffix(".tmp")
            tmp.write_text(f"{running.port}\n")
            tmp.replace(config.port_file)
        except (OSError, ValueError) as exc:  # ValueError: a path with no name ("/")
            await running.stop(0)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise OSError(f"--port-file {config.port_file}: {reason}") from None
    await stop.wait()
    if config.port_file is not None:  # not serving any more
        with contextlib.suppress(OSError):
            if config.port_file.read_text().strip() == str(running.port):
                config.port_file.unlink()
    log.info("shutting down", extra={"fields": {"grace_seconds": config.shutdown_grace}})
    await running.stop(config.shutdown_grace)
    for task in hurried:
        await task
    abandoned = running.gateway.running_calls
    if abandoned:
        # Their clients were answered UNAVAILABLE at the end of the grace period; waiting
        # for a backend that does not answer would hold the process (and a deploy) for as
        # long as the driver's own timeouts, or for ever.
        log.warning(
            "driver calls still running after the grace period; exiting without them",
            extra={"fields": {"calls": abandoned}},
        )
        # asyncio.run cancels their handlers next, and grpc logs each cancellation as an
        # error with a traceback: said once above, it is not an error.
        logging.getLogger("grpc._cython.cygrpc").setLevel(logging.CRITICAL)
    log.info("stopped")
    return abandoned
