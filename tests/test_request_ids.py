"""Retried creates answer once (AIP-155 request ids, server/requests.py): the same
request_id is answered what its first attempt was answered, the driver called once; across
a kill -9 and restart; while the first attempt runs; after its client gave up on it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from conftest import Api, ServerProcess
from google.protobuf import duration_pb2

from deltacloud.drivers.conformance.stubs import failure
from deltacloud.v1 import (
    address_pb2,
    firewall_pb2,
    instance_pb2,
    key_pb2,
    storage_snapshot_pb2,
    storage_volume_pb2,
)
from support import ALICE, BOB, MD, metadata

LIMITED = metadata(driver="limited")


def new_id() -> str:
    return str(uuid.uuid4())


def instance_ids(api: Api, md: Any = MD) -> set[str]:
    reply = api.instances.ListInstances(instance_pb2.ListInstancesRequest(), metadata=md)
    return {i.id for i in reply.instances}


def create_instance(api: Api, request_id: str, md: Any = MD, **fields: Any) -> Any:
    request = instance_pb2.CreateInstanceRequest(image_id="img1", request_id=request_id, **fields)
    return api.instances.CreateInstance(request, metadata=md, timeout=10)


def refusal(call: Callable[..., Any], request: Any, md: Any = MD) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=md, timeout=10)
    return failure(caught.value)


def listed(list_call: Callable[..., Any], request: Any, items: str) -> set[str]:
    return {item.id for item in getattr(list_call(request, metadata=MD), items)}


#: Each create that takes a request id: (call, request, the ids of what exists now).
CREATES: dict[str, Callable[[Api], tuple[Callable[..., Any], Any, Callable[[], set[str]]]]] = {
    "instance": lambda api: (
        api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id="img1", name="once"),
        lambda: instance_ids(api),
    ),
    "storage volume": lambda api: (
        api.volumes.CreateStorageVolume,
        storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=2, name="once"),
        lambda: listed(
            api.volumes.ListStorageVolumes,
            storage_volume_pb2.ListStorageVolumesRequest(),
            "storage_volumes",
        ),
    ),
    "storage snapshot": lambda api: (
        api.snapshots.CreateStorageSnapshot,
        storage_snapshot_pb2.CreateStorageSnapshotRequest(storage_volume_id="vol1", name="once"),
        lambda: listed(
            api.snapshots.ListStorageSnapshots,
            storage_snapshot_pb2.ListStorageSnapshotsRequest(),
            "storage_snapshots",
        ),
    ),
    "address": lambda api: (
        api.addresses.CreateAddress,
        address_pb2.CreateAddressRequest(),
        lambda: listed(
            api.addresses.ListAddresses, address_pb2.ListAddressesRequest(), "addresses"
        ),
    ),
}


@pytest.mark.parametrize("kind", CREATES)
def test_a_retried_create_is_answered_once(fresh_api: Api, kind: str) -> None:
    call, request, existing = CREATES[kind](fresh_api)
    before = existing()
    request.request_id = new_id()
    first = call(request, metadata=MD, timeout=10)
    # The same id in another spelling of the same UUID is the same id.
    request.request_id = request.request_id.upper()
    again = call(request, metadata=MD, timeout=10)
    assert again == first
    assert existing() - before == {first.instances[0].id if kind == "instance" else first.id}, (
        "one created, whatever the retries"
    )
    # A new request id is a new create.
    request.request_id = new_id()
    other = call(request, metadata=MD, timeout=10)
    assert len(existing() - before) == 2
    assert other != first


def test_without_a_request_id_every_call_creates(fresh_api: Api) -> None:
    before = instance_ids(fresh_api)
    create_instance(fresh_api, "")
    create_instance(fresh_api, "")
    assert len(instance_ids(fresh_api) - before) == 2


def test_the_same_request_id_with_another_request_is_refused(fresh_api: Api) -> None:
    request_id = new_id()
    create_instance(fresh_api, request_id, name="first")
    before = instance_ids(fresh_api)
    f = refusal(
        fresh_api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id="img1", name="second", request_id=request_id),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    assert f.metadata["request_id"] == request_id
    assert instance_ids(fresh_api) == before


def test_a_retry_spelling_the_same_create_another_way_is_the_same_request(
    fresh_api: Api,
) -> None:
    """instance_count 0 means 1, and a firewall named twice is named once: a retry that
    spells the request the other way gets the first answer, not REQUEST_ID_REUSED."""
    fw = fresh_api.firewalls.CreateFirewall(
        firewall_pb2.CreateFirewallRequest(name="web", description="web"), metadata=MD
    ).id
    request_id = new_id()
    before = instance_ids(fresh_api)
    first = create_instance(fresh_api, request_id, instance_count=0, firewall_ids=[fw])
    again = create_instance(fresh_api, request_id, instance_count=1, firewall_ids=[fw, fw])
    assert again == first
    assert len(instance_ids(fresh_api) - before) == 1
    # Two instances are another request.
    f = refusal(
        fresh_api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(
            image_id="img1", request_id=request_id, instance_count=2, firewall_ids=[fw]
        ),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")


@pytest.mark.parametrize("value", ["1", "not-a-uuid", "x" * 100_000, "12345678-1234-1234-1234"])
def test_a_request_id_must_be_a_uuid(fresh_api: Api, value: str) -> None:
    before = instance_ids(fresh_api)
    f = refusal(
        fresh_api.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id="img1", request_id=value),
    )
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST_ID")
    assert f.metadata["field"] == "request_id"
    assert len(f.message) < 300  # a huge value is not echoed whole
    assert instance_ids(fresh_api) == before


def test_request_ids_belong_to_their_credentials(fresh_api: Api) -> None:
    """The same id from two users is two creates, each answered its own."""
    request_id = new_id()
    alice = create_instance(fresh_api, request_id, ALICE).instances[0]
    bob = create_instance(fresh_api, request_id, BOB).instances[0]
    assert alice.id != bob.id
    assert alice.id in instance_ids(fresh_api, ALICE) and bob.id in instance_ids(fresh_api, BOB)
    assert create_instance(fresh_api, request_id, ALICE).instances[0] == alice


def test_a_kept_answer_is_not_given_to_credentials_no_longer_accepted(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """alice's password changes (the server restarts with new users): a retry with the old
    one is UNAUTHENTICATED, not answered from what was kept for it."""
    server = ServerProcess(tmp_path_factory.mktemp("revoked")).start()
    try:
        request_id = new_id()
        with grpc.insecure_channel(server.target) as channel:
            create_instance(Api(channel), request_id, ALICE)
        server.stop()
        server.extra_args = ["--driver-option", "mock.users=alice:her-new-password"]
        server.start()
        with grpc.insecure_channel(server.target) as channel:
            f = refusal(
                Api(channel).instances.CreateInstance,
                instance_pb2.CreateInstanceRequest(image_id="img1", request_id=request_id),
                ALICE,
            )
        assert f.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.kill()


def test_a_failed_attempt_is_not_kept(fresh_api: Api) -> None:
    """The first attempt names a key that does not exist yet; once it does, the retry with
    the same id runs, and creates."""
    request_id = new_id()
    request = instance_pb2.CreateInstanceRequest(
        image_id="img1", key_name="later-key", request_id=request_id
    )
    f = refusal(fresh_api.instances.CreateInstance, request)
    assert f.code == grpc.StatusCode.NOT_FOUND
    fresh_api.keys.CreateKey(key_pb2.CreateKeyRequest(name="later-key"), metadata=MD)
    before = instance_ids(fresh_api)
    created = fresh_api.instances.CreateInstance(request, metadata=MD, timeout=10)
    assert instance_ids(fresh_api) - before == {created.instances[0].id}
    assert fresh_api.instances.CreateInstance(request, metadata=MD, timeout=10) == created


def test_a_retry_after_a_kill_is_answered_from_the_kept_answer(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = ServerProcess(tmp_path_factory.mktemp("requests")).start()
    try:
        request_id = new_id()
        with grpc.insecure_channel(server.target) as channel:
            first = create_instance(Api(channel), request_id)
        server.kill()  # SIGKILL: an answer sent is an answer kept
        server.start()
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            before = instance_ids(api)
            assert create_instance(api, request_id) == first
            assert instance_ids(api) == before
    finally:
        server.kill()


def creations(api: Api, md: Any) -> list[str]:
    """The instances the journal says were created in the scope of ``md``."""
    stream = api.instances.WatchInstanceEvents(
        instance_pb2.WatchInstanceEventsRequest(
            after_revision=0, progress_interval=duration_pb2.Duration(seconds=1)
        ),
        metadata=md,
        timeout=10,
    )
    created = []
    for message in stream:
        created += [
            e.instance_id for e in message.events if e.cause == instance_pb2.EVENT_CAUSE_CREATE
        ]
        if message.kind == instance_pb2.WatchInstanceEventsResponse.KIND_PROGRESS:
            break
    stream.cancel()
    return created


@pytest.fixture
def slow_creates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server whose ``limited`` driver takes a second per create (a slow cloud)."""
    flags = ["--driver-option", "limited.create_seconds=1"]
    server = ServerProcess(tmp_path_factory.mktemp("slow"), extra_args=flags).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            yield Api(channel)
    finally:
        server.kill()


