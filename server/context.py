"""Per-call context from gRPC metadata: which driver, which provider, which credentials.

``x-deltacloud-driver`` and ``x-deltacloud-provider`` pick the backend (falling back to the
server's defaults) and ``authorization: Basic base64(user:password)`` carries credentials.
Credentials live only in the CallContext handed to the driver; nothing here logs them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from deltacloud.drivers import Credentials

from .errors import ApiError

DRIVER_KEY = "x-deltacloud-driver"
PROVIDER_KEY = "x-deltacloud-provider"
AUTHORIZATION_KEY = "authorization"


@dataclass(frozen=True)
class RequestedScope:
    """What the caller asked for; empty strings mean "the server's default"."""

    driver: str
    provider: str
    credentials: Credentials


def _unauthenticated(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAUTHENTICATED, "MALFORMED_AUTHORIZATION", message)


def parse_credentials(value: str | None) -> Credentials:
    if value is None or value == "":
        return Credentials()
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise _unauthenticated("authorization metadata must be 'Basic base64(user:password)'")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _unauthenticated(
            "authorization metadata is not valid base64 of UTF-8 'user:password'"
        ) from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise _unauthenticated("authorization metadata must encode 'user:password'")
    # RFC 7617: no control characters in either. (Scopes are keyed on the parts joined by
    # NUL, so this also keeps "a\0b" + "c" and "a" + "b\0c" apart.)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in decoded):
        raise _unauthenticated("the user and password must not hold control characters")
    return Credentials(user=user, password=password)


def parse_metadata(
    metadata: Iterable[tuple[str, str | bytes]] | None, *, credentials: bool = True
) -> RequestedScope:
    """The driver, provider and (unless ``credentials`` is False: a call that needs none
    ignores the authorization metadata, whatever it holds) the credentials asked for."""
    found: dict[str, str] = {}
    for key, value in metadata or ():
        if isinstance(value, bytes):
            continue
        found[key.lower()] = value
    return RequestedScope(
        driver=found.get(DRIVER_KEY, "").strip(),
        provider=found.get(PROVIDER_KEY, "").strip(),
        credentials=(
            parse_credentials(found.get(AUTHORIZATION_KEY)) if credentials else Credentials()
        ),
    )
