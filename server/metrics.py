"""Prometheus metrics: what the server is doing, in the text exposition format every
Prometheus-compatible scraper reads, served over plain HTTP at ``/metrics`` on
``--metrics-listen`` (off unless set).

The RPC families use the names of grpc-ecosystem's go-grpc-prometheus (``grpc_server_*``
with ``grpc_type``, ``grpc_service``, ``grpc_method`` and ``grpc_code`` labels), so existing
gRPC dashboards and alerts work unchanged; the rest are ``deltacloud_*`` and the standard
``process_*``. No label ever holds credentials or a scope's hash: labels are method, status
code, driver, pool, cause and reason names, all from closed sets.

The RPC stats and histograms are updated on the event loop's thread only (the handlers,
the event hub), without a lock; counters may be incremented from any thread (drivers
report their requests to the cloud from workers); values kept by other threads (the
worker pools' counts) are read under their owners' locks when scraped.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import resource
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from google.protobuf import descriptor_pool

if TYPE_CHECKING:
    from .tls import CertificateFiles

log = logging.getLogger("deltacloud.server.metrics")

#: Seconds: from a call answered from memory (under a millisecond) to a slow cloud's.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Kind = Literal["counter", "gauge", "histogram"]
Sample = tuple[Mapping[str, str], "float | Histogram"]


class Histogram:
    """Observations counted into buckets (upper bounds, seconds), with their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        #: Per bucket, not cumulative; the last one is above every bound (+Inf).
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class Counter:
    """A counter with labels: ``inc("ec2", "ok")`` in the order of ``labels``. Safe to
    increment from any thread."""

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.labels = name, help, tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *values: str, amount: float = 1.0) -> None:
        with self._lock:
            self.values[values] = self.values.get(values, 0.0) + amount

    def samples(self) -> Iterable[Sample]:
        with self._lock:
            items = list(self.values.items())
        for values, value in items:
            yield dict(zip(self.labels, values, strict=True)), value


class HistogramFamily:
    """Histograms with labels: ``observe(seconds, "ec2")``."""

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        bounds: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.name, self.help, self.labels, self.bounds = name, help, tuple(labels), bounds
        self.series: dict[tuple[str, ...], Histogram] = {}

    def observe(self, value: float, *values: str) -> None:
        series = self.series.get(values)
        if series is None:
            series = self.series[values] = Histogram(self.bounds)
        series.observe(value)

    def samples(self) -> Iterable[Sample]:
        for values, series in self.series.items():
            yield dict(zip(self.labels, values, strict=True)), series


@dataclass
class _Family:
    name: str
    kind: Kind
    help: str
    samples: Callable[[], Iterable[Sample]]


# ---- RPCs ------------------------------------------------------------------------------


@dataclass(eq=False)
class MethodStats:
    """One gRPC method's calls: started, handled by status code, and handling time."""

    type: str
    service: str
    method: str
    started: int = 0
    handled: dict[str, int] = field(default_factory=dict)
    seconds: Histogram = field(default_factory=Histogram)

    def done(self, code: str, seconds: float) -> None:
        self.handled[code] = self.handled.get(code, 0) + 1
        self.seconds.observe(seconds)

    @property
    def labels(self) -> dict[str, str]:
        return {"grpc_type": self.type, "grpc_service": self.service, "grpc_method": self.method}


def _grpc_type(client_streaming: bool, server_streaming: bool) -> str:
    if client_streaming:
        return "bidi_stream" if server_streaming else "client_stream"
    return "server_stream" if server_streaming else "unary"


