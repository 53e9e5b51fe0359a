"""KeyService through the generated stubs: the test-key fixture, generated and imported
keys, the private key returned only once, duplicates, deletion."""

from __future__ import annotations

import base64
import hashlib
import struct

import grpc
import pytest
from conftest import Api
from google.protobuf import empty_pb2

from deltacloud.v1 import key_pb2
from support import MD, MOCK_SCOPE, failure

SCOPE = {"driver": "mock", "provider": "default"}
KEY = key_pb2.Key.CREDENTIAL_TYPE_KEY
AVAILABLE = key_pb2.Key.STATE_AVAILABLE
#: MD5 of the test-key fixture's public key blob (fixed: the fixture is seeded from a
#: constant modulus).
TEST_KEY_FINGERPRINT = "ad:98:5f:c5:69:de:2f:01:3e:5b:d3:e6:12:27:c2:4c"
PEM_HEADER = "-----BEGIN RSA PRIVATE KEY-----\n"
PEM_FOOTER = "\n-----END RSA PRIVATE KEY-----\n"


def ssh_rsa(modulus: bytes, comment: str) -> str:
    blob = b"".join(struct.pack(">I", len(p)) + p for p in (b"ssh-rsa", b"\x01\x00\x01", modulus))
    return f"ssh-rsa {base64.b64encode(blob).decode()} {comment}"


def md5_fingerprint(public_key: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_key.split()[1])).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def key_ids(api: Api) -> list[str]:
    return [k.id for k in api.keys.ListKeys(key_pb2.ListKeysRequest(), metadata=MD).keys]


def get_key(api: Api, key_id: str) -> key_pb2.Key:
    return api.keys.GetKey(key_pb2.GetKeyRequest(id=key_id), metadata=MD)


def refusal(call: object, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=MD)  # type: ignore[operator]
    return caught.value


def test_the_mock_starts_with_test_key_only(api: Api) -> None:
    assert key_ids(api) == ["test-key"]


def test_test_key_is_an_available_rsa_key_without_private_part(api: Api) -> None:
    key = get_key(api, "test-key")
    assert (key.id, key.name, key.credential_type, key.state) == (
        "test-key",
        "test-key",
        KEY,
        AVAILABLE,
    )
    assert key.fingerprint == TEST_KEY_FINGERPRINT
    assert key.public_key.startswith("ssh-rsa AAAAB3NzaC1yc2E")
    assert key.public_key.endswith(" test-key@mock")
    assert md5_fingerprint(key.public_key) == TEST_KEY_FINGERPRINT
    assert (key.pem_rsa_key, key.username, key.password) == ("", "", "")


def test_list_keys_filtered_on_id(api: Api) -> None:
    reply = api.keys.ListKeys(key_pb2.ListKeysRequest(id="test-key"), metadata=MD)
    assert [k.id for k in reply.keys] == ["test-key"]
    reply = api.keys.ListKeys(key_pb2.ListKeysRequest(id="nope"), metadata=MD)
    assert list(reply.keys) == []


def test_created_key_returns_its_private_key_once(fresh_api: Api) -> None:
    created = fresh_api.keys.CreateKey(key_pb2.CreateKeyRequest(name="deploy"), metadata=MD)
    assert (created.id, created.name, created.credential_type, created.state) == (
        "deploy",
        "deploy",
        KEY,
        AVAILABLE,
    )
    assert created.pem_rsa_key.startswith(PEM_HEADER)
    assert created.pem_rsa_key.endswith(PEM_FOOTER)
    body = created.pem_rsa_key.removeprefix(PEM_HEADER).removesuffix(PEM_FOOTER)
    assert len(base64.b64decode(body.replace("\n", ""))) > 0
    assert created.public_key.startswith("ssh-rsa ")
    assert created.fingerprint == md5_fingerprint(created.public_key)

    # Never again: not on GetKey, not on ListKeys; everything else is the same.
    expected = key_pb2.Key()
    expected.CopyFrom(created)
    expected.pem_rsa_key = ""
    assert get_key(fresh_api, "deploy") == expected
    listed = fresh_api.keys.ListKeys(key_pb2.ListKeysRequest(), metadata=MD).keys
    assert list(listed) == [expected, get_key(fresh_api, "test-key")]
    assert all(k.pem_rsa_key == "" for k in listed)


def test_generated_keys_are_random(fresh_api: Api) -> None:
    one = fresh_api.keys.CreateKey(key_pb2.CreateKeyRequest(name="one"), metadata=MD)
    two = fresh_api.keys.CreateKey(key_pb2.CreateKeyRequest(name="two"), metadata=MD)
    assert one.pem_rsa_key != two.pem_rsa_key
    assert one.public_key != two.public_key
    assert one.fingerprint != two.fingerprint


@pytest.mark.parametrize(
    "public_key",
    [
        "not a key",
        "ssh-rsa",
        "ssh-rsa !!!notbase64!!! me@host",
        # The blob names another type than the line does.
        f"ssh-ed25519 {base64.b64encode(struct.pack('>I', 7) + b'ssh-rsa').decode()} x",
        "ssh-dss " + base64.b64encode(struct.pack(">I", 7) + b"ssh-dss").decode(),
        ssh_rsa(b"\x01" * 32, "two") + "\n" + ssh_rsa(b"\x02" * 32, "lines"),
    ],
)
def test_importing_what_is_not_an_openssh_public_key_is_refused(api: Api, public_key: str) -> None:
    """EC2 refuses them (InvalidKey.Format); the mock stored any text but a NUL."""
    request = key_pb2.CreateKeyRequest(name="imported", public_key=public_key)
    f = failure(refusal(api.keys.CreateKey, request))
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")
    assert f.metadata["option"] == "public_key"
    assert key_ids(api) == ["test-key"]


