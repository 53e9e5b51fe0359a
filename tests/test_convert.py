"""The server's conversions of driver models to messages (server/convert.py)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from deltacloud.drivers import InstanceState, StateMachine
from deltacloud.drivers import models as m
from deltacloud.drivers.mock import MockDriver
from deltacloud.server import convert
from deltacloud.v1 import image_pb2, key_pb2, realm_pb2, storage_snapshot_pb2, storage_volume_pb2

MACHINE = MockDriver.instance_states
assert MACHINE is not None


def test_the_message_of_a_model_handed_out_again_is_made_once() -> None:
    """A model a driver hands out again (the mock's read cache) gets the message made for
    it the first time; another model, even an equal one, or another state machine, gets
    its own; every one is what convert.instance makes."""
    model = m.Instance(id="i-1", state=InstanceState.RUNNING, firewall_ids=["fw"])
    first = convert.instance_kept(model, MACHINE)
    assert first == convert.instance(model, MACHINE)
    assert convert.instance_kept(model, MACHINE) is first

    equal = dataclasses.replace(model)
    assert equal == model, "the kept message is not part of the model's fields"
    again = convert.instance_kept(equal, MACHINE)
    assert again is not first and again == first
    copied = copy.copy(model)  # carries what was kept on the model: must not be taken
    copied.state = InstanceState.STOPPED
    assert convert.instance_kept(copied, MACHINE) == convert.instance(copied, MACHINE)

    other = StateMachine("start -> running on create\nrunning -> finish on destroy")
    offered = convert.instance_kept(model, other)
    assert offered is not first and offered == convert.instance(model, other)
    assert list(offered.actions) != list(first.actions)


@pytest.mark.parametrize(
    ("model", "allowed", "enum"),
    [
        (m.Realm, m.REALM_STATES, realm_pb2.Realm.State),
        (m.Image, m.IMAGE_STATES, image_pb2.Image.State),
        (m.Key, m.KEY_STATES, key_pb2.Key.State),
        (m.StorageVolume, m.STORAGE_VOLUME_STATES, storage_volume_pb2.StorageVolume.State),
        (m.StorageSnapshot, m.STORAGE_SNAPSHOT_STATES, storage_snapshot_pb2.StorageSnapshot.State),
    ],
)
def test_a_models_state_is_one_the_wire_has_or_it_is_refused_where_made(
    model: Any, allowed: tuple[str, ...], enum: Any
) -> None:
    """A state string no enum value has ("attached-not") went out as STATE_UNSPECIFIED,
    unnoticed, and "in-use" was IN_USE on the wire but not to filter_on. Now the models
    take the wire's states only (case and "-" forgiven) and refuse others where made."""
    wire = {name.removeprefix("STATE_") for name in enum.keys()} - {"UNSPECIFIED"}  # noqa: SIM118
    assert set(allowed) == wire
    for state in allowed:
        assert model(id="x", state=state.lower().replace("_", "-")).state == state
    with pytest.raises(TypeError, match="'attached-not' is not one of"):
        model(id="x", state="attached-not")


def test_a_volumes_capacity_is_whole_gb_as_on_the_wire_or_it_is_refused_where_made() -> None:
    """capacity_gb was a float in the model and an int64 on the wire: a driver's 1.5 GB
    reached the client as 1, unnoticed. Whole sizes given as floats (a cloud's JSON) are
    taken; anything else fails where the model is made."""
    volume = m.StorageVolume(id="v", capacity_gb=30.0)  # type: ignore[arg-type]
    assert volume.capacity_gb == 30 and type(volume.capacity_gb) is int
    assert convert.storage_volume(volume).capacity_gb == 30
    for wrong in (1.5, -1, "5", None, True, float("nan")):
        with pytest.raises(TypeError, match=r"StorageVolume 'v': capacity_gb .* whole"):
            m.StorageVolume(id="v", capacity_gb=wrong)  # type: ignore[arg-type]