class RpcStats:
    """Stats of every method of the services registered (all at zero until called, so a
    dashboard's rates exist from the start)."""

    def __init__(self) -> None:
        self._methods: dict[tuple[type, str], MethodStats] = {}

    def describe(self, servicer: type, service: str) -> None:
        """``servicer`` (a class) implements the service of full name ``service``."""
        found = descriptor_pool.Default().FindServiceByName(service)
        for method in found.methods:
            kind = _grpc_type(method.client_streaming, method.server_streaming)
            self._methods[servicer, method.name] = MethodStats(kind, service, method.name)

    def of(self, servicer: type, method: str) -> MethodStats:
        """The stats of ``servicer``'s ``method`` (a subclass of a described servicer
        shares its parent's)."""
        stats = self._methods.get((servicer, method))
        if stats is None:
            stats = self._resolve(servicer, method)
            self._methods[servicer, method] = stats
        return stats

    def _resolve(self, servicer: type, method: str) -> MethodStats:
        for cls in servicer.__mro__[1:]:
            known = self._methods.get((cls, method))
            if known is not None:
                return known
        return MethodStats("unary", servicer.__name__, method)

    def all(self) -> list[MethodStats]:
        return list({id(s): s for s in self._methods.values()}.values())


# ---- the registry ------------------------------------------------------------------------


class Metrics:
    """The server's metrics: families registered by the parts that keep them, rendered
    when scraped."""

    def __init__(self) -> None:
        self.rpcs = RpcStats()
        self._families: list[_Family] = []
        started = _start_time() or time.time()
        self.add(
            "grpc_server_started_total",
            "counter",
            "RPCs started on the server.",
            lambda: ((s.labels, float(s.started)) for s in self.rpcs.all()),
        )
        self.add(
            "grpc_server_handled_total",
            "counter",
            "RPCs completed on the server, whatever their status code.",
            self._handled,
        )
        self.add(
            "grpc_server_handling_seconds",
            "histogram",
            "Seconds from an RPC's start to its answer (streams: to their end).",
            lambda: ((s.labels, s.seconds) for s in self.rpcs.all() if s.started),
        )
        self.add("process_cpu_seconds_total", "counter", "User and system CPU seconds.", _cpu)
        self.add("process_resident_memory_bytes", "gauge", "Resident memory in bytes.", _resident)
        self.add("process_open_fds", "gauge", "Open file descriptors.", _open_fds)
        self.add("process_max_fds", "gauge", "Limit on open file descriptors.", _max_fds)
        self.add(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            lambda: [({}, started)],
        )

    def _handled(self) -> Iterable[Sample]:
        for stats in self.rpcs.all():
            for code, count in stats.handled.items():
                yield {**stats.labels, "grpc_code": code}, float(count)

    def add(
        self, name: str, kind: Kind, help: str, samples: Callable[[], Iterable[Sample]]
    ) -> None:
        """A family whose samples are read when scraped."""
        if any(f.name == name for f in self._families):
            raise ValueError(f"metric {name} is registered twice")
        self._families.append(_Family(name, kind, help, samples))

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        return self.register(Counter(name, help, labels))

    def register(self, counter: Counter) -> Counter:
        self.add(counter.name, "counter", counter.help, counter.samples)
        return counter

    def histogram(self, name: str, help: str, labels: Sequence[str] = ()) -> HistogramFamily:
        made = HistogramFamily(name, help, labels)
        self.add(name, "histogram", help, made.samples)
        return made

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        """A gauge without labels, read when scraped."""
        self.add(name, "gauge", help, lambda: [({}, float(read()))])

    def render(self) -> bytes:
        """The text exposition format (version 0.0.4). A family that fails to read is
        left out (and logged), not the whole scrape."""
        lines: list[str] = []
        for family in self._families:
            try:
                samples = list(family.samples())
            except Exception:
                log.exception("reading metric %s failed", family.name)
                continue
            lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            for labels, value in samples:
                if isinstance(value, Histogram):
                    lines.extend(_histogram_lines(family.name, labels, value))
                else:
                    lines.append(f"{family.name}{_labels(labels)} {_number(value)}")
        return ("\n".join(lines) + "\n").encode()


