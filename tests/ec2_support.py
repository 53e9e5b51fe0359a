"""moto's standalone server (``moto_server``, HTTP on loopback) for the EC2 driver's tests:
never moto's in-process mocks, so the driver talks HTTP as it would to AWS.

``MOTO`` gets its free port when this module is imported, so test classes can name its URL
in their server flags; the ``moto`` fixture (session scope, tests/conftest.py) starts it,
seeds one AMI of the test account (``image_owners=self`` lists it), and stops it at the end;
``authenticating_moto`` does the same for ``AUTHENTICATING_MOTO``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
MOTO_BIN = Path(sys.executable).parent / "moto_server"
REGION = "us-east-1"
ACCESS_KEY, SECRET_KEY = "AKIATESTEC2DRIVER", "test-secret-key"
#: Instance types offered as hardware profiles in the tests (moto describes ~1,400).
INSTANCE_TYPES = "t2.micro,t3.micro,t3.small,t4g.micro,m5.large"
#: The AMIs moto starts with (MOTO_AMIS_PATH): three instead of its ~1,300 (each comes with
#: a snapshot of the test account, which would make every snapshot list long).
AMIS = [
    {
        "ami_id": f"ami-{n:08x}",
        "state": "available",
        "public": True,
        "owner_id": "801119661308",
        "image_location": "amazon/deltacloud-test",
        "root_device_type": "ebs",
        "root_device_name": "/dev/xvda",
        "description": description,
        "image_type": "machine",
        "architecture": arch,
        "name": name,
        "virtualization_type": "hvm",
        "hypervisor": "xen",
    }
    for n, (name, arch, description) in enumerate(
        [
            ("debian-12-amd64", "x86_64", "Debian 12 (x86_64)"),
            ("debian-12-arm64", "arm64", "Debian 12 (arm64)"),
            ("alpine-3-amd64", "x86_64", "Alpine 3 (x86_64)"),
        ],
        start=0x1000,
    )
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Credentials made at run time (the authenticating moto's IAM keys), for the log scan.
GENERATED_SECRETS: list[str] = []


@dataclass
class MotoServer:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: Check every request's SigV4 signature against moto's IAM, as AWS does (moto accepts
    #: any credentials otherwise). The account's keys are made at start.
    authenticating: bool = False
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    #: Where moto's request recorder writes (see :meth:`recording`).
    recorder_log: Path | None = None
    #: moto's stdout and stderr (each request, and the traceback of any 500).
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> MotoServer:
        amis = Path(tempfile.gettempdir()) / f"deltacloud-moto-amis-{os.getpid()}.json"
        amis.write_text(json.dumps(AMIS))
        self.recorder_log = amis.with_name(f"deltacloud-moto-requests-{self.port}.log")
        env = {
            **os.environ,
            "MOTO_AMIS_PATH": str(amis),
            "MOTO_RECORDER_FILEPATH": str(self.recorder_log),
        }
        if self.authenticating:
            # moto serves this many requests unauthenticated, then checks every signature:
            # exactly the three that make the test account below.
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        # moto's own log: the traceback behind a 500 it answers is there, nowhere else.
        self.log_path = amis.with_name(f"deltacloud-moto-{self.port}.log")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(MOTO_BIN), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("moto_server exited at start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        if self.authenticating:
            self._make_account()  # its first requests make moto's backends
        else:
            self._warm_up()
        return self

    def _warm_up(self) -> None:
        """moto makes a region's EC2 backend on its first request to it: 4 to 5 s on a slow
        machine, more under load, which a test's first call would be charged with (past the
        7 s budget of a 10 s deadline, it failed BACKEND_UNAVAILABLE). Made here, once per
        start, with time to spare."""
        client = boto3.client(
            "ec2",
            region_name="us-east-1",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(read_timeout=60, retries={"max_attempts": 1}),
        )
        client.describe_availability_zones()

    def _make_account(self) -> None:
        """An IAM user allowed everything, and its access key: the credentials the tests use
        against this moto."""
        iam = boto3.client(
            "iam",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id="AKIABOOTSTRAP",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="deltacloud-tests")
        key = iam.create_access_key(UserName="deltacloud-tests")["AccessKey"]
        allow_all = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="deltacloud-tests", PolicyName="all", PolicyDocument=json.dumps(allow_all)
        )
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        GENERATED_SECRETS.append(self.secret_key)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[dict[str, Any]]]:
        """The requests moto receives in the block (moto's recorder), filled in at its end:
        what our driver asked of the cloud."""
        requests: list[dict[str, Any]] = []

        def recorder(action: str, method: str = "POST") -> bytes:
            url = f"{self.url}/moto-api/recorder/{action}"
            with urllib.request.urlopen(urllib.request.Request(url, method=method)) as answer:
                return bytes(answer.read())

        recorder("reset-recording")
        recorder("start-recording")
        try:
            yield requests
        finally:
            recorder("stop-recording")
            log = recorder("download-recording", "GET").decode()
            requests += [json.loads(line) for line in log.splitlines() if line.strip()]
            if self.recorder_log is not None:
                self.recorder_log.unlink(missing_ok=True)

    def seed(self) -> str:
        """One AMI owned by the test account (from a moto built-in image); its id."""
        ec2 = self.client("ec2")
        mine = ec2.describe_images(Owners=["self"])["Images"]
        if mine:
            return str(mine[0]["ImageId"])
        base = AMIS[0]["ami_id"]
        instance = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1)["Instances"][0]
        image = ec2.create_image(InstanceId=instance["InstanceId"], Name="deltacloud-test")
        ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
        return str(image["ImageId"])


MOTO = MotoServer()
#: A second moto that checks signatures, for the conformance kit's wrong-credentials check.
AUTHENTICATING_MOTO = MotoServer(authenticating=True)


def server_flags(moto: MotoServer = MOTO, **extra: str) -> list[str]:
    """deltacloud-server flags for the ec2 driver against ``moto``."""
    options = {
        "endpoint_url": moto.url,
        "image_owners": "self",
        "instance_types": INSTANCE_TYPES,
        **extra,
    }
    flags = ["--driver", "ec2"]
    for key, value in options.items():
        flags += ["--driver-option", f"ec2.{key}={value}"]
    return flags
