"""The conformance kit's own logic, without a server: the options of the drivers it builds
itself (the @nonblocking and handed-out-models checks) are those its server hands the
driver, in every form the server takes them (server/config.py), not only
``--driver-option NAME.k=v``; and the way it brings its instance to running for the attach,
associate and register walks, whatever the machine."""

from __future__ import annotations

from pathlib import Path

from deltacloud_foo.driver import FooDriver

from deltacloud.drivers import (
    CallContext,
    Credentials,
    DriverConfig,
    InstanceAction,
    InstanceState,
    StateMachine,
)
from deltacloud.drivers.conformance import DriverConformance
from deltacloud.drivers.ec2.driver import EC2_MACHINE
from deltacloud.drivers.mock import MockDriver


class _EveryForm(DriverConformance):
    driver = "mock"
    server_args = (
        "--driver-option",
        "mock.pending_delay=0.2",
        "--driver-option=mock.stopping_delay=0.3",
        # argparse takes an unambiguous prefix of a long flag, with a space or with "=".
        "--driver-opt",
        "mock.users=carol:carol-secret",
        "--driver-o=mock.data_dir=/nowhere/a=b",
        # White space around the key and the value is dropped.
        "--driver-option",
        " mock.colour = blue ",
        # Another driver's option, and other flags, are not the mock's.
        "--driver-option",
        "ec2.endpoint_url=http://127.0.0.1:1",
        "--log-level",
        "DEBUG",
    )
    # The environment's list comes first; a flag naming the same option wins.
    server_env = {"DELTACLOUD_DRIVER_OPTIONS": "mock.pending_delay=9 mock.shade=dark"}


def test_the_kit_reads_every_form_of_driver_option_the_server_takes() -> None:
    # It read the two-word form only: the others were dropped without a word.
    assert _EveryForm().driver_options() == {
        "pending_delay": "0.2",
        "stopping_delay": "0.3",
        "users": "carol:carol-secret",
        "data_dir": "/nowhere/a=b",
        "colour": "blue",
        "shade": "dark",
    }


class _FromTheEnvironment(DriverConformance):
    driver = "mock"
    server_env = {"DELTACLOUD_DRIVER_OPTIONS": "mock.users=carol:carol-secret"}


def test_a_driver_the_kit_builds_gets_the_options_its_server_got(tmp_path: Path) -> None:
    options = _FromTheEnvironment().driver_options()
    driver = MockDriver("default", DriverConfig(tmp_path, options))
    try:
        driver.authenticate(CallContext(Credentials("carol", "carol-secret"), "default"))
    finally:
        driver.close()


def test_the_kit_finds_the_way_to_running_on_any_machine() -> None:
    first_step = DriverConformance._first_step
    running, stopped = InstanceState.RUNNING, InstanceState.STOPPED
    # Foo's instances land stopped and must be started.
    foo = FooDriver.instance_states
    assert foo is not None
    assert first_step(foo, stopped, running) == InstanceAction.START
    # EC2's start leads to pending, which runs on its own.
    ec2 = EC2_MACHINE
    assert first_step(ec2, stopped, running) == InstanceAction.START
    assert first_step(ec2, InstanceState.START, running) == InstanceAction.CREATE
    # OpenStack-like: once stopped it is on its way out; nothing leads back.
    openstack = StateMachine(
        """
        start    -> pending  on create
        pending  -> running  automatically
        running  -> stopping on stop
        running  -> finish   on destroy
        stopping -> finish   automatically
        """
    )
    assert first_step(openstack, InstanceState.STOPPING, running) is None
