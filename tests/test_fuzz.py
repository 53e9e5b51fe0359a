"""Property-based fuzzing of every RPC: arbitrary field values (huge strings, negative
numbers, unknown enum values, nested messages) and arbitrary metadata (bad base64, unknown
drivers, missing credentials). The server never answers UNKNOWN or INTERNAL, every error it
raises carries an ErrorInfo, it keeps answering, and its state stays consistent."""

from __future__ import annotations

import base64
import importlib
import string
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from conftest import Api, ServerProcess
from google.protobuf import descriptor as d
from google.protobuf import message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deltacloud.server.servicers import SERVICE_NAMES
from deltacloud.v1 import image_pb2, instance_pb2, key_pb2, storage_volume_pb2
from support import MD, failure

MODULES = [
    "address", "bucket", "discovery", "firewall", "hardware_profile", "image", "instance",
    "key", "load_balancer", "realm", "storage_snapshot", "storage_volume",
]  # fmt: skip
METHODS: list[d.MethodDescriptor] = [
    method
    for name in MODULES
    for service in importlib.import_module(
        f"deltacloud.v1.{name}_pb2"
    ).DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
# The mock's failure-on-purpose realm ids answer chosen errors (INTERNAL among them) or hang.
ON_PURPOSE = {
    "400",
    "401",
    "403",
    "404",
    "405",
    "409",
    "429",
    "500",
    "501",
    "502",
    "503",
    "504",
    "hang",
}
KNOWN_IDS = [
    "", "inst0", "inst1", "inst3", "img1", "img3", "us", "eu", "m1-large", "opaque",
    "test-key", "vol1", "vol3", "snap1", "bucket1", "blob1", "192.168.0.1", "mock",
]  # fmt: skip
HEADER_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + " !#$%&'*+-.^_`|~:=/", max_size=40
)

strings = st.one_of(
    st.sampled_from(KNOWN_IDS),
    st.text(max_size=30),
    st.just("x" * 100_000),
).filter(lambda s: s not in ON_PURPOSE)

SCALARS: dict[int, st.SearchStrategy[Any]] = {
    d.FieldDescriptor.TYPE_STRING: strings,
    d.FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
    d.FieldDescriptor.TYPE_BOOL: st.booleans(),
    d.FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    d.FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    d.FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    d.FieldDescriptor.TYPE_ENUM: st.integers(-3, 12),
}


