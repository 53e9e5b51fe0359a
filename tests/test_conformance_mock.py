"""The mock driver passes the driver conformance kit, through the real server."""

from __future__ import annotations

from deltacloud.drivers.conformance import DriverConformance


class TestMockConformance(DriverConformance):
    driver = "mock"
    username = "mockuser"
    password = "mockpassword"
    other_username = "carol"
    other_password = "carol-secret"
    server_args = (
        "--driver-option",
        "mock.pending_delay=0.2",
        "--driver-option",
        "mock.stopping_delay=0.2",
        "--driver-option",
        "mock.users=carol:carol-secret",
    )
