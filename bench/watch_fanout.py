"""Fan-out benchmark of InstanceService.WatchInstanceEvents.

For each subscriber count N: start a fresh deltacloud-server subprocess on a temporary data
directory (loopback only), open N WatchInstanceEvents streams from this one client process
(grpc.aio, spread over several channels with one TCP connection each), wait until every
stream is live (it received its first PROGRESS message), then cause M transitions at a
steady rate (RebootInstance on inst0..inst3 through the API, on a channel of their own, from
a separate thread) and collect every event on every subscriber. Reports delivery (lost,
duplicated, out of order), latency from the server's event timestamp to the client's
receive time, server CPU and memory, and the client's own CPU and event-loop lag so readers
can judge whether the client distorted the numbers.

    .venv/bin/python -m bench.watch_fanout [--subscribers 100,1000,10000] \
        [--transitions 50] [--rate 20] [--json results.json]

See bench/README.md for what every column means.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import datetime
import itertools
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deltacloud.v1 import instance_pb2, instance_pb2_grpc

Request = instance_pb2.WatchInstanceEventsRequest
Response = instance_pb2.WatchInstanceEventsResponse
KIND_EVENTS = Response.KIND_EVENTS
REBOOT = instance_pb2.EVENT_CAUSE_REBOOT

MD = [("authorization", "Basic " + base64.b64encode(b"mockuser:mockpassword").decode())]
INSTANCES = ["inst0", "inst1", "inst2", "inst3"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent


# ---- machine and process measurements ----------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def proc_cpu(pid: int, thread: int | None = None) -> float:
    """utime + stime of every thread of ``pid`` (or of its thread ``thread`` only: the
    main thread's id is the pid), in seconds."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    stat = Path(path).read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_nofile(wanted: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


# ---- the server --------------------------------------------------------------------------


def server_flags(args: argparse.Namespace) -> list[str]:
    return [
        "--workers",
        str(args.workers),
        # The ring keeps up to 2x buffer; with buffer >= transitions nobody can be cut for
        # being slow, so any loss is a real loss.
        "--watch-buffer",
        str(max(args.transitions * 2, 1000)),
        "--watch-poll-interval",
        "2",
        "--watch-progress-interval",
        "5",
        "--shutdown-grace",
        "2",
        "--log-level",
        "WARNING",
    ]


class Server:
    def __init__(self, data_dir: Path, flags: list[str]) -> None:
        self.data_dir = data_dir
        self.port_file = data_dir / "port"
        self.log_path = data_dir / "server.log"
        args = [
            sys.executable,
            "-m",
            "deltacloud.server.main",
            "--listen",
            "127.0.0.1:0",
            "--port-file",
            str(self.port_file),
            "--data-dir",
            str(data_dir / "data"),
            *flags,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DELTACLOUD_")}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 30
        while not self.port_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not start:\n{self.log()}")
            time.sleep(0.02)
        self.target = f"127.0.0.1:{int(self.port_file.read_text())}"
        with grpc.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=30)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            # Warm up the driver and the instance service once, so the idle footprint
            # includes them.
            stub = instance_pb2_grpc.InstanceServiceStub(channel)
            stub.ListInstances(instance_pb2.ListInstancesRequest(), metadata=MD, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


# ---- the subscribers ---------------------------------------------------------------------


@dataclass(slots=True)
class Subscriber:
    revisions: list[int] = field(default_factory=list)
    ready: bool = False
    finished: bool = False  # received the last expected revision
    error: str | None = None  # status code name if the stream ended with an error
    error_detail: str = ""
    errored_after_ready: bool = False
    messages: int = 0
    event_messages: int = 0
    unexpected: int = 0  # events that are not reboots


class Fanout:
    """N subscribers on one event loop; counts readiness and completion."""

    def __init__(self, n: int, last_revision: int) -> None:
        self.n = n
        self.last_revision = last_revision
        self.subs = [Subscriber() for _ in range(n)]
        self.latencies: list[float] = []
        self.ready = 0
        self.failed_before_ready = 0
        self.finished = 0
        self.cut = 0
        self.last_delivery = 0.0
        self.all_ready = asyncio.Event()
        self.all_done = asyncio.Event()
        self.calls: list[Any] = []

    def _settle(self) -> None:
        if self.ready + self.failed_before_ready >= self.n:
            self.all_ready.set()
        if self.finished + self.cut + self.failed_before_ready >= self.n:
            self.all_done.set()

    def set_last(self, revision: int) -> None:
        """The transitions are over and ``revision`` is the last event they made (fewer than
        M if some reboots failed): subscribers that have it are complete."""
        self.last_revision = revision
        for sub in self.subs:
            if (
                sub.ready
                and not sub.finished
                and sub.error is None
                and sub.revisions
                and max(sub.revisions) >= revision
            ):
                sub.finished = True
                self.finished += 1
        self._settle()

    async def follow(
        self, stub: Any, index: int, request: Any, opening: asyncio.Semaphore | None
    ) -> None:
        sub = self.subs[index]
        revisions = sub.revisions
        latencies = self.latencies
        try:
            if opening is not None:
                # Ramp: at most K calls the server has not picked up yet (the server answers
                # initial metadata as soon as its handler runs).
                async with opening:
                    call = stub.WatchInstanceEvents(request, metadata=MD)
                    self.calls.append(call)
                    await call.initial_metadata()
            else:
                call = stub.WatchInstanceEvents(request, metadata=MD)
                self.calls.append(call)
            async for message in call:
                now = time.time()
                sub.messages += 1
                if not sub.ready:
                    sub.ready = True
                    self.ready += 1
                    self._settle()
                if message.kind != KIND_EVENTS:
                    continue
                sub.event_messages += 1
                for event in message.events:
                    stamp = event.time
                    latencies.append(now - (stamp.seconds + stamp.nanos * 1e-9))
                    revisions.append(event.revision)
                    if event.cause != REBOOT:
                        sub.unexpected += 1
                self.last_delivery = now
                if not sub.finished and message.revision >= self.last_revision:
                    sub.finished = True
                    self.finished += 1
                    self._settle()
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED and self.all_done.is_set():
                return  # our own cancel at the end
            sub.error = error.code().name
            sub.error_detail = (error.details() or "")[:200]
            if sub.ready:
                sub.errored_after_ready = True
                if not sub.finished:
                    self.cut += 1
            else:
                self.failed_before_ready += 1
            self._settle()
        except asyncio.CancelledError:
            pass


async def loop_lag(samples: list[float], stop: asyncio.Event, period: float = 0.01) -> None:
    """How late the client's event loop wakes up: a direct measure of client overload."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(period)
        samples.append(loop.time() - start - period)


# ---- the transitions ---------------------------------------------------------------------


def drive(target: str, count: int, rate: float, out: dict[str, Any]) -> None:
    """Open loop: issue ``count`` RebootInstance calls at ``rate`` per second on a channel
    of their own, not waiting for one to finish before the next is due."""
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        stub = instance_pb2_grpc.InstanceServiceStub(ch)
        futures = []
        done_at: dict[int, float] = {}  # id(future) -> seconds from issue to completion
        start = time.monotonic()
        out["first_issued"] = time.time()
        behind = 0.0
        for i in range(count):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                behind = max(behind, -delay)
            request = instance_pb2.RebootInstanceRequest(id=INSTANCES[i % len(INSTANCES)])
            issued = time.monotonic()
            future = stub.RebootInstance.future(request, metadata=MD)
            future.add_done_callback(
                lambda f, issued=issued: done_at.__setitem__(id(f), time.monotonic() - issued)
            )
            futures.append(future)
        out["last_issued"] = time.time()
        out["issue_seconds"] = time.monotonic() - start
        out["max_issue_lag"] = behind
        failures: collections.Counter[str] = collections.Counter()
        for future in futures:
            try:
                future.result(timeout=60)
            except grpc.RpcError as error:
                failures[error.code().name] += 1  # type: ignore[attr-defined]
        call_latency = [done_at[id(f)] for f in futures if id(f) in done_at]
        out["failed"] = dict(failures)
        out["ok"] = count - sum(failures.values())
        call_latency.sort()
        out["reboot_call_p50_ms"] = percentile(call_latency, 0.5) * 1000
        out["reboot_call_max_ms"] = (call_latency[-1] if call_latency else math.nan) * 1000


# ---- one run -----------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run_one(n: int, args: argparse.Namespace, flags: list[str]) -> dict[str, Any]:
    t_total = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f"watch-fanout-{n}-"))
    server = Server(tmp, flags)
    log(f"N={n}: server pid {server.pid} on {server.target}")
    result: dict[str, Any] = {"subscribers": n, "server_pid": server.pid}
    fanout = Fanout(n, args.transitions)
    channels: list[grpc.aio.Channel] = []
    tasks: list[asyncio.Task[None]] = []
    lag_stop = asyncio.Event()
    profiler: subprocess.Popen[bytes] | None = None
    try:
        idle_mem = proc_mem(server.pid)
        cpu_idle = proc_cpu(server.pid)
        per_channel = args.streams_per_channel
        n_channels = max(1, math.ceil(n / per_channel))
        for i in range(n_channels):
            channels.append(
                grpc.aio.insecure_channel(
                    server.target,
                    options=[
                        ("grpc.use_local_subchannel_pool", 1),
                        ("bench.channel_index", i),  # distinct args: never share a connection
                    ],
                )
            )
        stubs = [instance_pb2_grpc.InstanceServiceStub(c) for c in channels]
        request = Request(
            progress_interval=duration_pb2.Duration(
                seconds=int(args.progress_interval),
                nanos=round((args.progress_interval % 1) * 1e9),
            )
        )
        opening = asyncio.Semaphore(args.open_concurrency) if args.open_concurrency else None
        t_sub = time.monotonic()
        cc_sub = client_cpu()
        for i in range(n):
            tasks.append(
                asyncio.create_task(fanout.follow(stubs[i // per_channel], i, request, opening))
            )
            if i % 500 == 499:
                await asyncio.sleep(0)  # let the calls start in batches
        ready_timeout = args.ready_timeout or (30 + n * 0.02 + args.progress_interval)
        deadline = time.monotonic() + ready_timeout
        while not fanout.all_ready.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fanout.all_ready.wait(), 5)
            log(
                f"N={n}: {fanout.ready} live, {fanout.failed_before_ready} failed, "
                f"{n - fanout.ready - fanout.failed_before_ready} pending "
                f"(server RSS {proc_mem(server.pid)['VmRSS'] / 1024:.0f} MiB)"
            )
            if not server.alive():
                raise RuntimeError(f"server died while subscribing:\n{server.log()[-3000:]}")
        result["subscribe_seconds"] = time.monotonic() - t_sub
        result["subscribe_client_cpu"] = client_cpu() - cc_sub
        result["ready"] = fanout.ready
        result["never_ready"] = n - fanout.ready - fanout.failed_before_ready
        result["failed_to_subscribe"] = fanout.failed_before_ready
        fail_codes = collections.Counter(
            s.error for s in fanout.subs if s.error and not s.errored_after_ready
        )
        result["subscribe_failure_codes"] = dict(fail_codes)
        # Baseline: every stream live, nothing happening.
        ready_mem = proc_mem(server.pid)
        cpu_ready = proc_cpu(server.pid)
        result["subscribe_server_cpu"] = cpu_ready - cpu_idle

        if args.profile_dir:
            Path(args.profile_dir).mkdir(parents=True, exist_ok=True)
            out = Path(args.profile_dir) / f"server-{n}.txt"
            profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(server.pid),
                    "--rate",
                    "100",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "-o",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            result["profile"] = str(out)
            await asyncio.sleep(1)

        # The run: M transitions at a steady rate, collected on every subscriber.
        lags: list[float] = []
        lag_task = asyncio.create_task(loop_lag(lags, lag_stop))
        drive_out: dict[str, Any] = {}
        cpu_start = proc_cpu(server.pid)
        cc_start = client_cpu()
        t_start = time.monotonic()
        wall_start = time.time()
        driver = asyncio.create_task(
            asyncio.to_thread(drive, server.target, args.transitions, args.rate, drive_out)
        )
        drain_deadline = time.monotonic() + args.transitions / args.rate + args.drain_timeout
        while not fanout.all_done.is_set() and time.monotonic() < drain_deadline:
            if driver.done() and drive_out.get("ok") is not None:
                fanout.set_last(drive_out["ok"])
                drain_deadline = min(drain_deadline, time.monotonic() + args.drain_timeout)
                if fanout.all_done.is_set():
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fanout.all_done.wait(), 5)
            if not fanout.all_done.is_set():
                log(
                    f"N={n}: {fanout.finished}/{fanout.ready} subscribers have every event, "
                    f"{fanout.cut} cut, {len(fanout.latencies)} events delivered"
                )
        t_end = time.monotonic()
        cpu_end = proc_cpu(server.pid)
        cc_end = client_cpu()
        end_mem = proc_mem(server.pid)
        lag_stop.set()
        await driver
        await lag_task
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.wait(30)

        # ---- accounting ------------------------------------------------------------
        # Every successful reboot is exactly one event (RUNNING->RUNNING), revisions 1..m.
        m = drive_out.get("ok") or 0
        expected = fanout.ready * m
        distinct = duplicates = out_of_order = extra = 0
        wrong_sequence = 0
        for sub in fanout.subs:
            if not sub.ready:
                continue
            revs = sub.revisions
            seen = {r for r in revs if 1 <= r <= m}
            distinct += len(seen)
            extra += sum(1 for r in revs if not 1 <= r <= m)
            duplicates += len(revs) - len(set(revs))
            out_of_order += sum(1 for a, b in itertools.pairwise(revs) if b <= a)
            if revs != list(range(1, m + 1)):
                wrong_sequence += 1
        lat = sorted(fanout.latencies)
        cut_codes = collections.Counter(
            s.error for s in fanout.subs if s.errored_after_ready and not s.finished
        )
        result.update(
            {
                "transitions": args.transitions,
                "transitions_done": m,
                "rate": args.rate,
                "reboots_ok": drive_out.get("ok"),
                "reboots_failed": drive_out.get("failed"),
                "issue_seconds": drive_out.get("issue_seconds"),
                "max_issue_lag_s": drive_out.get("max_issue_lag"),
                "reboot_call_p50_ms": drive_out.get("reboot_call_p50_ms"),
                "reboot_call_max_ms": drive_out.get("reboot_call_max_ms"),
                "events_expected": expected,
                "events_delivered": len(fanout.latencies),
                "lost": expected - distinct,
                "duplicates": duplicates,
                "out_of_order": out_of_order,
                "unexpected_revisions": extra,
                "non_reboot_events": sum(s.unexpected for s in fanout.subs),
                "subscribers_wrong_sequence": wrong_sequence,
                "subscribers_complete": fanout.finished,
                "subscribers_cut": fanout.cut,
                "cut_codes": dict(cut_codes),
                "messages": sum(s.messages for s in fanout.subs),
                "event_messages": sum(s.event_messages for s in fanout.subs),
                "latency_p50_ms": percentile(lat, 0.50) * 1000,
                "latency_p99_ms": percentile(lat, 0.99) * 1000,
                "latency_max_ms": (lat[-1] * 1000) if lat else math.nan,
                "run_wall_s": t_end - t_start,
                "delivery_span_s": (fanout.last_delivery - wall_start)
                if fanout.last_delivery
                else math.nan,
                "server_cpu_s": cpu_end - cpu_start,
                "server_cpu_util": (cpu_end - cpu_start) / (t_end - t_start),
                "client_cpu_s": cc_end - cc_start,
                "client_cpu_util": (cc_end - cc_start) / (t_end - t_start),
                "client_loop_lag_p99_ms": percentile(sorted(lags), 0.99) * 1000,
                "client_loop_lag_max_ms": (max(lags) * 1000) if lags else math.nan,
                "idle_rss_mib": idle_mem["VmRSS"] / 1024,
                "ready_rss_mib": ready_mem["VmRSS"] / 1024,
                "end_rss_mib": end_mem["VmRSS"] / 1024,
                "peak_rss_mib": end_mem["VmHWM"] / 1024,
                "server_threads": end_mem.get("Threads"),
                "kib_per_subscriber": (end_mem["VmHWM"] - idle_mem["VmRSS"]) / max(n, 1),
                "run_growth_kib_per_subscriber": (end_mem["VmHWM"] - ready_mem["VmRSS"])
                / max(n, 1),
                "channels": n_channels,
            }
        )
        if fanout.subs and not all(s.ready for s in fanout.subs):
            samples = [s.error_detail for s in fanout.subs if s.error_detail][:3]
            result["error_samples"] = samples
        if not server.alive():
            result["server_died"] = True
            result["server_log_tail"] = server.log()[-3000:]
    finally:
        lag_stop.set()
        fanout.all_done.set()  # our cancels are not errors from here on
        for call in fanout.calls:
            call.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
        code = server.stop()
        result["server_exit_code"] = code
        result["total_seconds"] = time.monotonic() - t_total
        if args.keep:
            result["data_dir"] = str(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


# ---- output ------------------------------------------------------------------------------


def fmt(value: Any, spec: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def print_report(info: dict[str, Any], results: list[dict[str, Any]]) -> None:
    print()
    print(
        f"machine: {info['cpu_model']}, {info['cores']} cores, Python {info['python']}, "
        f"grpcio {info['grpcio']}, {info['platform']}"
    )
    print(f"date: {info['date']}")
    print(f"server flags: {' '.join(info['server_flags'])}")
    print(
        f"run: {info['transitions']} transitions (RebootInstance on inst0..inst3) at "
        f"{info['rate']}/s; subscribers request progress_interval={info['progress_interval']}s; "
        f"{info['streams_per_channel']} streams per channel; at most "
        f"{info['open_concurrency'] or 'unlimited'} opening at once; "
        f"client RLIMIT_NOFILE={info['nofile']}"
    )
    print()
    head1 = (
        f"{'N':>6} {'live':>6} {'failed':>6} {'cut':>4} {'M done':>6} {'delivered':>10} "
        f"{'expected':>10} {'lost':>6} {'dup':>4} {'ooo':>4} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'ev/msg':>6} {'wall s':>7} {'span s':>7}"
    )
    print("delivery and latency (latency = client receive time - event.time stamped by server)")
    print(head1)
    print("-" * len(head1))
    for r in results:
        if "error" in r and "events_delivered" not in r:
            print(f"{r['subscribers']:>6} ERROR: {r['error']}")
            continue
        failed = r["failed_to_subscribe"] + r["never_ready"]
        ev_per_msg = (
            r["events_delivered"] / r["event_messages"] if r["event_messages"] else math.nan
        )
        print(
            f"{r['subscribers']:>6} {r['ready']:>6} {failed:>6} {r['subscribers_cut']:>4} "
            f"{r['transitions_done']:>6} {r['events_delivered']:>10} "
            f"{r['events_expected']:>10} {r['lost']:>6} "
            f"{r['duplicates']:>4} {r['out_of_order']:>4} {fmt(r['latency_p50_ms'], '.1f'):>8} "
            f"{fmt(r['latency_p99_ms'], '.1f'):>8} {fmt(r['latency_max_ms'], '.1f'):>8} "
            f"{fmt(ev_per_msg, '.2f'):>6} {r['run_wall_s']:>7.2f} "
            f"{fmt(r['delivery_span_s'], '.2f'):>7}"
        )
    print()
    head2 = (
        f"{'N':>6} {'srv CPU s':>9} {'srv CPU%':>8} {'idle MiB':>8} {'ready MiB':>9} "
        f"{'peak MiB':>8} {'KiB/sub':>8} {'run KiB/sub':>11} {'sub s':>6} {'sub CPU s':>9} "
        f"{'cli CPU s':>9} {'cli CPU%':>8} {'lag p99':>7} {'lag max':>7} {'total s':>7}"
    )
    print("resources (CPU% = CPU seconds / run wall seconds; 100% = one core)")
    print(head2)
    print("-" * len(head2))
    for r in results:
        if "events_delivered" not in r:
            continue
        print(
            f"{r['subscribers']:>6} {r['server_cpu_s']:>9.2f} {r['server_cpu_util'] * 100:>7.0f}% "
            f"{r['idle_rss_mib']:>8.1f} {r['ready_rss_mib']:>9.1f} {r['peak_rss_mib']:>8.1f} "
            f"{r['kib_per_subscriber']:>8.1f} {r['run_growth_kib_per_subscriber']:>11.2f} "
            f"{r['subscribe_seconds']:>6.1f} {r['subscribe_server_cpu']:>9.2f} "
            f"{r['client_cpu_s']:>9.2f} {r['client_cpu_util'] * 100:>7.0f}% "
            f"{fmt(r['client_loop_lag_p99_ms'], '.0f'):>7} "
            f"{fmt(r['client_loop_lag_max_ms'], '.0f'):>7} {r['total_seconds']:>7.1f}"
        )
    print()
    for r in results:
        notes = []
        if "error" in r:
            notes.append(f"error: {r['error']}")
        if r.get("failed_to_subscribe") or r.get("never_ready"):
            notes.append(
                f"{r.get('failed_to_subscribe', 0)} subscribers failed to subscribe "
                f"{r.get('subscribe_failure_codes')}, {r.get('never_ready', 0)} never became "
                f"live; samples: {r.get('error_samples')}"
            )
        if r.get("subscribers_cut"):
            notes.append(f"{r['subscribers_cut']} subscribers cut: {r['cut_codes']}")
        if r.get("subscribers_wrong_sequence"):
            notes.append(f"{r['subscribers_wrong_sequence']} subscribers did not see exactly 1..M")
        if r.get("unexpected_revisions") or r.get("non_reboot_events"):
            notes.append(
                f"{r['unexpected_revisions']} revisions outside 1..M, "
                f"{r['non_reboot_events']} non-reboot events"
            )
        if r.get("reboots_failed"):
            notes.append(f"reboots failed: {r['reboots_failed']}")
        if r.get("server_died"):
            notes.append("the server died")
        if "issue_seconds" in r and r["issue_seconds"] is not None:
            notes.append(
                f"reboots issued over {r['issue_seconds']:.2f}s (max issue lag "
                f"{r['max_issue_lag_s'] * 1000:.0f} ms), reboot call p50 "
                f"{r['reboot_call_p50_ms']:.0f} ms / max {r['reboot_call_max_ms']:.0f} ms"
            )
        if "channels" in r:
            notes.append(
                f"{r['channels']} channels, {r['messages']} messages, server threads "
                f"{r['server_threads']}, exit code {r['server_exit_code']}"
            )
        if r.get("profile"):
            notes.append(f"py-spy profile (raw collapsed stacks): {r['profile']}")
        print(f"N={r['subscribers']}: " + "; ".join(notes))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.watch_fanout", description=__doc__)
    p.add_argument("--subscribers", default="100,1000,10000", help="comma-separated N values")
    p.add_argument("--transitions", type=int, default=50, help="M reboots per run (50)")
    p.add_argument("--rate", type=float, default=20.0, help="reboots per second (20)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--streams-per-channel", type=int, default=200)
    p.add_argument(
        "--progress-interval",
        type=float,
        default=2.0,
        help="progress_interval the subscribers request; the first PROGRESS marks a stream "
        "live (2)",
    )
    p.add_argument(
        "--open-concurrency",
        type=int,
        default=256,
        help="most subscriptions opened but not yet picked up by the server (their initial "
        "metadata not received); 0 opens all N at once (a reconnect storm) (256)",
    )
    p.add_argument("--workers", type=int, default=8, help="server --workers (8)")
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=0.0,
        help="seconds to wait for every stream to be live (default 30 + 0.02*N)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds after the last transition is due to wait for every event (60)",
    )
    p.add_argument("--profile-dir", help="record the server with py-spy during each run")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    args = p.parse_args(argv)
    args.subscriber_counts = [int(x) for x in args.subscribers.split(",") if x.strip()]
    return args


async def amain(args: argparse.Namespace) -> list[dict[str, Any]]:
    flags = server_flags(args)
    results = []
    for n in args.subscriber_counts:
        try:
            result = await run_one(n, args, flags)
        except Exception as exc:  # report, go on with the next N
            log(f"N={n}: run failed: {exc!r}")
            result = {"subscribers": n, "error": repr(exc)[:2000]}
        results.append(result)
        log(f"N={n}: done in {result.get('total_seconds', 0):.1f}s")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    channels = max(math.ceil(n / args.streams_per_channel) for n in args.subscriber_counts)
    nofile = raise_nofile(max(4096, channels * 4 + 256))
    info = machine()
    info.update(
        {
            "server_flags": [
                "--listen 127.0.0.1:0",
                "--data-dir <fresh tmp>",
                *server_flags(args),
            ],
            "transitions": args.transitions,
            "rate": args.rate,
            "progress_interval": args.progress_interval,
            "streams_per_channel": args.streams_per_channel,
            "open_concurrency": args.open_concurrency,
            "nofile": nofile[0],
            "command": " ".join(
                [
                    Path(sys.executable).name,
                    "-m",
                    "bench.watch_fanout",
                    *(argv if argv is not None else sys.argv[1:]),
                ]
            ),
        }
    )
    results = asyncio.run(amain(args))
    print_report(info, results)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
