"""A bounded, thread-safe cache of boto3 clients.

Clients are keyed by a SHA-256 of (service, access key, secret, session token, region,
endpoint, timeout class): the credentials themselves are never stored anywhere but inside
the boto3 client that uses them, and never logged. boto3 clients are thread-safe once
built; building one is slow (~50 ms), so reusing them is what keeps a call cheap.

The client's deadline bounds each backend call: botocore fixes its timeouts and retries per
client, so clients come in a few *timeout classes* (1, 2, 5, 10, 30, 60 s): a call uses the
class just above its time left, whose connect/read timeouts and retry count fit in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

from deltacloud.drivers import AuthenticationError, BackendTimeoutError, CallContext

#: Timeout classes (seconds); a call without a deadline uses the last one.
TIMEOUT_CLASSES = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class AwsCredentials:
    """Access key, secret and optional session token; the repr hides all of them."""

    access_key: str
    secret_key: str
    session_token: str = ""

    def __repr__(self) -> str:
        return "AwsCredentials(<redacted>)"

    @classmethod
    def from_context(cls, ctx: CallContext) -> AwsCredentials:
        """Basic user = access key id; password = secret key, or ``SECRET:SESSIONTOKEN``
        (AWS secrets and session tokens never contain a colon)."""
        user, password = ctx.credentials.user, ctx.credentials.password
        if not user or not password:
            raise AuthenticationError(
                "the ec2 driver needs Basic credentials: user = AWS access key id, "
                "password = secret access key (or SECRET:SESSION_TOKEN)"
            )
        secret, _, token = password.partition(":")
        if not secret:
            raise AuthenticationError("the secret access key is empty")
        return cls(user, secret, token)


def timeout_class(time_left: float | None) -> float:
    if time_left is None:
        return TIMEOUT_CLASSES[-1]
    for limit in TIMEOUT_CLASSES:
        if time_left <= limit:
            return limit
    return TIMEOUT_CLASSES[-1]


def _config(service: str, limit: float, endpoint: str) -> Any:
    # Attempts fit in the class: a 1-2 s call is not retried, longer ones are (standard
    # mode retries throttling and connection errors with backoff).
    attempts = 1 if limit <= 2 else 2 if limit <= 5 else 3 if limit <= 10 else 5
    options: dict[str, Any] = {
        "connect_timeout": min(limit, 5.0),
        "read_timeout": limit,
        "retries": {"max_attempts": attempts, "mode": "standard"},
        "max_pool_connections": 32,
    }
    if service == "s3":
        options["s3"] = {"addressing_style": "path" if endpoint else "auto"}
        # Checksums "when_required": an S3-compatible endpoint need not know the newer
        # flexible checksums (and streaming parts need no trailer).
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    return Config(**options)


class ClientCache:
    """At most ``size`` clients, least recently used evicted first."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._clients: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        ctx: CallContext,
        service: str,
        region: str,
        endpoint: str,
    ) -> Any:
        left = ctx.time_left()
        if left is not None and left <= 0.05:
            raise BackendTimeoutError("the call's deadline passed before the cloud was asked")
        creds = AwsCredentials.from_context(ctx)
        limit = timeout_class(left)
        digest = hashlib.sha256()
        for part in (
            service,
            creds.access_key,
            creds.secret_key,
            creds.session_token,
            region,
            endpoint,
            str(limit),
        ):
            digest.update(part.encode())
            digest.update(b"\0")
        key = digest.hexdigest()
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
        # Built outside the lock (slow); a concurrent twin is harmless, the last one wins.
        session = boto3.session.Session()
        client = session.client(
            service,
            region_name=region,
            endpoint_url=endpoint or None,
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            aws_session_token=creds.session_token or None,
            config=_config(service, limit, endpoint),
        )
        with self._lock:
            self._clients[key] = client
            self._clients.move_to_end(key)
            while len(self._clients) > self._size:
                self._clients.popitem(last=False)
        return client

    def clear(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            with contextlib.suppress(Exception):  # best effort at shutdown
                client.close()
