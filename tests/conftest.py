"""Test fixtures: a real deltacloud-server process on an ephemeral loopback port, and the
generated stubs to talk to it, exactly as users do."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import grpc
import pytest
from ec2_support import AUTHENTICATING_MOTO, GENERATED_SECRETS, MOTO, MotoServer

from deltacloud.drivers.conformance import Api
from deltacloud.drivers.conformance import ServerProcess as KitServerProcess
from support import EXTRA_USERS

__all__ = ["Api", "PlainServer", "ServerProcess"]

ROOT = Path(__file__).resolve().parent.parent
#: Where `make setup` installs the test drivers (limited, pushy), apart from the virtual
#: environment's site-packages so that `make serve` does not offer them: on this process's
#: path, and on the path of every server and tool the tests start.
TEST_DRIVER_PATH = Path(sys.prefix) / "test-drivers"
sys.path.insert(0, str(TEST_DRIVER_PATH))
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(TEST_DRIVER_PATH), os.environ.get("PYTHONPATH")])
)
#: Short automatic-transition delays keep lifecycle tests fast.
PENDING_DELAY = 0.3
STOPPING_DELAY = 0.3


class ServerProcess(KitServerProcess):
    """The kit's server process, with the mock tuned for tests: extra users, and short
    automatic-transition delays."""

    def base_args(self, port: int, port_file: Path) -> list[str]:
        users = ",".join(f"{u}:{p}" for u, p in EXTRA_USERS.items())
        return [
            *super().base_args(port, port_file),
            "--driver-option",
            f"mock.users={users}",
            "--driver-option",
            f"mock.pending_delay={PENDING_DELAY}",
            "--driver-option",
            f"mock.stopping_delay={STOPPING_DELAY}",
        ]


class PlainServer(KitServerProcess):
    """The kit's server process as it is, without the mock's test flags (for servers on
    another driver, whose flags come in ``extra_args``)."""


def _server(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp(name)).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server shared by the tests of one module (state carries over between them)."""
    yield from _server(tmp_path_factory, "server")


@pytest.fixture
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this test alone, on a new data directory (pristine fixtures)."""
    yield from _server(tmp_path_factory, "fresh")


def _api(server: ServerProcess) -> Iterator[Api]:
    channel = grpc.insecure_channel(server.target)
    try:
        yield Api(channel)
    finally:
        channel.close()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    yield from _api(server)


@pytest.fixture
def fresh_api(fresh_server: ServerProcess) -> Iterator[Api]:
    yield from _api(fresh_server)


#: The test driver packages `make setup` installs from tests/drivers/.
TEST_DRIVERS = ["limited", "pushy"]


@pytest.fixture(scope="session")
def test_drivers() -> list[str]:
    """The third-party-style test drivers; fails (never skips) when they are missing."""
    found = {ep.name for ep in entry_points(group="deltacloud.drivers")}
    missing = [name for name in TEST_DRIVERS if name not in found]
    if missing:
        pytest.fail(f"test drivers {missing} are not installed: run `make setup`")
    return TEST_DRIVERS


#: Secrets the tests send; none may ever reach a server log.
SECRETS = [
    "mockpassword",
    *EXTRA_USERS.values(),
    "s3cret-Pa55word-never-logged",
    "demo-secret",
    "AKIATESTEC2DRIVER",  # the EC2 tests' access key id and secret (tests/ec2_support.py)
    "test-secret-key",
]


@pytest.fixture(scope="session", autouse=True)
def no_credentials_in_any_server_log(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """After the whole run, search every server log the tests produced for credentials."""
    yield
    import base64

    logs = list(tmp_path_factory.getbasetemp().rglob("server-*.log"))
    forms = [s.encode() for s in [*SECRETS, *GENERATED_SECRETS]]
    forms += [
        base64.b64encode(f"{u}:{p}".encode())
        for u, p in [("mockuser", "mockpassword"), *EXTRA_USERS.items()]
    ]
    leaks = [
        f"{log}: {form.decode()}" for log in logs for form in forms if form in log.read_bytes()
    ]
    assert not leaks, "credentials in server logs:\n" + "\n".join(leaks)


# ---- moto, for the EC2 driver's tests (one of each per run) ------------------------------


def _running(moto: MotoServer) -> Iterator[MotoServer]:
    moto.start()
    try:
        moto.seed()
        yield moto
    finally:
        moto.stop()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """moto's standalone server, accepting any credentials."""
    yield from _running(MOTO)


@pytest.fixture(scope="session")
def authenticating_moto() -> Iterator[MotoServer]:
    """moto's standalone server checking every signature against its IAM, as AWS does."""
    yield from _running(AUTHENTICATING_MOTO)
