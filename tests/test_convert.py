"""The server's conversions of driver models to messages (server/convert.py)."""

from __future__ import annotations

import copy
import dataclasses

from deltacloud.drivers import InstanceState, StateMachine
from deltacloud.drivers import models as m
from deltacloud.drivers.mock import MockDriver
from deltacloud.server import convert

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
