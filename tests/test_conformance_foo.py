"""The Foo driver of examples/foo-driver (a separate package, installed by `make setup`)
passes the driver conformance kit, through the real server."""

from __future__ import annotations

from deltacloud.drivers.conformance import DriverConformance


class TestFooConformance(DriverConformance):
    driver = "foo"
    username = "demo"
    password = "demo-secret"
    # The state file defaults to <data-dir>/foo/state.json: the kit's server has a fresh
    # data directory per class, so the run starts from an empty cloud.
    server_args = (
        "--driver-option",
        "foo.pending_delay=0.2",
        "--driver-option",
        "foo.stopping_delay=0.2",
    )


class TestFooWestConformance(TestFooConformance):
    """The same driver pointed at its other provider (one realm, a cloud of its own)."""

    provider = "west"
