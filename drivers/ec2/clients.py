"""A bounded, thread-safe cache of boto3 clients.

Clients are keyed by a SHA-256 of (service, access key, secret, session token, region,
endpoint, timeout class): the credentials themselves are never stored anywhere but inside
the boto3 client that uses them, and never logged. boto3 clients are thread-safe once
built; building one is slow (~50 ms), so reusing them is what keeps a call cheap.

The client's deadline bounds each backend call: botocore fixes its timeouts and retries per
client, so clients come in a few *time budgets* (0.5 to 60 s). A call uses the largest
budget its time left covers, and a budget's attempts, their connect and read timeouts and
botocore's sleeps between them add up to at most the budget: even against an endpoint
that never answers, botocore gives up, the caller hears BACKEND_UNAVAILABLE, and the
worker is free again before the client's deadline. A call without a deadline gets the
largest budget.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

from deltacloud.drivers import (
    NO_METER,
    AuthenticationError,
    BackendMeter,
    BackendOutcome,
    BackendTimeoutError,
    CallContext,
)

from .errors import THROTTLING_CODES

#: Time budgets of a backend call (seconds), retries included.
TIMEOUT_CLASSES = (0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)


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
    """The budget of a call with ``time_left`` seconds: the largest that fits (the
    smallest when none does), the largest without a deadline."""
    if time_left is None:
        return TIMEOUT_CLASSES[-1]
    fitting = [limit for limit in TIMEOUT_CLASSES if limit <= time_left]
    return fitting[-1] if fitting else TIMEOUT_CLASSES[0]


@dataclass(frozen=True)
class Budget:
    """How botocore spends a time budget: ``attempts`` tries (standard retry mode), each
    at most ``connect`` + ``read`` seconds, and the sleeps between them."""

    attempts: int
    connect: float
    read: float

    @classmethod
    def of(cls, limit: float) -> Budget:
        # Short budgets are not retried (the client may retry); longer ones retry
        # throttling and connection failures.
        attempts = 1 if limit < 10 else 2 if limit < 30 else 3
        per_attempt = (limit - _sleeps(attempts)) / attempts
        connect = min(per_attempt / 4, 3.0)
        return cls(attempts, connect, per_attempt - connect)

    def worst_case(self) -> float:
        """Seconds until botocore gives up when every attempt times out."""
        return self.attempts * (self.connect + self.read) + _sleeps(self.attempts)


def _sleeps(attempts: int) -> float:
    """The longest botocore's standard mode sleeps in all between ``attempts`` tries: up
    to 2**(n-1) s before the n-th retry (1, 2, 4, ...)."""
    return float((1 << (attempts - 1)) - 1)


def _config(service: str, limit: float, endpoint: str) -> Any:
    budget = Budget.of(limit)
    options: dict[str, Any] = {
        "connect_timeout": budget.connect,
        "read_timeout": budget.read,
        # total_max_attempts counts the first try; botocore's max_attempts does not.
        "retries": {"total_max_attempts": budget.attempts, "mode": "standard"},
        "max_pool_connections": 32,
    }
    if service == "s3":
        options["s3"] = {"addressing_style": "path" if endpoint else "auto"}
        # Checksums "when_required": an S3-compatible endpoint need not know the newer
        # flexible checksums (and streaming parts need no trailer).
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    return Config(**options)


# One session builds every client of the process (every region's driver included): it
# parses each service's model once. A session per client cost 20-24 MiB and 180 ms per EC2
# client, against well under 1 MiB and 16 ms. The credentials go to each client, never to
# the session. Sessions are not thread-safe: one build at a time.
_BUILD_LOCK = threading.Lock()


@functools.cache
def _session() -> Any:
    """The shared session (call with _BUILD_LOCK held)."""
    return boto3.session.Session()


def attempt_outcome(response: Any, caught_exception: BaseException | None) -> BackendOutcome:
    """How one attempt botocore made ended: from its HTTP response and parsed error, or
    the exception that stood for an answer (connection refused, timeout)."""
    if caught_exception is not None or response is None:
        return "network_error"
    http, parsed = response
    status = int(getattr(http, "status_code", 0) or 0)
    error = parsed.get("Error") if isinstance(parsed, dict) else None
    code = str(error.get("Code", "")) if isinstance(error, dict) else ""
    if code in THROTTLING_CODES or status == 429:
        return "throttled"
    if status >= 500:
        return "server_error"
    if status >= 400 or code:
        return "client_error"
    return "ok"


class ClientCache:
    """At most ``size`` clients, least recently used evicted first. Every client reports
    each attempt it makes to ``meter`` (the server's, once a driver of the server uses the
    cache)."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._clients: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.meter: BackendMeter = NO_METER

    def _report(
        self,
        service: str,
        response: Any = None,
        caught_exception: BaseException | None = None,
        operation: Any = None,
        **_: Any,
    ) -> None:
        """botocore's ``needs-retry`` event, emitted after every attempt; returns None, so
        it never changes botocore's decision to retry."""
        name = str(getattr(operation, "name", "") or "unknown")
        with contextlib.suppress(Exception):  # a meter must never fail a call
            self.meter.attempt(service, name, attempt_outcome(response, caught_exception))

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
        # Built outside the cache's lock (slow); a concurrent twin is harmless, the last one
        # wins.
        with _BUILD_LOCK:
            client = _session().client(
                service,
                region_name=region,
                endpoint_url=endpoint or None,
                aws_access_key_id=creds.access_key,
                aws_secret_access_key=creds.secret_key,
                aws_session_token=creds.session_token or None,
                config=_config(service, limit, endpoint),
            )
            client.meta.events.register("needs-retry", functools.partial(self._report, service))
        with self._lock:
            self._clients[key] = client
            self._clients.move_to_end(key)
            while len(self._clients) > self._size:
                self._clients.popitem(last=False)
        return client

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def clear(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            with contextlib.suppress(Exception):  # best effort at shutdown
                client.close()


_CACHES: dict[int, ClientCache] = {}
_CACHES_LOCK = threading.Lock()


def shared_cache(size: int) -> ClientCache:
    """The process's client cache of that size: every region's driver (and every
    ``REGION@URL`` provider's) shares it, so the clients kept are bounded for the whole
    server, not per region (the key has the region and endpoint in it)."""
    with _CACHES_LOCK:
        return _CACHES.setdefault(size, ClientCache(size))
