"""Resume storm: N watchers resuming at once after a server restart, as after a deploy.

    .venv/bin/python -m bench.resume_storm [--watchers 1000] [--history 600]

A mock server journals ``--history`` events (RebootInstance on inst0), is stopped and
started again (its in-memory buffer of recent events is then empty), and N
WatchInstanceEvents streams resume from revision 0 at once, from one grpc.aio client process
(100 streams per channel). Meanwhile RebootInstance on inst1 is called every 20 ms. Printed:
the time until every watcher has every event, the server's CPU time for that, and the
reboots' latency before and during the storm.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import grpc

from bench.watch_fanout import MD, proc_cpu
from deltacloud.drivers.conformance import ServerProcess
from deltacloud.v1 import instance_pb2, instance_pb2_grpc


async def storm(target: str, pid: int, watchers: int, history: int) -> None:
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, watchers // 100))
    ]
    stub = instance_pb2_grpc.InstanceServiceStub(channels[0])
    received = [0] * watchers

    async def watch(index: int) -> None:
        call = instance_pb2_grpc.InstanceServiceStub(
            channels[index % len(channels)]
        ).WatchInstanceEvents(
            instance_pb2.WatchInstanceEventsRequest(after_revision=0), metadata=MD
        )
        async for message in call:
            received[index] += len(message.events)
            if received[index] >= history:
                call.cancel()
                return

    async def reboots(count: int) -> list[float]:
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            request = instance_pb2.RebootInstanceRequest(id="inst1")
            await stub.RebootInstance(request, metadata=MD)
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.02)
        return latencies

    quiet = await reboots(20)
    cpu, began = proc_cpu(pid), time.perf_counter()
    tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
    during = await reboots(20)
    await asyncio.gather(*tasks)
    took, spent = time.perf_counter() - began, proc_cpu(pid) - cpu
    for channel in channels:
        await channel.close()
    print(
        f"{watchers} watchers resuming {history} events after a restart: all caught up in "
        f"{took:.2f} s, server CPU {spent:.2f} s; RebootInstance p50 {statistics.median(quiet):.1f}"
        f" ms before, during: p50 {statistics.median(during):.1f} ms, max {max(during):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--history", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = ServerProcess(Path(folder), extra_args=["--log-level", "WARNING"]).start()
        try:
            with grpc.insecure_channel(server.target) as channel:
                stub = instance_pb2_grpc.InstanceServiceStub(channel)
                for _ in range(args.history):
                    stub.RebootInstance(instance_pb2.RebootInstanceRequest(id="inst0"), metadata=MD)
            server.stop()
            server.start()
            assert server.process is not None
            asyncio.run(storm(server.target, server.process.pid, args.watchers, args.history))
        finally:
            server.kill()


if __name__ == "__main__":
    main()
