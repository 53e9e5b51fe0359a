"""The EC2 driver passes the driver conformance kit, through the real server, against
moto's standalone server on loopback (tests/ec2_support.py), one that checks every request's
signature as AWS does, so that wrong credentials are refused by the backend itself."""

from __future__ import annotations

import pytest
from ec2_support import AUTHENTICATING_MOTO, MotoServer, server_flags

from deltacloud.drivers.conformance import DriverConformance


class TestEC2Conformance(DriverConformance):
    driver = "ec2"
    # The account's keys are made when moto starts (see _moto_running).
    username = ""
    password = ""
    server_args = tuple(server_flags(AUTHENTICATING_MOTO))
    settle_timeout = 20.0

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _moto_running(cls, authenticating_moto: MotoServer) -> MotoServer:
        cls.username = authenticating_moto.access_key
        cls.password = authenticating_moto.secret_key
        return authenticating_moto
