"""Helpers the tests share: metadata for calls, and reading an error's ErrorInfo."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

MOCK_USER = ("mockuser", "mockpassword")
#: Extra mock users every test server accepts (tenant-isolation tests use them).
EXTRA_USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def metadata(
    user: str = MOCK_USER[0],
    password: str = MOCK_USER[1],
    *,
    driver: str | None = None,
    provider: str | None = None,
) -> list[tuple[str, str]]:
    """Call metadata: Basic credentials, and optionally a driver and provider."""
    md = [("authorization", basic(user, password))]
    if driver is not None:
        md.append(("x-deltacloud-driver", driver))
    if provider is not None:
        md.append(("x-deltacloud-provider", provider))
    return md


MD = metadata()
ALICE = metadata("alice", EXTRA_USERS["alice"])
BOB = metadata("bob", EXTRA_USERS["bob"])


@dataclass
class Failure:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    metadata: dict[str, str]


def failure(error: grpc.RpcError) -> Failure:
    """The status code, message and ErrorInfo of a failed call; fails the test when the
    status carries no ErrorInfo (every error of ours must)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no google.rpc.Status in {error!r}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return Failure(
                error.code(),  # type: ignore[attr-defined]
                status.message,
                info.reason,
                info.domain,
                dict(info.metadata),
            )
    raise AssertionError(f"no ErrorInfo in {error!r}")
