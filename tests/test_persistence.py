"""What a call acknowledged survives a graceful restart and a kill -9 of the server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from conftest import PENDING_DELAY, Api, ServerProcess

from deltacloud.v1 import bucket_pb2, common_pb2, instance_pb2, key_pb2, storage_volume_pb2
from support import MD

RUNNING = common_pb2.INSTANCE_STATE_RUNNING
PENDING = common_pb2.INSTANCE_STATE_PENDING


@pytest.fixture
def proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("persist")).start()
    try:
        yield server
    finally:
        server.kill()


def connect(server: ServerProcess) -> Api:
    return Api(grpc.insecure_channel(server.target))


def create_everything(api: Api) -> dict[str, str]:
    instance = api.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(image_id="img1", name="survivor"), metadata=MD
    ).instances[0]
    key = api.keys.CreateKey(key_pb2.CreateKeyRequest(name="survivor-key"), metadata=MD)
    volume = api.volumes.CreateStorageVolume(
        storage_volume_pb2.CreateStorageVolumeRequest(capacity_gb=3, name="survivor-vol"),
        metadata=MD,
    )
    api.buckets.UploadBlob(
        iter(
            [
                bucket_pb2.UploadBlobRequest(
                    header=bucket_pb2.UploadBlobHeader(bucket_id="bucket1", blob_id="survivor")
                ),
                bucket_pb2.UploadBlobRequest(chunk=b"acknowledged bytes"),
            ]
        ),
        metadata=MD,
    )
    return {"instance": instance.id, "key": key.id, "volume": volume.id}


def assert_everything_present(api: Api, ids: dict[str, str]) -> None:
    instance = api.instances.GetInstance(
        instance_pb2.GetInstanceRequest(id=ids["instance"]), metadata=MD
    )
    assert instance.name == "survivor"
    assert api.keys.GetKey(key_pb2.GetKeyRequest(id=ids["key"]), metadata=MD).id == "survivor-key"
    volume = api.volumes.GetStorageVolume(
        storage_volume_pb2.GetStorageVolumeRequest(id=ids["volume"]), metadata=MD
    )
    assert volume.capacity_gb == 3
    content = b"".join(
        m.chunk
        for m in api.buckets.DownloadBlob(
            bucket_pb2.DownloadBlobRequest(bucket_id="bucket1", id="survivor"), metadata=MD
        )
        if m.WhichOneof("data") == "chunk"
    )
    assert content == b"acknowledged bytes"


def test_acknowledged_writes_survive_a_graceful_restart(proc: ServerProcess) -> None:
    api = connect(proc)
    ids = create_everything(api)
    api.channel.close()
    assert proc.stop() == 0
    proc.restart()
    api = connect(proc)
    assert_everything_present(api, ids)
    api.channel.close()


def test_acknowledged_writes_survive_kill_9_right_after_the_answer(proc: ServerProcess) -> None:
    api = connect(proc)
    ids = create_everything(api)
    proc.kill()  # SIGKILL the moment the last call was acknowledged
    api.channel.close()
    proc.restart()
    api = connect(proc)
    assert_everything_present(api, ids)
    api.channel.close()


def test_an_instance_created_before_a_kill_becomes_running_after_restart(
    proc: ServerProcess,
) -> None:
    api = connect(proc)
    created = api.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(image_id="img2"), metadata=MD
    ).instances[0]
    assert created.state == PENDING
    proc.kill()
    api.channel.close()
    time.sleep(PENDING_DELAY)  # the automatic transition falls due while the server is down
    proc.restart()
    api = connect(proc)
    again = api.instances.GetInstance(instance_pb2.GetInstanceRequest(id=created.id), metadata=MD)
    assert again.state == RUNNING
    api.channel.close()


def test_first_use_seeds_fixtures_once_and_restart_does_not_reseed(proc: ServerProcess) -> None:
    api = connect(proc)
    api.keys.DeleteKey(key_pb2.DeleteKeyRequest(id="test-key"), metadata=MD)
    api.channel.close()
    assert proc.stop() == 0
    proc.restart()
    api = connect(proc)
    keys = api.keys.ListKeys(key_pb2.ListKeysRequest(), metadata=MD).keys
    assert "test-key" not in [k.id for k in keys]
    api.channel.close()
