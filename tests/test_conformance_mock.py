"""The mock driver passes the driver conformance kit, through the real server."""

from __future__ import annotations

from deltacloud.drivers.conformance import DriverConformance


class TestMockConformance(DriverConformance):
    driver = "mock"
    username = "mockuser"
    password = "mockpassword"
    server_args = (
        "--driver-option",
        "mock.pending_delay=0.2",
        "--driver-option",
        "mock.stopping_delay=0.2",
    )
