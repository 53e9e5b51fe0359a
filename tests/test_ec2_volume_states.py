"""What the EC2 driver answers for a volume while EC2 attaches or detaches it. moto attaches
and detaches at once, so these answers come from botocore's Stubber (checked against EC2's
service model), in the order AWS gives them: the volume's own State stays "available"
while its attachment is "attaching", and "in-use" while it is "detaching"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber  # type: ignore[import-untyped]

from deltacloud.drivers import CallContext, Credentials, DriverConfig
from deltacloud.drivers.ec2 import EC2Driver

VOLUME, INSTANCE, DEVICE = "vol-0123456789abcdef0", "i-0123456789abcdef0", "/dev/sdf"
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def _described(state: str, attachment: str = "") -> dict[str, Any]:
    volume: dict[str, Any] = {
        "VolumeId": VOLUME,
        "State": state,
        "Size": 1,
        "AvailabilityZone": "us-east-1a",
        "CreateTime": WHEN,
        "VolumeType": "gp3",
        "Attachments": [],
    }
    if attachment:
        volume["Attachments"] = [
            {
                "VolumeId": VOLUME,
                "InstanceId": INSTANCE,
                "Device": DEVICE,
                "State": attachment,
                "AttachTime": WHEN,
            }
        ]
    return {"Volumes": [volume]}


def _attachment(state: str) -> dict[str, Any]:
    return {
        "VolumeId": VOLUME,
        "InstanceId": INSTANCE,
        "Device": DEVICE,
        "State": state,
        "AttachTime": WHEN,
    }


@pytest.fixture
def stubbed(tmp_path: Path) -> Any:
    driver = EC2Driver("us-east-1", DriverConfig(tmp_path, {}))
    client = boto3.client(
        "ec2",
        region_name="us-east-1",
        aws_access_key_id="AKIASTUBBED",
        aws_secret_access_key="stubbed",
    )
    driver.ec2 = lambda ctx: client  # type: ignore[method-assign]
    with Stubber(client) as stubber:
        yield driver, stubber
        stubber.assert_no_pending_responses()


CTX = CallContext(Credentials("AKIASTUBBED", "stubbed"), "us-east-1")
BY_ID = {"VolumeIds": [VOLUME]}


def test_a_volume_being_attached_is_attaching_with_its_instance_and_device(stubbed: Any) -> None:
    # It was AVAILABLE, with an instance and a device: attached and not, both at once.
    driver, stubber = stubbed
    stubber.add_response("describe_volumes", _described("available"), BY_ID)
    instance = {"InstanceId": INSTANCE, "State": {"Code": 16, "Name": "running"}}
    instance["Placement"] = {"AvailabilityZone": "us-east-1a"}
    stubber.add_response(
        "describe_instances",
        {"Reservations": [{"Instances": [instance]}]},
        {"InstanceIds": [INSTANCE]},
    )
    stubber.add_response(
        "attach_volume",
        _attachment("attaching"),
        {"VolumeId": VOLUME, "InstanceId": INSTANCE, "Device": DEVICE},
    )
    stubber.add_response("describe_volumes", _described("available", "attaching"), BY_ID)
    volume = driver.attach_storage_volume(CTX, VOLUME, INSTANCE, DEVICE)
    assert (volume.state, volume.instance_id, volume.device) == ("ATTACHING", INSTANCE, DEVICE)


def test_a_volume_being_detached_is_attaching_until_it_is_available(stubbed: Any) -> None:
    # It was IN_USE after its DetachStorageVolume, as if nothing had been asked.
    driver, stubber = stubbed
    stubber.add_response("describe_volumes", _described("in-use", "attached"), BY_ID)
    stubber.add_response(
        "detach_volume", _attachment("detaching"), {"VolumeId": VOLUME, "InstanceId": INSTANCE}
    )
    stubber.add_response("describe_volumes", _described("in-use", "detaching"), BY_ID)
    volume = driver.detach_storage_volume(CTX, VOLUME)
    assert (volume.state, volume.instance_id) == ("ATTACHING", INSTANCE)


def test_an_attachment_described_as_detached_names_no_instance(stubbed: Any) -> None:
    driver, stubber = stubbed
    stubber.add_response("describe_volumes", _described("available", "detached"), BY_ID)
    volume = driver.get_storage_volume(CTX, VOLUME)
    assert (volume.state, volume.instance_id, volume.device) == ("AVAILABLE", "", "")


def test_an_attached_volume_is_in_use(stubbed: Any) -> None:
    driver, stubber = stubbed
    stubber.add_response("describe_volumes", _described("in-use", "attached"), BY_ID)
    volume = driver.get_storage_volume(CTX, VOLUME)
    assert (volume.state, volume.instance_id, volume.device) == ("IN_USE", INSTANCE, DEVICE)
