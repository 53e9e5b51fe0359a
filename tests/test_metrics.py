"""Prometheus metrics on --metrics-listen (server/metrics.py): scraped over HTTP from a real
server while real calls go through it; the counts must be exactly what the calls were."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from conftest import Api, ServerProcess
from scrape import Series, eventually, metrics_address, parse, scrape, value

from deltacloud.v1 import instance_pb2
from support import EXTRA_USERS, MD, metadata

ROOT = Path(__file__).resolve().parent.parent
GET = {"grpc_service": "deltacloud.v1.InstanceService", "grpc_method": "GetInstance"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, str, Api]]:
    server = ServerProcess(tmp_path, extra_args=["--metrics-listen", "127.0.0.1:0"]).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            yield server, metrics_address(server), Api(channel)
    finally:
        server.kill()


def test_calls_are_counted_by_method_and_code_with_their_times(
    served: tuple[ServerProcess, str, Api],
) -> None:
    _, address, api = served
    before = parse(scrape(address))
    # Every method of every service is there from the start, at zero.
    assert ("grpc_server_started_total", frozenset({*GET.items(), ("grpc_type", "unary")})) in (
        before
    )
    watch = {"grpc_method": "WatchInstanceEvents", "grpc_type": "server_stream"}
    assert value(before, "grpc_server_started_total", **watch) == 0
    assert ("grpc_server_started_total", frozenset({
        ("grpc_type", "unary"), ("grpc_service", "deltacloud.v1.DiscoveryService"),
        ("grpc_method", "ListDrivers")}),
    ) in before  # fmt: skip

    for _ in range(7):
        api.instances.GetInstance(instance_pb2.GetInstanceRequest(id="inst0"), metadata=MD)
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as missing:
            api.instances.GetInstance(instance_pb2.GetInstanceRequest(id="nope"), metadata=MD)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as refused:
        api.instances.GetInstance(
            instance_pb2.GetInstanceRequest(id="inst0"), metadata=metadata("mockuser", "wrong")
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # A refusal's status leaves (context.abort sends it) before its handler resumes to count
    # it: the client may scrape first, on a loaded machine.
    eventually(
        lambda: value(parse(scrape(address)), "grpc_server_handling_seconds_count", **GET) == 11
    )
    after = parse(scrape(address))
    assert value(after, "grpc_server_started_total", **GET) == 11
    assert value(after, "grpc_server_handled_total", **GET, grpc_code="OK") == 7
    assert value(after, "grpc_server_handled_total", **GET, grpc_code="NOT_FOUND") == 3
    assert value(after, "grpc_server_handled_total", **GET, grpc_code="UNAUTHENTICATED") == 1
    assert value(after, "grpc_server_handling_seconds_count", **GET) == 11
    assert 0 < value(after, "grpc_server_handling_seconds_sum", **GET) < 11 * 5
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in after.items()
        if name == "grpc_server_handling_seconds_bucket" and set(GET.items()) <= labels
    )
    assert buckets[-1] == (float("inf"), 11)
    counts = [count for _, count in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    # No other method moved.
    assert value(after, "grpc_server_started_total", grpc_method="ListInstances") == 0
    # The driver's side: one get_instance per call (the credentials checked in the same
    # call), by the status its outcome became.
    driver = {"driver": "mock", "method": "get_instance"}
    assert value(after, "deltacloud_driver_calls_total", **driver, code="OK") == 7
    assert value(after, "deltacloud_driver_calls_total", **driver, code="NOT_FOUND") == 3
    assert value(after, "deltacloud_driver_calls_total", **driver, code="UNAUTHENTICATED") == 1
    assert value(after, "deltacloud_driver_call_seconds_count", **driver) == 11


def test_watch_streams_request_ids_and_events(
    served: tuple[ServerProcess, str, Api],
) -> None:
    _, address, api = served
    stream = api.instances.WatchInstanceEvents(
        instance_pb2.WatchInstanceEventsRequest(), metadata=MD
    )
    next(stream)  # the first progress message: the stream is open
    series = parse(scrape(address))
    assert value(series, "deltacloud_watch_streams") == 1
    assert value(series, "grpc_server_started_total", grpc_method="WatchInstanceEvents") == 1

    request_id = str(uuid.uuid4())
    request = instance_pb2.CreateInstanceRequest(image_id="img1", request_id=request_id)
    first = api.instances.CreateInstance(request, metadata=MD)
    again = api.instances.CreateInstance(request, metadata=MD)
    assert first == again
    with pytest.raises(grpc.RpcError) as reused:
        other = instance_pb2.CreateInstanceRequest(image_id="img2", request_id=request_id)
        api.instances.CreateInstance(other, metadata=MD)
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def journaled() -> Series:
        return parse(scrape(address))

    # The create, then the mock's pending -> running observed by the monitor (automatic).
    eventually(
        lambda: value(journaled(), "deltacloud_events_journaled_total", cause="automatic") >= 1
    )
    series = journaled()
    assert value(series, "deltacloud_events_journaled_total", cause="create") == 1
    assert value(series, "deltacloud_request_ids_total", outcome="first") == 1
    assert value(series, "deltacloud_request_ids_total", outcome="kept") == 1
    assert value(series, "deltacloud_request_ids_total", outcome="reused") == 1
    assert value(series, "deltacloud_monitor_polls_total", driver="mock", outcome="ok") >= 1
    assert value(series, "deltacloud_monitor_poll_seconds_count", driver="mock") >= 1

    stream.cancel()
    eventually(lambda: value(journaled(), "deltacloud_watch_streams") == 0)
    series = journaled()
    code = {"grpc_method": "WatchInstanceEvents", "grpc_code": "CANCELLED"}
    assert value(series, "grpc_server_handled_total", **code) == 1


def test_calls_past_their_deadline_and_the_workers_they_hold(tmp_path: Path) -> None:
    """With one worker and a driver call of 1.5 s: the first call's client gives up at
    0.3 s (counted DEADLINE_EXCEEDED at once; its worker stays busy until the driver
    returns); a second call waits for the worker (queued), its deadline passes there, and
    it leaves the queue without ever running."""
    server = ServerProcess(
        tmp_path,
        extra_args=[
            "--metrics-listen", "127.0.0.1:0", "--workers", "1",
            "--driver-option", "limited.list_seconds=1.5",
        ],
    ).start()  # fmt: skip
    listing = {"grpc_method": "ListInstances"}
    late = {**listing, "grpc_code": "DEADLINE_EXCEEDED"}

    def now(name: str, **labels: str) -> float:
        return value(parse(scrape(address)), name, **labels)

    try:
        address = metrics_address(server)
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            request = instance_pb2.ListInstancesRequest()
            limited = metadata(driver="limited")
            with pytest.raises(grpc.RpcError) as first:
                api.instances.ListInstances(request, metadata=limited, timeout=0.3)
            assert first.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            eventually(lambda: now("grpc_server_handled_total", **late) == 1)
            assert now("deltacloud_workers_busy", pool="calls") == 1
            assert now("deltacloud_workers", pool="calls") == 1
            second = api.instances.ListInstances.future(request, metadata=limited, timeout=1.0)
            eventually(lambda: now("deltacloud_workers_queued", pool="calls") == 1)
            assert second.exception(timeout=10).code() == grpc.StatusCode.DEADLINE_EXCEEDED
            eventually(lambda: now("grpc_server_handled_total", **late) == 2)
            eventually(lambda: now("deltacloud_workers_busy", pool="calls") == 0)
            assert now("deltacloud_workers_queued", pool="calls") == 0
            assert now("grpc_server_handled_total", **listing, grpc_code="OK") == 0
            # Both driver calls were given up by their RPCs (the first one's thread ran on).
            calls = {"driver": "limited", "method": "list_instances"}
            assert now("deltacloud_driver_calls_total", **calls, code="CANCELLED") == 2
    finally:
        server.kill()


def test_process_metrics_and_no_credentials(served: tuple[ServerProcess, str, Api]) -> None:
    _, address, api = served
    alice = metadata("alice", EXTRA_USERS["alice"])
    api.instances.ListInstances(instance_pb2.ListInstancesRequest(), metadata=alice)
    text = scrape(address)
    series = parse(text)
    assert value(series, "process_resident_memory_bytes") > 10 * 2**20
    assert value(series, "process_open_fds") > 3
    assert value(series, "process_cpu_seconds_total") > 0
    assert abs(value(series, "process_start_time_seconds") - time.time()) < 300
    assert value(series, "deltacloud_build_info") == 1
    assert value(series, "deltacloud_driver_instances") == 1
    for secret in ("alice", EXTRA_USERS["alice"], "mockpassword", "mockuser"):
        assert secret not in text


def test_the_endpoint_answers_only_metrics_and_survives_bad_clients(
    served: tuple[ServerProcess, str, Api],
) -> None:
    _, address, _ = served
    for path, status in (("/", 404), ("/metrics/x", 404)):
        with pytest.raises(urllib.error.HTTPError) as error:
            scrape(address, path)
        assert error.value.code == status
    post = urllib.request.Request(f"http://{address}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(post, timeout=10)
    assert error.value.code == 405
    head = urllib.request.Request(f"http://{address}/metrics", method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as response:
        assert response.status == 200 and response.read() == b""
    host, port = address.rsplit(":", 1)
    # A request head past the limit, and one cut half-way: dropped, nothing else.
    for junk in (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 100_000, b"GET /met"):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1024) == b""
    assert "grpc_server_started_total" in scrape(address)
    assert "?" not in address and scrape(address, "/metrics?name[]=x")


def test_off_by_default_and_bad_addresses_stop_the_start(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "off").start()
    try:
        serving = [json.loads(line) for line in server.log().splitlines() if '"serving"' in line]
        assert "metrics" not in serving[0]
    finally:
        server.kill()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for listen, says in (
            ("nowhere", "expected HOST:PORT"),
            ("127.0.0.1:99999", "expected HOST:PORT"),
            (f"127.0.0.1:{port}", f"cannot serve metrics on 127.0.0.1:{port}"),
        ):
            result = subprocess.run(
                [sys.executable, "-m", "deltacloud.server.main", "--listen", "127.0.0.1:0",
                 "--data-dir", str(tmp_path / "bad"), "--metrics-listen", listen],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert result.returncode != 0, listen
            assert says in result.stderr, result.stderr
            assert "Traceback" not in result.stderr


def test_the_documented_alert_rules_parse_and_select_exported_metrics(
    served: tuple[ServerProcess, str, Api],
) -> None:
    """docs/operations.md's alert rules, parsed by Prometheus's own PromQL parser
    (scripts/promql_names.mjs): every expression is valid, and every metric it selects
    is one the server exports."""
    _, address, _ = served
    doc = (ROOT / "docs" / "operations.md").read_text()
    blocks = [yaml.safe_load(b.split("```")[0]) for b in doc.split("```yaml")[1:]]
    rules = [r for b in blocks if "groups" in b for g in b["groups"] for r in g["rules"]]
    assert len(rules) >= 4, rules
    result = subprocess.run(
        ["node", str(ROOT / "scripts" / "promql_names.mjs")],
        input=json.dumps([r["expr"] for r in rules]),
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    exported = {
        line.split()[2] for line in scrape(address).splitlines() if line.startswith("# TYPE")
    }
    for parsed in json.loads(result.stdout):
        assert parsed["valid"], parsed["expr"]
        assert parsed["metrics"], parsed["expr"]
        for name in parsed["metrics"]:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in exported or family in exported, (name, parsed["expr"])


def test_the_metrics_table_documents_every_family_and_nothing_else(
    served: tuple[ServerProcess, str, Api],
) -> None:
    _, address, _ = served
    doc = (ROOT / "docs" / "operations.md").read_text()
    section = doc.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("| `"))
    documented = set(re.findall(r"`((?:grpc_server|deltacloud|process)_[a-z_]+)", table))
    exported = {
        line.split()[2] for line in scrape(address).splitlines() if line.startswith("# TYPE")
    }
    assert exported - documented == set(), "exported but not in the table"
    assert documented - exported == set(), "in the table but not exported"
