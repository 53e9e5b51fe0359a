"""Unary benchmark: GetInstance and ListInstances on the mock driver through our server,
against a bare grpc.aio server answering the same response bytes with no logic, with the
same client in the same run; plus the time from starting the server to health SERVING.

    .venv/bin/python -m bench.unary [--seconds 3] [--rounds 3] [--concurrency 1,16,64]
                                    [--json FILE]

For each concurrency C the client (grpc.aio, one channel) keeps C calls in flight for the
given seconds and records each call's latency, against ours, the "floor" server (our
framework without the work, see bench/bare_server.py) and the bare server in turn, --rounds
times. Reported (medians over the rounds): requests per second, p50/p99 latency, the
server's CPU time per call, ours/bare throughput (target: at least 0.75) and floor/bare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from bench.watch_fanout import MD, machine, percentile, proc_cpu
from deltacloud.drivers.conformance import ServerProcess
from deltacloud.v1 import instance_pb2, instance_pb2_grpc

CALLS = {
    "GetInstance": instance_pb2.GetInstanceRequest(id="inst0"),
    "ListInstances": instance_pb2.ListInstancesRequest(),
}


async def load(target: str, method: str, concurrency: int, seconds: float) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = instance_pb2_grpc.InstanceServiceStub(channel)
        call = getattr(stub, method)
        request = CALLS[method]
        for _ in range(20):  # warm up
            await call(request, metadata=MD)
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await call(request, metadata=MD)
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "calls": len(latencies),
    }


def capture(folder: Path, target: str) -> None:
    """Our server's answers, for the reference servers to give."""
    with grpc.insecure_channel(target) as channel:
        stub = instance_pb2_grpc.InstanceServiceStub(channel)
        get = stub.GetInstance(CALLS["GetInstance"], metadata=MD).SerializeToString()
        listed = stub.ListInstances(CALLS["ListInstances"], metadata=MD).SerializeToString()
    (folder / "get.bin").write_bytes(get)
    (folder / "list.bin").write_bytes(listed)


def start_reference(folder: Path, mode: str) -> tuple[subprocess.Popen[bytes], str]:
    """bench/bare_server.py in ``mode`` (bare or floor), answering the captured bytes."""
    port_file = folder / f"{mode}.port"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bare_server",
            "--port-file",
            str(port_file),
            "--get",
            str(folder / "get.bin"),
            "--list",
            str(folder / "list.bin"),
            "--mode",
            mode,
        ]
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the {mode} server did not start")
        time.sleep(0.02)
    return process, f"127.0.0.1:{int(port_file.read_text())}"


def startup_ms(folder: Path, runs: int = 5) -> list[float]:
    """Process start to health SERVING (the kit's ServerProcess polls the port file, then
    checks health), on a fresh data directory each time."""
    times = []
    for i in range(runs):
        server = ServerProcess(folder / f"start-{i}")
        began = time.perf_counter()
        server.start()
        times.append((time.perf_counter() - began) * 1000)
        server.kill()
    return sorted(times)