def _histogram_lines(name: str, labels: Mapping[str, str], histogram: Histogram) -> list[str]:
    lines = []
    total = 0
    for bound, count in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        total += count
        le = {**labels, "le": _bound(bound)}
        lines.append(f"{name}_bucket{_labels(le)} {total}")
    lines.append(f"{name}_sum{_labels(labels)} {_number(histogram.sum)}")
    lines.append(f"{name}_count{_labels(labels)} {total}")
    return lines


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape_value(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _bound(value: float) -> str:
    """A bucket's ``le`` as Prometheus's own clients write it (1.0, 0.005, +Inf)."""
    return "+Inf" if value == float("inf") else repr(float(value))


# ---- the process -----------------------------------------------------------------------


def _cpu() -> Iterable[Sample]:
    return [({}, time.process_time())]


def _resident() -> Iterable[Sample]:
    with open("/proc/self/statm", "rb") as statm:  # Linux; elsewhere the family is left out
        pages = int(statm.read().split()[1])
    return [({}, float(pages * resource.getpagesize()))]


def _open_fds() -> Iterable[Sample]:
    return [({}, float(len(os.listdir("/proc/self/fd"))))]


def _max_fds() -> Iterable[Sample]:
    return [({}, float(resource.getrlimit(resource.RLIMIT_NOFILE)[0]))]


def _start_time() -> float | None:
    """When this process started, from /proc (None where there is none)."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            # Field 22 (starttime, clock ticks after boot); the command name (field 2) may
            # hold spaces, so count from its closing parenthesis.
            ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as machine:
            boot = next(int(line.split()[1]) for line in machine if line.startswith(b"btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


# ---- the HTTP endpoint -----------------------------------------------------------------

#: A scraper that has not sent its request within this many seconds is disconnected.
REQUEST_TIMEOUT = 10.0
#: Largest request head (request line and headers) read.
MAX_REQUEST_HEAD = 16 * 1024


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) as (host, port); ValueError when malformed."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--metrics-listen {listen!r}: expected HOST:PORT")
    return host.removeprefix("[").removesuffix("]"), int(port)


async def serve(
    metrics: Metrics, listen: str, tls: CertificateFiles | None = None
) -> asyncio.Server:
    """Serve ``metrics`` over HTTP/1.1 at ``/metrics`` on ``listen``: GET (or HEAD) answers
    200 with the text format, other paths 404, other methods 405; one request per
    connection. With ``tls``, over TLS only (the files' current certificate, asked for
    each connection; a client certificate required when they have a client CA)."""
    host, port = split_listen(listen)
    context = None
    if tls is not None:
        files = tls
        context = files.ssl_context()  # unusable files: fail at start, not at a scrape

        def current(connection: ssl.SSLObject, _name: str | None, _ctx: object) -> None:
            # OpenSSL asks before each handshake (with or without a server name): the
            # connection takes the files' current certificate, reloaded when renewed.
            connection.context = files.ssl_context()

        context.sni_callback = current

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            status, body = _answer(metrics, head)
            method = head.split(b" ", 1)[0]
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: "
                f"{CONTENT_TYPE if status.startswith('200') else 'text/plain; charset=utf-8'}"
                f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if method != b"HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sent no complete request within the limits: dropped
        except (ConnectionError, OSError):
            pass  # ssl.SSLError among them: no TLS, or no acceptable client certificate
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    return await asyncio.start_server(
        handle,
        host,
        port,
        limit=MAX_REQUEST_HEAD,
        ssl=context,
        ssl_handshake_timeout=REQUEST_TIMEOUT if context else None,
    )


def _answer(metrics: Metrics, head: bytes) -> tuple[str, bytes]:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return "400 Bad Request", b"malformed request line\n"
    method, target = parts[0], parts[1]
    if method not in (b"GET", b"HEAD"):
        return "405 Method Not Allowed", b"only GET and HEAD\n"
    if target.split(b"?", 1)[0] != b"/metrics":
        return "404 Not Found", b"metrics are at /metrics\n"
    return "200 OK", metrics.render()
