"""What CreateInstance and CreateKey refuse before any driver work, the same way on the mock
and on ec2 (against moto): malformed public keys, ids holding control characters, an empty
firewall id; and that a refused create leaves nothing behind."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from conftest import Api, PlainServer, ServerProcess, _api
from ec2_support import ACCESS_KEY, AMIS, SECRET_KEY, MotoServer, server_flags

from deltacloud.drivers.conformance.stubs import metadata
from deltacloud.v1 import image_pb2, instance_pb2, key_pb2
from deltacloud.v1 import storage_volume_pb2 as vol_pb2
from support import MD, failure

EC2 = metadata(ACCESS_KEY, SECRET_KEY, driver="ec2")


def blob(*fields: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(f)) + f for f in fields)).decode()


E = b"\x01\x00\x01"
N = b"\x00" + b"\xc5" * 256
RSA = "ssh-rsa " + blob(b"ssh-rsa", E, N) + " me@laptop"
ED25519 = "ssh-ed25519 " + blob(b"ssh-ed25519", b"\x07" * 32) + " me@laptop"

#: Public keys that are not one OpenSSH public key line. The first three made the ec2 driver
#: answer UNAVAILABLE (moto's reply to them is not XML), the "two lines" one imported its
#: first line there; the mock stored the incomplete blobs.
MALFORMED = {
    "private key": (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + base64.b64encode(b"openssh-key-v1\x00" + b"\x00" * 64).decode()
        + "\n-----END OPENSSH PRIVATE KEY-----\n"
    ),
    "options before the type": f'command="ls",no-pty {RSA}',
    "garbage": "hello world",
    "two lines": f"{RSA}\n{ED25519}",
    "rsa blob with only its type": "ssh-rsa " + blob(b"ssh-rsa") + " x@y",
    "rsa blob without modulus": "ssh-rsa " + blob(b"ssh-rsa", E) + " x@y",
    "ed25519 key of 16 bytes": "ssh-ed25519 " + blob(b"ssh-ed25519", b"\x07" * 16),
    "trailing bytes": "ssh-ed25519 " + blob(b"ssh-ed25519", b"\x07" * 32) + "AAAA",
    "dsa": "ssh-dss " + blob(b"ssh-dss", b"\x01", b"\x02", b"\x03", b"\x04"),
}


@pytest.fixture(scope="module")
def mock_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = ServerProcess(tmp_path_factory.mktemp("inputs-mock")).start()
    try:
        yield from _api(server)
    finally:
        server.kill()


@pytest.fixture(scope="module")
def ec2_api(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = PlainServer(
        tmp_path_factory.mktemp("inputs-ec2"), extra_args=server_flags(moto)
    ).start()
    try:
        yield from _api(server)
    finally:
        server.kill()


@pytest.fixture(params=["mock", "ec2"])
def target(request: pytest.FixtureRequest) -> tuple[Api, Any, str]:
    """(api, call metadata, an image the driver has) of either driver."""
    if request.param == "mock":
        return request.getfixturevalue("mock_api"), MD, "img1"
    return request.getfixturevalue("ec2_api"), EC2, AMIS[0]["ami_id"]


def refused(call: Any, request: Any, md: Any) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=md, timeout=30)
    return failure(caught.value)


def key_names(api: Api, md: Any) -> set[str]:
    return {k.name for k in api.keys.ListKeys(key_pb2.ListKeysRequest(), metadata=md).keys}


def instance_ids(api: Api, md: Any) -> set[str]:
    reply = api.instances.ListInstances(
        instance_pb2.ListInstancesRequest(page_size=1000), metadata=md
    )
    return {i.id for i in reply.instances}


@pytest.mark.parametrize("public_key", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_public_key_is_invalid_argument_on_every_driver(
    target: tuple[Api, Any, str], public_key: str
) -> None:
    api, md, _ = target
    before = key_names(api, md)
    request = key_pb2.CreateKeyRequest(name="imported", public_key=public_key)
    f = refused(api.keys.CreateKey, request, md)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")
    assert f.metadata["option"] == "public_key"
    assert "public_key is not an OpenSSH public key" in f.message
    assert key_names(api, md) == before


@pytest.mark.parametrize("public_key", [RSA, ED25519, f"  {RSA}\n"], ids=["rsa", "ed25519", "ws"])
def test_a_well_formed_public_key_is_imported_without_a_private_key(
    target: tuple[Api, Any, str], public_key: str
) -> None:
    api, md, _ = target
    name = f"ok-{public_key.split()[0]}-{len(public_key)}"
    created = api.keys.CreateKey(
        key_pb2.CreateKeyRequest(name=name, public_key=public_key), metadata=md
    )
    try:
        assert (created.name, created.pem_rsa_key) == (name, "")
        assert created.public_key.split()[:2] == public_key.split()[:2]
    finally:
        api.keys.DeleteKey(key_pb2.DeleteKeyRequest(id=name), metadata=md)


@pytest.mark.parametrize(
    "field", ["image_id", "realm_id", "hardware_profile_id", "key_name", "load_balancer_id"]
)
def test_an_id_holding_a_control_character_is_invalid_text(
    target: tuple[Api, Any, str], field: str
) -> None:
    """ec2 answered UNAVAILABLE (BACKEND_ERROR, which clients retry) for such an image id:
    the endpoint's reply to it was not XML."""
    api, md, image = target
    before = instance_ids(api, md)
    fields = {"image_id": image, field: "x\x00../y"}
    f = refused(api.instances.CreateInstance, instance_pb2.CreateInstanceRequest(**fields), md)
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TEXT")
    assert f.metadata["field"] == field
    assert instance_ids(api, md) == before


