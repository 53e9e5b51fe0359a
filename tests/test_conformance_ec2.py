"""The EC2 driver passes the driver conformance kit, through the real server, against
moto's standalone server on loopback (tests/ec2_support.py)."""

from __future__ import annotations

import pytest
from ec2_support import ACCESS_KEY, SECRET_KEY, MotoServer, moto_fixture, server_flags

from deltacloud.drivers.conformance import DriverConformance

__all__ = ["moto_fixture"]


class TestEC2Conformance(DriverConformance):
    driver = "ec2"
    username = ACCESS_KEY
    password = SECRET_KEY
    server_args = tuple(server_flags())
    #: moto accepts any credentials.
    rejects_wrong_credentials = False
    settle_timeout = 20.0

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _moto_running(cls, moto: MotoServer) -> MotoServer:
        return moto