def test_imported_key_keeps_the_public_key_and_has_no_private_key(fresh_api: Api) -> None:
    public_key = ssh_rsa(bytes(range(255, -1, -1)), "me@laptop")
    created = fresh_api.keys.CreateKey(
        key_pb2.CreateKeyRequest(name="mine", public_key=public_key), metadata=MD
    )
    assert created == key_pb2.Key(
        id="mine",
        name="mine",
        credential_type=KEY,
        fingerprint=md5_fingerprint(public_key),
        public_key=public_key,
        state=AVAILABLE,
    )
    assert get_key(fresh_api, "mine") == created
    assert key_ids(fresh_api) == ["mine", "test-key"]


@pytest.mark.parametrize("public_key", ["", ssh_rsa(b"\x01" * 32, "x@y")], ids=["gen", "import"])
def test_duplicate_key_name_is_already_exists(api: Api, public_key: str) -> None:
    request = key_pb2.CreateKeyRequest(name="test-key", public_key=public_key)
    f = failure(refusal(api.keys.CreateKey, request))
    assert (f.code, f.reason) == (grpc.StatusCode.ALREADY_EXISTS, "RESOURCE_ALREADY_EXISTS")
    assert f.metadata == {**SCOPE, "resource_type": "key", "resource_id": "test-key"}
    # The existing key is untouched.
    assert get_key(api, "test-key").fingerprint == TEST_KEY_FINGERPRINT


def test_creating_the_same_new_name_twice_is_already_exists(fresh_api: Api) -> None:
    fresh_api.keys.CreateKey(key_pb2.CreateKeyRequest(name="twice"), metadata=MD)
    f = failure(refusal(fresh_api.keys.CreateKey, key_pb2.CreateKeyRequest(name="twice")))
    assert (f.code, f.metadata["resource_id"]) == (grpc.StatusCode.ALREADY_EXISTS, "twice")


def test_deleted_key_is_gone(fresh_api: Api) -> None:
    fresh_api.keys.CreateKey(key_pb2.CreateKeyRequest(name="temp"), metadata=MD)
    reply = fresh_api.keys.DeleteKey(key_pb2.DeleteKeyRequest(id="temp"), metadata=MD)
    assert reply == empty_pb2.Empty()
    assert key_ids(fresh_api) == ["test-key"]
    f = failure(refusal(fresh_api.keys.GetKey, key_pb2.GetKeyRequest(id="temp")))
    assert (f.code, f.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert f.metadata == {**SCOPE, "resource_type": "key", "resource_id": "temp"}
    f = failure(refusal(fresh_api.keys.DeleteKey, key_pb2.DeleteKeyRequest(id="temp")))
    assert (f.code, f.metadata["resource_id"]) == (grpc.StatusCode.NOT_FOUND, "temp")


def test_deleting_test_key_then_recreating_the_name_works(fresh_api: Api) -> None:
    fresh_api.keys.DeleteKey(key_pb2.DeleteKeyRequest(id="test-key"), metadata=MD)
    assert key_ids(fresh_api) == []
    again = fresh_api.keys.CreateKey(key_pb2.CreateKeyRequest(name="test-key"), metadata=MD)
    assert again.fingerprint != TEST_KEY_FINGERPRINT
    assert key_ids(fresh_api) == ["test-key"]


def test_get_unknown_key_is_not_found(api: Api) -> None:
    f = failure(refusal(api.keys.GetKey, key_pb2.GetKeyRequest(id="nope")))
    assert (f.code, f.metadata) == (
        grpc.StatusCode.NOT_FOUND,
        {**SCOPE, "resource_type": "key", "resource_id": "nope"},
    )


def test_create_key_without_name_is_missing_field(api: Api) -> None:
    request = key_pb2.CreateKeyRequest(public_key=ssh_rsa(b"\x01" * 32, "x"))
    f = failure(refusal(api.keys.CreateKey, request))
    assert (f.code, f.reason, f.metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        {"field": "name", **MOCK_SCOPE},
    )
    assert key_ids(api) == ["test-key"]


@pytest.mark.parametrize("rpc", ["GetKey", "DeleteKey"])
def test_get_and_delete_without_id_are_missing_field(api: Api, rpc: str) -> None:
    request = {"GetKey": key_pb2.GetKeyRequest, "DeleteKey": key_pb2.DeleteKeyRequest}[rpc]()
    f = failure(refusal(getattr(api.keys, rpc), request))
    assert (f.code, f.reason, f.metadata) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_FIELD",
        {"field": "id", **MOCK_SCOPE},
    )


@pytest.mark.parametrize("name", ["a/b", " padded "])
def test_create_key_with_an_invalid_name_is_refused(api: Api, name: str) -> None:
    f = failure(refusal(api.keys.CreateKey, key_pb2.CreateKeyRequest(name=name)))
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")
    assert f.metadata == {**SCOPE, "option": "name", "value": name}
    assert key_ids(api) == ["test-key"]


def test_create_key_with_a_control_character_in_its_name_is_refused_by_the_server(
    api: Api,
) -> None:
    f = failure(refusal(api.keys.CreateKey, key_pb2.CreateKeyRequest(name="tab\there")))
    assert (f.code, f.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TEXT")
    assert f.metadata == {**SCOPE, "field": "name"}
    assert key_ids(api) == ["test-key"]


def test_the_shared_server_still_holds_only_test_key(api: Api) -> None:
    assert key_ids(api) == ["test-key"]
