"""A deltacloud-server subprocess on an ephemeral loopback port, for tests: started, waited
for (health SERVING), stopped gracefully, killed with -9, restarted on the same data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


@dataclass
class ServerProcess:
    """``python -m deltacloud.server.main`` with ``extra_args`` (after the defaults, so they
    override them) and ``env`` (DELTACLOUD_* variables of the caller are dropped)."""

    data_dir: Path
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: False to start with only ``extra_args`` and ``env`` (no --listen, --data-dir, ...).
    default_args: bool = True
    #: With TLS: the CA to trust, and for mutual TLS the client's (key, certificate chain).
    tls_ca: bytes | None = None
    tls_client: tuple[bytes, bytes] | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def channel(self) -> grpc.Channel:
        """A channel to the server, over TLS when ``tls_ca`` is set."""
        if self.tls_ca is None:
            return grpc.insecure_channel(self.target)
        key, chain = self.tls_client or (None, None)
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.tls_ca, private_key=key, certificate_chain=chain
        )
        return grpc.secure_channel(self.target, creds)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def base_args(self, port: int, port_file: Path) -> list[str]:
        return [
            "--listen",
            f"127.0.0.1:{port}",
            "--port-file",
            str(port_file),
            "--data-dir",
            str(self.data_dir),
            "--shutdown-grace",
            "2",
        ]

    def start(self, port: int = 0, timeout: float = 30.0) -> ServerProcess:
        port_file = Path(self.env.get("DELTACLOUD_PORT_FILE", self.data_dir / "port"))
        port_file.unlink(missing_ok=True)
        args = [sys.executable, "-m", "deltacloud.server.main"]
        if self.default_args:
            args += self.base_args(port, port_file)
        args += self.extra_args
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{time.time_ns()}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DELTACLOUD_")}
        env.update(self.env)
        with self.log_path.open("wb") as log:
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
        with self.channel() as channel:
            health = health_pb2_grpc.HealthStub(channel)
            # types-grpcio-health-checking declares HealthStub without its methods.
            check = health.Check  # type: ignore[attr-defined]
            status = check(health_pb2.HealthCheckRequest(), timeout=timeout)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
        return self

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
