"""Test fixtures: a real deltacloud-server process on an ephemeral loopback port, and the
generated stubs to talk to it, exactly as users do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deltacloud.v1 import (
    address_pb2_grpc,
    bucket_pb2_grpc,
    discovery_pb2_grpc,
    firewall_pb2_grpc,
    hardware_profile_pb2_grpc,
    image_pb2_grpc,
    instance_pb2_grpc,
    key_pb2_grpc,
    load_balancer_pb2_grpc,
    realm_pb2_grpc,
    storage_snapshot_pb2_grpc,
    storage_volume_pb2_grpc,
)
from support import EXTRA_USERS

ROOT = Path(__file__).resolve().parent.parent
#: Short automatic-transition delays keep lifecycle tests fast.
PENDING_DELAY = 0.3
STOPPING_DELAY = 0.3


@dataclass
class ServerProcess:
    """A deltacloud-server subprocess; ``start`` waits until health says SERVING."""

    data_dir: Path
    extra_args: list[str] = field(default_factory=list)
    #: Extra environment variables (DELTACLOUD_* from the caller's environment are dropped).
    env: dict[str, str] = field(default_factory=dict)
    #: False to start with only ``extra_args`` and ``env`` (no --listen, --data-dir, ...).
    default_args: bool = True
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, port: int = 0, timeout: float = 30.0) -> ServerProcess:
        port_file = Path(self.env.get("DELTACLOUD_PORT_FILE", self.data_dir / "port"))
        port_file.unlink(missing_ok=True)
        args = [sys.executable, "-m", "deltacloud.server.main"]
        if self.default_args:
            args += self._default_args(port, port_file)
        args += self.extra_args  # last, so they override the defaults
        self.log_path = self.data_dir / f"server-{time.time_ns()}.log"
        log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DELTACLOUD_")}
        env.update(self.env)
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not start:\n{self.log()}")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        with grpc.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
        return self

    def _default_args(self, port: int, port_file: Path) -> list[str]:
        users = ",".join(f"{u}:{p}" for u, p in EXTRA_USERS.items())
        return [
            "--listen",
            f"127.0.0.1:{port}",
            "--port-file",
            str(port_file),
            "--data-dir",
            str(self.data_dir),
            "--driver-option",
            f"mock.users={users}",
            "--driver-option",
            f"mock.pending_delay={PENDING_DELAY}",
            "--driver-option",
            f"mock.stopping_delay={STOPPING_DELAY}",
            "--shutdown-grace",
            "2",
        ]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 15.0) -> int:
        """Graceful stop (SIGTERM); returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """kill -9: no chance to flush or clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> ServerProcess:
        """Start again on the same data directory and the same port."""
        return self.start(port=self.port)


class Api:
    """The generated stubs of every service over one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.realms = realm_pb2_grpc.RealmServiceStub(channel)
        self.hardware_profiles = hardware_profile_pb2_grpc.HardwareProfileServiceStub(channel)
        self.images = image_pb2_grpc.ImageServiceStub(channel)
        self.instances = instance_pb2_grpc.InstanceServiceStub(channel)
        self.keys = key_pb2_grpc.KeyServiceStub(channel)
        self.volumes = storage_volume_pb2_grpc.StorageVolumeServiceStub(channel)
        self.snapshots = storage_snapshot_pb2_grpc.StorageSnapshotServiceStub(channel)
        self.buckets = bucket_pb2_grpc.BucketServiceStub(channel)
        self.addresses = address_pb2_grpc.AddressServiceStub(channel)
        self.firewalls = firewall_pb2_grpc.FirewallServiceStub(channel)
        self.load_balancers = load_balancer_pb2_grpc.LoadBalancerServiceStub(channel)
        self.discovery = discovery_pb2_grpc.DiscoveryServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)


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