#: Lookups, actions and list filters naming an object by an id: (service, method, the
#: request with the id in ``field``).
LOOKUPS = {
    "GetInstance": ("instances", "GetInstance", instance_pb2.GetInstanceRequest, "id"),
    "StopInstance": ("instances", "StopInstance", instance_pb2.StopInstanceRequest, "id"),
    "DeleteInstance": ("instances", "DeleteInstance", instance_pb2.DeleteInstanceRequest, "id"),
    "ListInstances id": ("instances", "ListInstances", instance_pb2.ListInstancesRequest, "id"),
    "ListInstances realm_id": (
        "instances",
        "ListInstances",
        instance_pb2.ListInstancesRequest,
        "realm_id",
    ),
    "GetImage": ("images", "GetImage", image_pb2.GetImageRequest, "id"),
    "ListImages id": ("images", "ListImages", image_pb2.ListImagesRequest, "id"),
    "GetStorageVolume": ("volumes", "GetStorageVolume", vol_pb2.GetStorageVolumeRequest, "id"),
    "AttachStorageVolume instance_id": (
        "volumes",
        "AttachStorageVolume",
        lambda **f: vol_pb2.AttachStorageVolumeRequest(id="vol-1", device="/dev/sdh", **f),
        "instance_id",
    ),
}


@pytest.mark.parametrize(("stub", "method", "request_of", "field"), LOOKUPS.values(), ids=LOOKUPS)
def test_naming_an_object_by_an_id_holding_a_control_character_is_invalid_text(
    target: tuple[Api, Any, str], stub: str, method: str, request_of: Any, field: str
) -> None:
    """No object has such an id; ec2 answered UNAVAILABLE BACKEND_ERROR (which clients
    retry) for GetInstance, the instance actions, GetImage and the id filters of lists,
    as the endpoint's reply to it was not XML, and the mock NOT_FOUND."""
    api, md, _ = target
    call = getattr(getattr(api, stub), method)
    f = refused(call, request_of(**{field: "i-1\x00../y"}), md)
    assert (f.code, f.reason, f.metadata["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_TEXT",
        field,
    )


@pytest.mark.parametrize(
    ("firewall_id", "reason", "name"),
    [("", "VALIDATION_FAILED", "option"), ("sg-\x07", "INVALID_TEXT", "field")],
    ids=["empty", "control character"],
)
def test_a_firewall_id_no_firewall_can_have_is_invalid_argument(
    target: tuple[Api, Any, str], firewall_id: str, reason: str, name: str
) -> None:
    """The mock answered NOT_FOUND for an empty id, ec2 INVALID_ARGUMENT."""
    api, md, image = target
    before = instance_ids(api, md)
    request = instance_pb2.CreateInstanceRequest(image_id=image, firewall_ids=[firewall_id])
    f = refused(api.instances.CreateInstance, request, md)
    assert (f.code, f.reason, f.metadata[name]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        "firewall_ids",
    )
    assert instance_ids(api, md) == before
