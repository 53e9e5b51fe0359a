"""Drivers that are not installed, served with --driver-class: one the conformance kit must
pass (its stop ends an instance, it has no images), one whose wrong answers the server must
name rather than serve (tests/drivers/classpath)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import Api, ServerProcess

from deltacloud.drivers.conformance import DriverConformance
from deltacloud.v1 import instance_pb2, realm_pb2
from support import failure, metadata

CLASSPATH = Path(__file__).parent / "drivers" / "classpath"
sys.path.insert(0, str(CLASSPATH))


class TestOpenStackyConformance(DriverConformance):
    driver = "openstacky"
    driver_path = "deltacloud_classpath_drivers:OpenStacky"
    username = "anyone"
    password = "anything"
    rejects_wrong_credentials = False
    settle_timeout = 10.0


SLOPPY = metadata("anyone", "anything", driver="sloppy")


@pytest.fixture(scope="module")
def sloppy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = ServerProcess(
        tmp_path_factory.mktemp("sloppy"),
        extra_args=["--driver-class", "deltacloud_classpath_drivers:Sloppy"],
        env={"PYTHONPATH": str(CLASSPATH)},
    ).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            yield Api(channel)
    finally:
        server.kill()


def _refused(call: object, request: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=SLOPPY, timeout=10)  # type: ignore[operator]
    f = failure(caught.value)
    return f.code, f.message


def test_a_get_that_answers_another_instance_is_not_served_as_the_one_asked(sloppy: Api) -> None:
    # It answered os-1 for os-2, and an action on os-2 checked os-1's state.
    create = instance_pb2.CreateInstanceRequest(image_id="any")
    first = sloppy.instances.CreateInstance(create, metadata=SLOPPY).instances[0]
    second = sloppy.instances.CreateInstance(create, metadata=SLOPPY).instances[0]
    code, message = _refused(
        sloppy.instances.GetInstance, instance_pb2.GetInstanceRequest(id=second.id)
    )
    assert code == grpc.StatusCode.INTERNAL
    assert f"sloppy.get_instance('{second.id}') returned instance '{first.id}'" in message
    code, _ = _refused(
        sloppy.instances.RebootInstance, instance_pb2.RebootInstanceRequest(id=second.id)
    )
    assert code == grpc.StatusCode.INTERNAL


def test_a_create_or_action_answering_the_wrong_type_is_named(sloppy: Api) -> None:
    code, message = _refused(
        sloppy.instances.CreateInstance,
        instance_pb2.CreateInstanceRequest(image_id="any", name="sloppy-one"),
    )
    assert code == grpc.StatusCode.INTERNAL
    assert "sloppy.create_instance returned Instance; it must return a list" in message
    created = sloppy.instances.CreateInstance(
        instance_pb2.CreateInstanceRequest(image_id="any"), metadata=SLOPPY
    ).instances[0]
    time.sleep(0.5)  # running: destroy is allowed
    listed = sloppy.instances.ListInstances(instance_pb2.ListInstancesRequest(), metadata=SLOPPY)
    first = listed.instances[0].id  # what its get_instance answers, whatever the id
    code, message = _refused(
        sloppy.instances.DeleteInstance, instance_pb2.DeleteInstanceRequest(id=first)
    )
    assert code == grpc.StatusCode.INTERNAL and created.id
    assert f"sloppy.destroy_instance('{first}') returned None" in message


def test_a_driver_raising_while_it_checks_a_provider_is_an_internal_error_not_unknown(
    sloppy: Api,
) -> None:
    """The refusal's echo of the driver and provider resolved the provider again, and the
    driver's exception escaped from the error handling itself: UNKNOWN, with the
    exception's type and text in the message."""
    with pytest.raises(grpc.RpcError) as caught:
        sloppy.realms.ListRealms(
            realm_pb2.ListRealmsRequest(),
            metadata=metadata("anyone", "anything", driver="sloppy", provider="explode"),
            timeout=10,
        )
    f = failure(caught.value)
    assert (f.code, f.reason) == (grpc.StatusCode.INTERNAL, "INTERNAL")
    assert "reference" in f.message and "ValueError" not in f.message


def test_the_kit_fails_a_driver_whose_get_answers_another_instance(tmp_path: Path) -> None:
    """The kit had no two instances at once when it compared lists and gets: a get_instance
    answering the first whatever the id passed it."""
    module = tmp_path / "test_kit_on_sloppy.py"
    module.write_text(
        "from deltacloud.drivers.conformance import DriverConformance\n\n\n"
        "class TestSloppy(DriverConformance):\n"
        "    driver = 'sloppy'\n"
        "    driver_path = 'deltacloud_classpath_drivers:Sloppy'\n"
        "    username = 'anyone'\n"
        "    password = 'anything'\n"
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)]
    result = subprocess.run(
        [*command, "-k", "lists_and_gets_agree"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(CLASSPATH)},
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 failed" in result.stdout
    assert "returned instance" in result.stdout  # the server's message names the mistake