def message_of(descriptor: d.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    cls = message_factory.GetMessageClass(descriptor)
    fields = {}
    for field in descriptor.fields:
        if field.type == d.FieldDescriptor.TYPE_MESSAGE:
            if depth >= 2:
                continue
            if field.message_type.GetOptions().map_entry:
                value: st.SearchStrategy[Any] = st.dictionaries(
                    st.text(max_size=10), st.text(max_size=10), max_size=3
                )
            else:
                value = message_of(field.message_type, depth + 1)
        else:
            value = SCALARS.get(field.type, st.none())
        if field.is_repeated and not (
            field.type == d.FieldDescriptor.TYPE_MESSAGE
            and field.message_type.GetOptions().map_entry
        ):
            value = st.lists(value, max_size=3)
        fields[field.name] = st.one_of(st.none(), value)

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        message = cls()
        for name, strategy in fields.items():
            value = draw(strategy)
            if value is None:
                continue
            field = descriptor.fields_by_name[name]
            try:
                if field.type == d.FieldDescriptor.TYPE_MESSAGE and not field.is_repeated:
                    getattr(message, name).CopyFrom(value)
                elif (
                    field.is_repeated
                    and field.type == d.FieldDescriptor.TYPE_MESSAGE
                    and not field.message_type.GetOptions().map_entry
                ):
                    getattr(message, name).extend(value)
                elif field.is_repeated:
                    getattr(message, name).update(value) if isinstance(value, dict) else getattr(
                        message, name
                    ).extend(value)
                else:
                    setattr(message, name, value)
            except (ValueError, TypeError):
                pass  # e.g. a string that is not valid UTF-8 for protobuf: not sendable
        return message

    return build()


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


metadatas = st.one_of(
    st.just(MD),
    st.just([]),
    st.builds(lambda v: [("authorization", v)], HEADER_TEXT),
    st.builds(lambda v: [("authorization", _basic(v))], HEADER_TEXT),
    st.builds(
        lambda drv: [*MD, ("x-deltacloud-driver", drv)],
        st.sampled_from(["nimbus", "", "MOCK"]) | HEADER_TEXT,
    ),
    st.builds(lambda p: [*MD, ("x-deltacloud-provider", p)], HEADER_TEXT),
)

ALLOWED_WITHOUT_INFO = {
    grpc.StatusCode.DEADLINE_EXCEEDED,  # the client's own deadline (watch streams)
    grpc.StatusCode.CANCELLED,  # the client cancelled a stream it had read enough of
    grpc.StatusCode.RESOURCE_EXHAUSTED,  # gRPC's own message-size limit
}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("fuzz")).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def channel(fuzz_server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(fuzz_server.target) as channel:
        yield channel


def call(
    channel: grpc.Channel, method: d.MethodDescriptor, request: Any, md: list[tuple[str, str]]
) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_class = message_factory.GetMessageClass(method.output_type)
    options = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": response_class.FromString,
    }
    if method.client_streaming:
        upload = channel.stream_unary(path, **options)
        upload(iter(request), metadata=md, timeout=5)
    elif method.server_streaming:
        stream = channel.unary_stream(path, **options)(request, metadata=md, timeout=1)
        try:
            for count, _ in enumerate(stream):
                if count >= 2:
                    break
        finally:
            stream.cancel()
    else:
        channel.unary_unary(path, **options)(request, metadata=md, timeout=5)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_rpc_never_fails_unknown_or_internal(
    channel: grpc.Channel, method: d.MethodDescriptor, fuzz_server: ServerProcess
) -> None:
    strategy = message_of(method.input_type)
    if method.client_streaming:
        strategy = st.lists(strategy, max_size=3)

    @settings(
        max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(request=strategy, md=metadatas)
    def check(request: Any, md: list[tuple[str, str]]) -> None:
        try:
            call(channel, method, request, md)
        except grpc.RpcError as error:
            code = error.code()
            assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (
                f"{method.name}: {code} {error.details()}"
            )
            if code not in ALLOWED_WITHOUT_INFO:
                info = failure(error)
                assert info.domain == "deltacloud" and info.reason.isupper(), info

    check()
    assert fuzz_server.process is not None and fuzz_server.process.poll() is None


def test_after_fuzzing_the_server_answers_and_its_state_is_consistent(
    channel: grpc.Channel,
) -> None:
    api = Api(channel)
    instances = api.instances.ListInstances(
        instance_pb2.ListInstancesRequest(page_size=1000), metadata=MD
    ).instances
    ids = {i.id for i in instances}
    for instance in instances:
        got = api.instances.GetInstance(
            instance_pb2.GetInstanceRequest(id=instance.id), metadata=MD
        )
        assert got.id == instance.id
    volumes = api.volumes.ListStorageVolumes(
        storage_volume_pb2.ListStorageVolumesRequest(page_size=1000), metadata=MD
    ).storage_volumes
    for volume in volumes:
        if volume.state == storage_volume_pb2.StorageVolume.STATE_IN_USE:
            assert volume.instance_id in ids, volume
    keys = api.keys.ListKeys(key_pb2.ListKeysRequest(page_size=1000), metadata=MD).keys
    assert len({k.id for k in keys}) == len(keys)
    images = api.images.ListImages(image_pb2.ListImagesRequest(page_size=1000), metadata=MD).images
    assert {"img1", "img2"} <= {i.id for i in images}
    assert SERVICE_NAMES  # every service was in the fuzzed set
    assert {m.containing_service.full_name for m in METHODS} == set(SERVICE_NAMES)