def test_a_retry_while_the_first_attempt_runs_waits_for_it(slow_creates: Api) -> None:
    request_id = new_id()
    started = threading.Barrier(3)

    def attempt() -> Any:
        started.wait()
        return create_instance(slow_creates, request_id, LIMITED)

    with ThreadPoolExecutor(3) as pool:
        answers = [f.result(15) for f in [pool.submit(attempt) for _ in range(3)]]
    assert answers[0] == answers[1] == answers[2]
    assert [i.id for i in answers[0].instances] == ["lim-new-1"]
    assert creations(slow_creates, LIMITED) == ["lim-new-1"], "the driver created once"
    # The driver's next create is its second.
    assert [i.id for i in create_instance(slow_creates, new_id(), LIMITED).instances] == [
        "lim-new-2"
    ]


def test_a_create_whose_client_gave_up_answers_the_retry(slow_creates: Api) -> None:
    """The client's deadline passes while the driver creates: the create goes on, and the
    retry gets its answer instead of creating again."""
    request_id = new_id()
    request = instance_pb2.CreateInstanceRequest(image_id="img1", request_id=request_id)
    with pytest.raises(grpc.RpcError) as caught:
        slow_creates.instances.CreateInstance(request, metadata=LIMITED, timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    retried = slow_creates.instances.CreateInstance(request, metadata=LIMITED, timeout=10)
    # The driver's first create, which the client gave up on; a second would be lim-new-2.
    assert [i.id for i in retried.instances] == ["lim-new-1"]
    assert creations(slow_creates, LIMITED) == ["lim-new-1"], "its event journaled too"


@pytest.mark.parametrize("kind", CREATES)
def test_a_retry_whose_answer_the_log_never_kept_is_answered_by_the_mock(
    tmp_path_factory: pytest.TempPathFactory, kind: str
) -> None:
    """The one window the request log cannot close: the driver's create committed, then the
    server died before keeping the answer (here: requests.sqlite3 removed while the server
    is down). The mock keeps the request id with the create, as EC2 keeps a ClientToken:
    the retry gets the same object, nothing is created twice, the journal holds one CREATE,
    and another request under the id is still refused."""
    server = ServerProcess(tmp_path_factory.mktemp("lost-log")).start()
    try:
        request_id = new_id()
        with grpc.insecure_channel(server.target) as channel:
            call, request, existing = CREATES[kind](Api(channel))
            request.request_id = request_id
            first = call(request, metadata=MD, timeout=10)
        server.stop()
        for suffix in ("", "-wal", "-shm"):
            (server.data_dir / f"requests.sqlite3{suffix}").unlink(missing_ok=True)
        server.start()
        with grpc.insecure_channel(server.target) as channel:
            api = Api(channel)
            call, request, existing = CREATES[kind](api)
            before = existing()
            request.request_id = request_id
            assert call(request, metadata=MD, timeout=10) == first
            assert existing() == before
            if kind == "instance":
                created = first.instances[0].id
                assert creations(api, MD).count(created) == 1
            if kind != "address":  # an address request has nothing else to change
                other = type(request)()
                other.CopyFrom(request)
                other.name = "another"
                f = refusal(call, other)
                assert (f.code, f.reason) == (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "REQUEST_ID_REUSED",
                )
    finally:
        server.kill()


def test_a_retry_that_reaches_another_server_of_the_same_cloud_creates_nothing(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Two servers behind one address, one mock cloud: the retry lands on the server that
    never saw the first attempt, and the mock's token answers it."""
    root = tmp_path_factory.mktemp("fleet")
    shared = ["--driver-option", f"mock.data_dir={root / 'cloud'}"]
    a = ServerProcess(root / "a", extra_args=shared).start()
    b = ServerProcess(root / "b", extra_args=shared).start()
    try:
        request_id = new_id()
        with a.channel() as channel:
            first = create_instance(Api(channel), request_id)
        with b.channel() as channel:
            api = Api(channel)
            before = instance_ids(api)
            assert create_instance(api, request_id) == first
            assert instance_ids(api) == before
    finally:
        a.kill()
        b.kill()
