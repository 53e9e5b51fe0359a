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
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

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


@dataclass
class RunningServer:
    server: grpc.aio.Server
    gateway: Gateway
    events: EventHub
    requests: RequestLog
    health: health.aio.HealthServicer
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
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle = (data_dir / "server.lock").open("a+")
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
    events = EventHub(
        gateway,
        config.data_dir,
        EventSettings(
            poll_interval=config.watch_poll_interval,
            fast_poll_interval=config.watch_fast_poll_interval,
            progress_interval=config.watch_progress_interval,
            buffer=config.watch_buffer,
            max_events=config.journal_max_events,
            max_age=config.journal_max_age,
        ),
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
    requests = RequestLog(
        config.data_dir / "requests.sqlite3",
        events.key_of,
        config.request_id_retention,
        gateway.metrics,
    )
    register_all(server, gateway, tokens, events, requests)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(server, [*SERVICE_NAMES, health.SERVICE_NAME])
    credentials = _credentials(config)
    taken = addresses_in_use(config.listen)
    if taken:
        raise OSError(f"cannot listen on {config.listen}: {', '.join(taken)} in use")
    if credentials is None:
        port = server.add_insecure_port(config.listen)
    else:
        port = server.add_secure_port(config.listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {config.listen}")
    metrics_server = None
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
        try:
            metrics_server = await metrics.serve(gateway.metrics, config.metrics_listen, files)
        except OSError as exc:
            raise OSError(f"cannot serve metrics on {config.metrics_listen}: {exc}") from None
    await server.start()
    events.start()
    for name in ["", *SERVICE_NAMES]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(
        server, gateway, events, requests, health_servicer, port, lock, metrics_server
    )


def addresses_in_use(listen: str) -> list[str]:
    """The addresses of ``listen`` (HOST:PORT) that another socket listens on now. gRPC
    binds every address a name stands for (both loopbacks for ``localhost``) and serves if
    any one of them binds: with 127.0.0.1:P held by another process, ``localhost:P`` would
    serve on ::1 alone, and clients dialling 127.0.0.1 would reach the other process. An
    address this host does not have (no IPv6) is not in use: gRPC skips it, as it should.
    Port 0 picks a free port, so nothing is in use."""
    if listen.startswith("unix:"):
        return []
    host, _sep, port_text = listen.rpartition(":")
    port = int(port_text)
    host = host.removeprefix("[").removesuffix("]")
    if port == 0:
        return []
    if host == "localhost":
        candidates = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    else:
        try:
            found = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror:
            return []  # gRPC refuses the name itself
        candidates = list(dict.fromkeys((info[0], str(info[4][0])) for info in found))
    taken = []
    for family, address in candidates:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As gRPC's listeners: a port held only by closing connections is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    taken.append(f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
    return taken


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


async def serve(config: ServerConfig) -> int:
    """Serve until SIGTERM/SIGINT; returns how many driver calls were still running on
    workers when the server stopped (main exits without waiting for them)."""
    open_files = raise_open_files_limit()
    running = await start(config)
    host = config.listen.rsplit(":", 1)[0]
    log.info(
        "serving",
        extra={
            "fields": {
                "listen": f"{host}:{running.port}",
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
        except OSError as exc:
            await running.stop(0)
            raise OSError(f"--port-file {config.port_file}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"fields": {"grace_seconds": config.shutdown_grace}})
    await running.stop(config.shutdown_grace)
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