def measure_row(
    method: str,
    concurrency: int,
    args: argparse.Namespace,
    servers: list[tuple[str, str, int]],
) -> dict[str, Any]:
    """Ours and bare alternately, ``args.rounds`` times: each figure is the median over the
    rounds and the ratio is the median of the rounds' ratios, so that a burst of noise on a
    shared machine lands on both servers rather than on one."""
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in servers}
    ratios: list[float] = []
    floor_ratios: list[float] = []
    for _ in range(args.rounds):
        for name, target, pid in servers:
            cpu, loop_cpu = proc_cpu(pid), proc_cpu(pid, pid)
            measured = asyncio.run(load(target, method, concurrency, args.seconds))
            measured["server_cpu_s"] = proc_cpu(pid) - cpu
            measured["cpu_us_per_call"] = measured["server_cpu_s"] / measured["calls"] * 1e6
            # The main thread runs the event loop: our code, grpc.aio's Python side;
            # gRPC core's own threads (polling, I/O) do the rest.
            measured["loop_us_per_call"] = (proc_cpu(pid, pid) - loop_cpu) / measured["calls"] * 1e6
            rounds[name].append(measured)
        ratios.append(rounds["ours"][-1]["rps"] / rounds["bare"][-1]["rps"])
        if "floor" in rounds:
            floor_ratios.append(rounds["floor"][-1]["rps"] / rounds["bare"][-1]["rps"])
    row: dict[str, Any] = {"method": method, "concurrency": concurrency, "ratios": ratios}
    for name, measured in rounds.items():
        row[name] = {key: statistics.median(m[key] for m in measured) for key in measured[0]}
        row[name]["rounds"] = measured
    row["ratio"] = statistics.median(ratios)
    if floor_ratios:
        row["floor_ratio"] = statistics.median(floor_ratios)
        row["floor_ratios"] = floor_ratios
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ours = ServerProcess(folder / "ours", extra_args=["--log-level", "WARNING"]).start()
        assert ours.process is not None
        capture(folder, ours.target)
        bare, bare_target = start_reference(folder, "bare")
        floor, floor_target = start_reference(folder, "floor")
        servers = [
            ("ours", ours.target, ours.process.pid),
            ("floor", floor_target, floor.pid),
            ("bare", bare_target, bare.pid),
        ]
        try:
            for method in CALLS:
                for concurrency in levels:
                    results.append(measure_row(method, concurrency, args, servers))
        finally:
            ours.kill()
            for reference in (bare, floor):
                reference.terminate()
                reference.wait(10)
        starts = startup_ms(folder)
    info = machine()
    print(
        f"machine: {info['cpu_model']}, {info['cores']} cores, Python {info['python']}, "
        f"grpcio {info['grpcio']}"
    )
    print(
        f"date: {info['date']}; ours and bare alternately, {args.rounds} rounds of "
        f"{args.seconds:g} s each, medians; client: grpc.aio, one channel"
    )
    print()
    header = (
        f"{'method':<14}{'conc':>5}{'ours rps':>10}{'p50 ms':>8}{'p99 ms':>8}{'us/call':>8}"
        f"{'bare rps':>10}{'p50 ms':>8}{'p99 ms':>8}{'us/call':>8}{'ratio':>7}{'range':>11}"
        f"{'floor rps':>10}{'us/call':>8}{'floor/bare':>11}"
        f"{'loop us: ours':>14}{'floor':>6}{'bare':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        o, b, f = r["ours"], r["bare"], r["floor"]
        print(
            f"{r['method']:<14}{r['concurrency']:>5}{o['rps']:>10.0f}{o['p50_ms']:>8.2f}"
            f"{o['p99_ms']:>8.2f}{o['cpu_us_per_call']:>8.0f}{b['rps']:>10.0f}"
            f"{b['p50_ms']:>8.2f}{b['p99_ms']:>8.2f}{b['cpu_us_per_call']:>8.0f}"
            f"{r['ratio']:>7.2f}{min(r['ratios']):>6.2f}-{max(r['ratios']):.2f}"
            f"{f['rps']:>10.0f}{f['cpu_us_per_call']:>8.0f}"
            f"{r['floor_ratio']:>11.2f}"
            f"{o['loop_us_per_call']:>14.0f}{f['loop_us_per_call']:>6.0f}"
            f"{b['loop_us_per_call']:>6.0f}"
        )
    print()
    print(
        "ratio: ours/bare (range: lowest and highest of the rounds). floor: our servicer\n"
        "framework and gateway.open answering the same fixed messages without the driver\n"
        "call and conversion (bench/bare_server.py)."
    )
    print(
        "us/call: the server process's CPU time (all threads) per call; loop us: its main\n"
        "thread's (the event loop: handlers and grpc.aio's Python side; gRPC core's own\n"
        "threads poll and do the I/O)."
    )
    print(
        "server start to health SERVING (ms, 5 runs): "
        + ", ".join(f"{t:.0f}" for t in starts)
        + f"; median {starts[len(starts) // 2]:.0f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "results": results, "startup_ms": starts}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
