"""Robustness under concurrency, crashes and deadlines: what the acknowledged calls imply is
exactly what the server holds afterwards, and a hanging backend call gives its worker back
when the client's deadline passes."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import Api, ServerProcess

from deltacloud.drivers.conformance.watching import Watcher
from deltacloud.v1 import (
    bucket_pb2,
    common_pb2,
    firewall_pb2,
    image_pb2,
    instance_pb2,
    key_pb2,
    load_balancer_pb2,
    realm_pb2,
    storage_snapshot_pb2,
    storage_volume_pb2,
)
from support import ALICE, BOB, MD, failure


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path, extra_args=["--workers", "2"]).start()
    yield server
    server.kill()


# ---- deadlines ---------------------------------------------------------------------------


def test_a_hanging_backend_call_ends_at_the_clients_deadline_and_frees_its_worker(
    proc: ServerProcess,
) -> None:
    with grpc.insecure_channel(proc.target) as channel:
        api = Api(channel)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            api.realms.GetRealm(realm_pb2.GetRealmRequest(id="hang"), metadata=MD, timeout=0.5)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2.0
        # Two workers only: if hanging calls kept them, these would queue behind.
        hung = [
            api.realms.GetRealm.future(
                realm_pb2.GetRealmRequest(id="hang"), metadata=MD, timeout=0.5
            )
            for _ in range(2)
        ]
        for future in hung:
            with pytest.raises(grpc.RpcError):
                future.result()
        time.sleep(0.1)  # the driver returned at the deadline: the workers are free
        answered = time.monotonic()
        realms = api.realms.ListRealms(realm_pb2.ListRealmsRequest(), metadata=MD, timeout=5)
        assert [r.id for r in realms.realms] == ["eu", "us"]
        assert time.monotonic() - answered < 1.0


def test_a_call_whose_deadline_passed_in_the_queue_never_reaches_the_driver(
    proc: ServerProcess,
) -> None:
    with grpc.insecure_channel(proc.target) as channel:
        api = Api(channel)
        # Occupy both workers for 1 s, then queue a create with a 0.3 s deadline.
        blockers = [
            api.realms.GetRealm.future(
                realm_pb2.GetRealmRequest(id="hang"), metadata=MD, timeout=1.0
            )
            for _ in range(2)
        ]
        time.sleep(0.1)
        with pytest.raises(grpc.RpcError) as caught:
            api.keys.CreateKey(key_pb2.CreateKeyRequest(name="too-late"), metadata=MD, timeout=0.3)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        for blocker in blockers:
            with pytest.raises(grpc.RpcError):
                blocker.result()
        time.sleep(0.2)
        keys = api.keys.ListKeys(key_pb2.ListKeysRequest(), metadata=MD).keys
        assert "too-late" not in [k.id for k in keys]


# ---- concurrency -------------------------------------------------------------------------


def test_concurrent_clients_leave_exactly_what_their_acknowledged_calls_imply(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path, extra_args=["--workers", "8"]).start()
    users = {"mockuser": MD, "alice": ALICE, "bob": BOB}
    expected: dict[str, dict[str, set[str]]] = {
        u: {"keys": set(), "volumes": set(), "instances": set()} for u in users
    }
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        user = rng.choice(list(users))
        md = users[user]
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            mine: dict[str, list[str]] = {"keys": [], "volumes": [], "instances": []}
            for step in range(25):
                choice = rng.random()
                if choice < 0.3:
                    key = api.keys.CreateKey(
                        key_pb2.CreateKeyRequest(name=f"k-{seed}-{step}"), metadata=md
                    )
                    mine["keys"].append(key.id)
                elif choice < 0.5 and mine["keys"]:
                    key_id = mine["keys"].pop(rng.randrange(len(mine["keys"])))
                    api.keys.DeleteKey(key_pb2.DeleteKeyRequest(id=key_id), metadata=md)
                elif choice < 0.7:
                    volume = api.volumes.CreateStorageVolume(
                        storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=1),
                        metadata=md,
                    )
                    mine["volumes"].append(volume.id)
                elif choice < 0.8 and mine["volumes"]:
                    volume_id = mine["volumes"].pop(rng.randrange(len(mine["volumes"])))
                    api.volumes.DeleteStorageVolume(
                        storage_volume_pb2.DeleteStorageVolumeRequest(id=volume_id), metadata=md
                    )
                else:
                    created = api.instances.CreateInstance(
                        instance_pb2.CreateInstanceRequest(image_id="img1"), metadata=md
                    ).instances[0]
                    mine["instances"].append(created.id)
            with lock:
                for kind, ids in mine.items():
                    expected[user][kind].update(ids)

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            list(pool.map(worker, range(24)))
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            for user, md in users.items():
                keys = {
                    k.id for k in api.keys.ListKeys(key_pb2.ListKeysRequest(), metadata=md).keys
                }
                volumes = {
                    v.id
                    for v in api.volumes.ListStorageVolumes(
                        storage_volume_pb2.ListStorageVolumesRequest(page_size=1000), metadata=md
                    ).storage_volumes
                }
                instances = {
                    i.id
                    for i in api.instances.ListInstances(
                        instance_pb2.ListInstancesRequest(page_size=1000), metadata=md
                    ).instances
                }
                fixtures = user == "mockuser"
                assert keys - ({"test-key"} if fixtures else set()) == expected[user]["keys"]
                assert (
                    volumes - ({"vol1", "vol2", "vol3"} if fixtures else set())
                    == (expected[user]["volumes"])
                )
                assert (
                    instances - ({"inst0", "inst1", "inst2", "inst3"} if fixtures else set())
                    == expected[user]["instances"]
                )
            all_instances = [i for u in expected.values() for i in u["instances"]]
            assert len(all_instances) == len(set(all_instances))  # no id handed out twice
    finally:
        server.kill()


# ---- crash -------------------------------------------------------------------------------


def test_every_read_sees_the_writes_acknowledged_before_it(tmp_path: Path) -> None:
    """Reads are answered from the mock's in-memory snapshot, on the event loop, while other
    clients write: a read issued after a write was acknowledged must see it (the snapshot
    is checked after every commit), whatever the other clients do meanwhile."""
    server = ServerProcess(tmp_path, extra_args=["--workers", "8"]).start()
    stale: list[str] = []

    def worker(seed: int) -> None:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            for step in range(15):
                key = api.keys.CreateKey(
                    key_pb2.CreateKeyRequest(name=f"rw-{seed}-{step}"), metadata=MD
                )
                if key.id not in [
                    k.id
                    for k in api.keys.ListKeys(
                        key_pb2.ListKeysRequest(page_size=1000), metadata=MD
                    ).keys
                ]:
                    stale.append(f"{key.id} missing from the list after its create")
                api.keys.DeleteKey(key_pb2.DeleteKeyRequest(id=key.id), metadata=MD)
                try:
                    api.keys.GetKey(key_pb2.GetKeyRequest(id=key.id), metadata=MD)
                    stale.append(f"{key.id} still readable after its delete")
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.NOT_FOUND:
                        raise

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(worker, range(8)))
    finally:
        server.kill()
    assert stale == []


def test_kill_9_during_a_stream_of_writes_keeps_every_acknowledged_one(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            n = 0
            while not stop.is_set():
                try:
                    created = api.instances.CreateInstance(
                        instance_pb2.CreateInstanceRequest(image_id="img2"),
                        metadata=MD,
                        timeout=2,
                    ).instances[0]
                except grpc.RpcError:
                    return  # the server died under this call: not acknowledged
                acknowledged.append(created.id)
                n += 1

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(10)
    assert len(acknowledged) > 10
    server.restart()
    try:
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            present = {
                i.id
                for i in api.instances.ListInstances(
                    instance_pb2.ListInstancesRequest(page_size=1000), metadata=MD
                ).instances
            }
            assert set(acknowledged) <= present
            # The journal resumes: every acknowledged create has its CREATE event, in one
            # gap-free sequence.
            watcher = Watcher(
                channel, MD, instance_pb2.WatchInstanceEventsRequest(after_revision=0)
            )
            watcher.wait_until(
                lambda w: (
                    set(acknowledged)
                    <= {
                        e.instance_id
                        for e in w.events
                        if e.cause == instance_pb2.EVENT_CAUSE_CREATE
                    }
                ),
                timeout=20,
            )
            watcher.cancel()
            revisions = [e.revision for e in watcher.events]
            assert revisions == list(range(1, len(revisions) + 1))
            created = [e for e in watcher.events if e.cause == instance_pb2.EVENT_CAUSE_CREATE]
            assert all(e.state == common_pb2.INSTANCE_STATE_PENDING for e in created)
    finally:
        server.kill()


def test_errors_carry_error_info_even_for_unexpected_input(proc: ServerProcess) -> None:
    with grpc.insecure_channel(proc.target) as channel:
        api = Api(channel)
        with pytest.raises(grpc.RpcError) as caught:
            api.instances.GetInstance(instance_pb2.GetInstanceRequest(id="\x00" * 10), metadata=MD)
        f = failure(caught.value)
        # No object has such an id (it was NOT_FOUND; ec2 answered UNAVAILABLE).
        assert (f.code, f.reason, f.domain) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_TEXT",
            "deltacloud",
        )


def test_an_error_echoing_a_huge_id_still_carries_error_info(proc: ServerProcess) -> None:
    """The id is echoed in the message and in ErrorInfo, both in trailing metadata: with a
    10,000-character id they passed gRPC's 16 KiB and the client got RESOURCE_EXHAUSTED
    ("received metadata size exceeds hard limit") without ErrorInfo. Both are clipped."""
    huge = "i" * 10_000
    with grpc.insecure_channel(proc.target) as channel:
        api = Api(channel)
        calls = [
            (api.instances.GetInstance, instance_pb2.GetInstanceRequest(id=huge)),
            (api.keys.GetKey, key_pb2.GetKeyRequest(id=huge)),
            (api.buckets.GetBlob, bucket_pb2.GetBlobRequest(bucket_id=huge, id=huge)),
            (api.volumes.GetStorageVolume, storage_volume_pb2.GetStorageVolumeRequest(id=huge)),
        ]
        for call, request in calls:
            with pytest.raises(grpc.RpcError) as caught:
                call(request, metadata=MD)
            f = failure(caught.value)
            assert f.code == grpc.StatusCode.NOT_FOUND, (call, f)
            assert len(f.message) < 2_000 and "more characters" in f.message
            assert all(len(value) < 1_000 for value in f.metadata.values())


def _text_requests(api: Api, name: str, description: str) -> list[tuple[str, Any, Any]]:
    """Every create that takes a name (and a description), given these."""
    listener = load_balancer_pb2.Listener(
        protocol="HTTP", load_balancer_port=80, instance_port=8080
    )
    return [
        (
            "instance",
            api.instances.CreateInstance,
            instance_pb2.CreateInstanceRequest(image_id="img1", name=name),
        ),
        ("key", api.keys.CreateKey, key_pb2.CreateKeyRequest(name=name)),
        ("bucket", api.buckets.CreateBucket, bucket_pb2.CreateBucketRequest(name=name)),
        (
            "firewall",
            api.firewalls.CreateFirewall,
            firewall_pb2.CreateFirewallRequest(name=name or "fw", description=description or "d"),
        ),
        (
            "load balancer",
            api.load_balancers.CreateLoadBalancer,
            load_balancer_pb2.CreateLoadBalancerRequest(
                name=name or "lb", realm_ids=["us"], listeners=[listener]
            ),
        ),
        (
            "image",
            api.images.CreateImage,
            image_pb2.CreateImageRequest(instance_id="inst0", name=name, description=description),
        ),
        (
            "volume",
            api.volumes.CreateStorageVolume,
            storage_volume_pb2.CreateStorageVolumeRequest(
                capacity_gb=1, name=name, description=description
            ),
        ),
        (
            "snapshot",
            api.snapshots.CreateStorageSnapshot,
            storage_snapshot_pb2.CreateStorageSnapshotRequest(
                storage_volume_id="vol1", name=name, description=description
            ),
        ),
        (
            "device",
            api.volumes.AttachStorageVolume,
            storage_volume_pb2.AttachStorageVolumeRequest(
                id="vol1", instance_id="inst0", device=name or "/dev/sdq"
            ),
        ),
    ]


@pytest.mark.parametrize("bad", ["bell\x07", "nul\x00", "esc\x1b[31m", "del\x7f", "x\ufffe"])
def test_names_with_control_characters_are_refused_before_any_driver_work(
    proc: ServerProcess, bad: str
) -> None:
    """Checked by the server for every driver: EC2 stored such a name (moto did), then
    could not parse its own answers, and every list of that collection failed."""
    with grpc.insecure_channel(proc.target) as channel:
        api = Api(channel)
        for what, call, request in _text_requests(api, bad, ""):
            with pytest.raises(grpc.RpcError) as caught:
                call(request, metadata=MD)
            f = failure(caught.value)
            assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TEXT"), what
            assert f.metadata["field"] in ("name", "device"), what
        for what, call, request in _text_requests(api, "", f"two\nlines {bad}"):
            if "description" not in request.DESCRIPTOR.fields_by_name:
                continue
            with pytest.raises(grpc.RpcError) as caught:
                call(request, metadata=MD)
            f = failure(caught.value)
            assert (f.code, f.metadata["field"]) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "description",
            ), what


def test_descriptions_may_break_lines(proc: ServerProcess) -> None:
    with grpc.insecure_channel(proc.target) as channel:
        api = Api(channel)
        text = "first line\r\n\tsecond line\n"
        made = api.firewalls.CreateFirewall(
            firewall_pb2.CreateFirewallRequest(name="multi", description=text), metadata=MD
        )
        assert made.description == text
        volume = api.volumes.CreateStorageVolume(
            storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=1, description=text),
            metadata=MD,
        )
        assert volume.description == text
