"""Helpers the tests share: metadata for calls, and reading an error's ErrorInfo (the
conformance kit's, re-exported with the mock's users filled in)."""

from __future__ import annotations

from deltacloud.drivers.conformance.stubs import Failure, basic, failure
from deltacloud.drivers.conformance.stubs import metadata as _metadata

MOCK_USER = ("mockuser", "mockpassword")
#: Extra mock users every test server accepts (tenant-isolation tests use them).
EXTRA_USERS = {"alice": "alice-secret", "bob": "bob-secret"}


def metadata(
    user: str = MOCK_USER[0],
    password: str = MOCK_USER[1],
    *,
    driver: str | None = None,
    provider: str | None = None,
) -> list[tuple[str, str]]:
    """Call metadata: Basic credentials (mockuser's by default), driver and provider."""
    return _metadata(user, password, driver=driver, provider=provider)


MD = metadata()
ALICE = metadata("alice", EXTRA_USERS["alice"])
BOB = metadata("bob", EXTRA_USERS["bob"])

__all__ = ["ALICE", "BOB", "EXTRA_USERS", "MD", "MOCK_USER", "Failure", "basic", "failure"]
