"""Overhead of the EC2 driver: our server in front of moto against boto3 calling the same
moto directly, in one run.

- ListInstances and GetInstance through deltacloud-server (gRPC, loopback) against
  DescribeInstances with boto3 (one reused client), as a ratio of median latencies
  (target: ours <= 1.2x direct);
- blob upload and download throughput through the server against boto3 put/get of the same
  bytes (target: ours >= 0.8x direct), with the CPU time each process (moto, our server,
  this client) spends per MiB, and the server's peak RSS (VmHWM), which must not grow with
  the blob size.

    .venv/bin/python -m bench.ec2_overhead [--instances 20] [--calls 200] [--blob-mib 64]
                                           [--pin-backend]

``--pin-backend`` gives moto a core of its own (the last one; our server and this client
share the others), as a cloud endpoint never shares the server's cores: it measures what
our hop adds rather than how three processes divide two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import grpc
from boto3.s3.transfer import TransferConfig

from bench.watch_fanout import proc_cpu
from deltacloud.drivers.conformance import Api, ServerProcess, metadata
from deltacloud.v1 import bucket_pb2, instance_pb2

KEY, SECRET, REGION = "AKIABENCH", "bench-secret", "us-east-1"
MIB = 1024 * 1024
CHUNK = 1 * MIB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.05)


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` (threads started later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task), cpus)


#: Latency calls are split into this many blocks; each block's ratio of medians shows how
#: far the figure moves within one run.
BLOCKS = 10


def paired(
    ours: Callable[[], Any], direct: Callable[[], Any], calls: int
) -> tuple[list[float], list[float]]:
    """Latencies of ``calls`` calls each, ours and direct alternating call by call, so that
    drift (moto growing slower, the machine's load) lands on both sides alike."""
    for _ in range(5):
        ours()
        direct()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(calls):
        for fn, out in zip((ours, direct), times, strict=True):
            started = time.perf_counter()
            fn()
            out.append(time.perf_counter() - started)
    return times


def spread(ours: list[float], direct: list[float], blocks: int = BLOCKS) -> tuple[float, float]:
    """Lowest and highest ratio of medians over consecutive blocks of the paired calls."""
    size = max(1, len(ours) // blocks)
    ratios = [
        statistics.median(ours[i : i + size]) / statistics.median(direct[i : i + size])
        for i in range(0, len(ours) - size + 1, size)
    ]
    return min(ratios), max(ratios)


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--blob-mib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="blob transfers per side")
    parser.add_argument(
        "--pin-backend", action="store_true", help="moto on a core of its own (Linux, 2+ CPUs)"
    )
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin_backend and len(cpus) < 2:
        parser.error("--pin-backend needs at least two CPUs")

    moto, url = start_moto()
    data = Path(tempfile.mkdtemp(prefix="ec2-bench-"))
    server = ServerProcess(
        data,
        extra_args=[
            "--driver",
            "ec2",
            "--driver-option",
            f"ec2.endpoint_url={url}",
            "--driver-option",
            "ec2.image_owners=amazon",
        ],
    )
    try:
        server.start()
        assert server.process is not None
        if args.pin_backend:
            pin(moto.pid, {cpus[-1]})
            for pid in (server.process.pid, os.getpid()):
                pin(pid, set(cpus[:-1]))
        kw = {
            "region_name": REGION,
            "endpoint_url": url,
            "aws_access_key_id": KEY,
            "aws_secret_access_key": SECRET,
        }
        ec2, s3 = boto3.client("ec2", **kw), boto3.client("s3", **kw)
        image = ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])[
            "Images"
        ][0]["ImageId"]
        ids = [
            i["InstanceId"]
            for i in ec2.run_instances(
                ImageId=image, MinCount=args.instances, MaxCount=args.instances
            )["Instances"]
        ]
        md = metadata(KEY, SECRET, driver="ec2")
        channel = grpc.insecure_channel(server.target)
        api = Api(channel)
        rows: list[tuple[str, list[float], list[float]]] = []
        ours, direct = paired(
            lambda: api.instances.ListInstances(
                instance_pb2.ListInstancesRequest(page_size=1000), metadata=md
            ),
            lambda: ec2.describe_instances(),
            args.calls,
        )
        rows.append(("ListInstances", ours, direct))
        ours, direct = paired(
            lambda: api.instances.GetInstance(
                instance_pb2.GetInstanceRequest(id=ids[0]), metadata=md
            ),
            lambda: ec2.describe_instances(InstanceIds=[ids[0]]),
            args.calls,
        )
        rows.append(("GetInstance", ours, direct))

        # ---- blobs ----
        s3.create_bucket(Bucket="bench")
        content = secrets.token_bytes(args.blob_mib * MIB)
        rss_before = peak_rss_mib(server.process.pid)

        def upload() -> None:
            header = bucket_pb2.UploadBlobHeader(
                bucket_id="bench", blob_id="ours.bin", content_length=len(content)
            )

            def requests() -> Iterator[bucket_pb2.UploadBlobRequest]:
                yield bucket_pb2.UploadBlobRequest(header=header)
                for i in range(0, len(content), CHUNK):
                    yield bucket_pb2.UploadBlobRequest(chunk=content[i : i + CHUNK])

            api.buckets.UploadBlob(requests(), metadata=md, timeout=600)

        def download() -> int:
            stream = api.buckets.DownloadBlob(
                bucket_pb2.DownloadBlobRequest(bucket_id="bench", id="ours.bin"), metadata=md
            )
            return sum(len(m.chunk) for m in stream)

        config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB)

        def direct_upload() -> None:
            s3.upload_fileobj(io.BytesIO(content), "bench", "direct.bin", Config=config)

        def direct_download() -> int:
            body = s3.get_object(Bucket="bench", Key="direct.bin")["Body"]
            return sum(len(c) for c in body.iter_chunks(256 * 1024))

        throughput: list[tuple[str, list[float], list[float]]] = []
        # CPU seconds per MiB of each process, per side: where a transfer's work goes.
        cpu: dict[tuple[str, str], list[float]] = {}
        pids = {"moto": moto.pid, "server": server.process.pid}

        def costs(fn: Callable[[], Any]) -> tuple[float, dict[str, float]]:
            before = {name: proc_cpu(pid) for name, pid in pids.items()}
            mine_before = own_cpu()
            t0 = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - t0
            spent = {name: proc_cpu(pid) - before[name] for name, pid in pids.items()}
            spent["client"] = own_cpu() - mine_before
            return elapsed, {k: v / args.blob_mib * 1e3 for k, v in spent.items()}

        for name, mine, theirs in (
            ("upload", upload, direct_upload),
            ("download", download, direct_download),
        ):
            ours_times, direct_times = [], []
            for _ in range(args.repeats):  # alternate, then take medians: the VM is noisy
                sides = (("ours", mine, ours_times), ("direct", theirs, direct_times))
                for side, fn, times in sides:
                    elapsed, per_mib = costs(fn)
                    times.append(elapsed)
                    for process, ms in per_mib.items():
                        cpu.setdefault((f"{name} {side}", process), []).append(ms)
            throughput.append((name, ours_times, direct_times))
        rss_after = peak_rss_mib(server.process.pid)
        channel.close()
    finally:
        server.kill()
        moto.kill()
        moto.wait(10)

    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print(f"# ec2_overhead  {now}  {platform.node()}  {platform.platform()}")
    layout = (
        f"moto pinned to CPU {cpus[-1]}, server and client to CPUs {cpus[:-1]}"
        if args.pin_backend
        else "unpinned: moto, server and client share every CPU"
    )
    print(f"# python {platform.python_version()}, {os.cpu_count()} CPUs, moto_server on loopback")
    print(f"# {layout}")
    print(
        f"# {args.instances} instances, {args.calls} calls each, ours and direct alternating "
        f"(median; range: lowest and highest ratio over {BLOCKS} blocks of calls)"
    )
    print(
        f"# blob {args.blob_mib} MiB x {args.repeats} each way, alternating (median; range: "
        "lowest and highest ratio of one transfer to the direct one after it)"
    )
    print(f"{'call':<16}{'ours ms':>10}{'direct ms':>11}{'ratio':>8}{'range':>13}  target <= 1.2")
    for name, ours, direct in rows:
        ours_m, direct_m = statistics.median(ours), statistics.median(direct)
        low, high = spread(ours, direct)
        print(
            f"{name:<16}{ours_m * 1e3:>10.2f}{direct_m * 1e3:>11.2f}{ours_m / direct_m:>8.2f}"
            f"{low:>8.2f}-{high:.2f}"
        )
    print(
        f"{'blob':<16}{'ours MiB/s':>10}{'direct MiB/s':>13}{'ratio':>7}{'range':>13}"
        "  target >= 0.8"
    )
    for name, ours_s, direct_s in throughput:
        ours_t = args.blob_mib / statistics.median(ours_s)
        direct_t = args.blob_mib / statistics.median(direct_s)
        # Throughput ratio of a pair: direct time over ours.
        pairs = [d / o for o, d in zip(ours_s, direct_s, strict=True)]
        print(
            f"{name:<16}{ours_t:>10.1f}{direct_t:>13.1f}{ours_t / direct_t:>7.2f}"
            f"{min(pairs):>8.2f}-{max(pairs):.2f}"
        )
    print("CPU ms per MiB (median)   moto  server  client")
    for label in ("upload ours", "upload direct", "download ours", "download direct"):
        row = [statistics.median(cpu[(label, p)]) for p in ("moto", "server", "client")]
        print(f"  {label:<22}{row[0]:>7.2f}{row[1]:>8.2f}{row[2]:>8.2f}")
    print(f"server peak RSS: {rss_before:.0f} MiB before blobs, {rss_after:.0f} MiB after")


if __name__ == "__main__":
    main()
