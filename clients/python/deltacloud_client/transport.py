"""The transport under the client surface: channel, call metadata (driver, provider,
credentials), retries of safe calls and error translation. ``SyncTransport`` over a
``grpc.Channel``, ``AsyncTransport`` over a ``grpc.aio.Channel``; what to send and when to
retry comes from the shared ``Settings``, ``Rpc`` and ``RetryPolicy``."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, cast

import grpc
import grpc.aio
from google.protobuf.message import Message

from .errors import from_rpc_error
from .paging import AsyncPager, Pager
from .retry import RetryPolicy
from .rpc import Rpc, with_request_id

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Item = TypeVar("Item")

Resp_co = TypeVar("Resp_co", covariant=True)


class StreamCall(Protocol[Resp_co]):
    """A server stream of the sync API: the messages, and a way to cancel it."""

    def __iter__(self) -> Iterator[Resp_co]: ...

    def __next__(self) -> Resp_co: ...

    def cancel(self) -> bool: ...


DEFAULT_TARGET = "127.0.0.1:50051"
#: HTTP/2 keepalive while calls are in flight: a watch whose server vanished, or whose
#: network path died without closing the connection, fails within about 40 seconds and
#: resumes instead of waiting for ever. Every 30 s, which the server allows (its
#: --keepalive-min-client-interval is 10 s by default); ``max_pings_without_data`` 0
#: because a watching client sends no data, and gRPC stops pinging after 2 pings otherwise.
KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # The wait for a ping's answer is ping_timeout_ms (60 s by default) in gRPC core now,
    # whatever keepalive_timeout_ms says: set both.
    ("grpc.http2.ping_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
)
#: Default deadline of a unary call, in seconds, its retries included (streams have none
#: unless asked).
DEFAULT_TIMEOUT = 30.0


def _deadline(timeout: float | None) -> float | None:
    """The monotonic time by which a call with this timeout must be answered (None: never)."""
    return None if timeout is None else time.monotonic() + timeout


def _time_left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _retry_delay(
    policy: RetryPolicy,
    delays: Iterator[float],
    code: grpc.StatusCode,
    safe: bool,
    deadline: float | None,
) -> float | None:
    """The wait before the next attempt of a failed call, or None when there is none: the
    call must not be retried, its attempts are used up, or less time than the wait is left
    before its deadline (each attempt only gets what is left of it)."""
    if not policy.should_retry(code, safe):
        return None
    delay = next(delays, None)
    if delay is None or (deadline is not None and deadline - time.monotonic() <= delay):
        return None
    return delay


def _pem(value: bytes | str | Path | None) -> bytes | None:
    """PEM data given as bytes, or as the path of a file."""
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


class CallMetadata(tuple[tuple[str, str], ...]):
    """The metadata of every call, as gRPC takes it (pairs of key and value); its repr
    shows the credentials redacted, so that a transport (``vars(client)``) or its metadata
    can be logged."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = tuple((k, "[redacted]" if k == "authorization" else v) for k, v in self)
        return f"CallMetadata({shown!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    """Where and as whom to call: the target, the backend (driver, provider) and its
    credentials, TLS, deadlines and retries. Its repr leaves the secrets out (the password
    and the TLS private key), so that settings can be logged."""

    target: str = DEFAULT_TARGET
    driver: str | None = None
    provider: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    root_certificates: bytes | str | Path | None = None
    private_key: bytes | str | Path | None = field(default=None, repr=False)
    certificate_chain: bytes | str | Path | None = None
    server_name: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # One without the other: gRPC core aborted the whole process (a certificate without
        # its key), or the key was ignored and the call went out in plaintext.
        if (self.private_key is None) != (self.certificate_chain is None):
            raise ValueError(
                "a client certificate (certificate_chain, --cert) needs its private key "
                "(private_key, --key), and a key its certificate"
            )

    def metadata(self) -> CallMetadata:
        """The metadata of every call (README: driver, provider, Basic credentials)."""
        md: list[tuple[str, str]] = []
        if self.driver:
            md.append(("x-deltacloud-driver", self.driver))
        if self.provider:
            md.append(("x-deltacloud-provider", self.provider))
        if self.username is not None or self.password is not None:
            pair = f"{self.username or ''}:{self.password or ''}".encode()
            md.append(("authorization", "Basic " + base64.b64encode(pair).decode()))
        return CallMetadata(md)

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials, or None for plaintext."""
        if not (self.tls or self.root_certificates or self.certificate_chain):
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.root_certificates),
            private_key=_pem(self.private_key),
            certificate_chain=_pem(self.certificate_chain),
        )

    def channel_options(self) -> list[tuple[str, Any]]:
        # Reconnect soon after a server restart (gRPC's default waits up to 2 minutes), so
        # retried reads and resumed watches find the server again in seconds.
        options: dict[str, Any] = {
            "grpc.initial_reconnect_backoff_ms": 250,
            "grpc.min_reconnect_backoff_ms": 250,
            "grpc.max_reconnect_backoff_ms": 3000,
            **dict(KEEPALIVE_OPTIONS),
        }
        # The caller's options replace these by name: gRPC takes the first of two
        # arguments with the same name, so appending would leave the defaults in force.
        options.update(self.options)
        if self.server_name:
            options["grpc.ssl_target_name_override"] = self.server_name
        return list(options.items())

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from DELTACLOUD_TARGET, _DRIVER, _PROVIDER, _USERNAME and _PASSWORD;
        keyword arguments that are not None win."""
        env: dict[str, Any] = {
            "target": os.environ.get("DELTACLOUD_TARGET") or DEFAULT_TARGET,
            "driver": os.environ.get("DELTACLOUD_DRIVER"),
            "provider": os.environ.get("DELTACLOUD_PROVIDER"),
            "username": os.environ.get("DELTACLOUD_USERNAME"),
            "password": os.environ.get("DELTACLOUD_PASSWORD"),
        }
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**env)


class SyncTransport:
    """Blocking calls over a grpc.Channel (made from the settings, or given)."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        driver: str | None = None,
        provider: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        root_certificates: bytes | str | Path | None = None,
        private_key: bytes | str | Path | None = None,
        certificate_chain: bytes | str | Path | None = None,
        server_name: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        channel: grpc.Channel | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings(
            target=target,
            driver=driver,
            provider=provider,
            username=username,
            password=password,
            tls=tls,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            server_name=server_name,
            timeout=timeout,
            retry=retry or RetryPolicy(),
        )
        self._metadata = self.settings.metadata()
        self._owns_channel = channel is None
        self.channel = channel or self._open()

    def _open(self) -> grpc.Channel:
        settings = self.settings
        credentials = settings.credentials()
        if credentials is None:
            return grpc.insecure_channel(settings.target, options=settings.channel_options())
        return grpc.secure_channel(settings.target, credentials, settings.channel_options())

    def _call(self, rpc: Rpc[Req, Resp], request: Req, timeout: float | None) -> Resp:
        method = self.channel.unary_unary(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        request = with_request_id(rpc, request)
        # One deadline for the call, its retries included.
        deadline = _deadline(timeout if timeout is not None else self.settings.timeout)
        delays = self.settings.retry.delays()
        while True:
            try:
                response: Resp = method(
                    request, metadata=self._metadata, timeout=_time_left(deadline)
                )
                return response
            except grpc.RpcError as error:
                code: grpc.StatusCode = error.code()
                delay = _retry_delay(self.settings.retry, delays, code, rpc.safe_to_retry, deadline)
                if delay is None:
                    raise from_rpc_error(error) from error
                time.sleep(delay)

    def _list(self, rpc: Rpc[Req, Resp], request: Req, timeout: float | None) -> Pager[Any]:
        def fetch(page: Message) -> Message:
            return self._call(rpc, cast(Req, page), timeout)

        return Pager(fetch, request, rpc.items)

    def _stream(self, rpc: Rpc[Req, Resp], request: Req, timeout: float | None) -> StreamCall[Resp]:
        """A server stream (errors come raw as grpc.RpcError: the caller decides)."""
        method = self.channel.unary_stream(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        return cast(StreamCall[Resp], method(request, metadata=self._metadata, timeout=timeout))

    def _client_stream(
        self, rpc: Rpc[Req, Resp], requests: Iterable[Req], timeout: float | None
    ) -> Resp:
        method = self.channel.stream_unary(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        try:
            response: Resp = method(iter(requests), metadata=self._metadata, timeout=timeout)
            return response
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error

    def close(self) -> None:
        if self._owns_channel:
            self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncTransport:
    """The same over a grpc.aio.Channel; create it inside the running event loop."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        driver: str | None = None,
        provider: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        root_certificates: bytes | str | Path | None = None,
        private_key: bytes | str | Path | None = None,
        certificate_chain: bytes | str | Path | None = None,
        server_name: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        channel: grpc.aio.Channel | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings(
            target=target,
            driver=driver,
            provider=provider,
            username=username,
            password=password,
            tls=tls,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            server_name=server_name,
            timeout=timeout,
            retry=retry or RetryPolicy(),
        )
        self._metadata = self.settings.metadata()
        self._owns_channel = channel is None
        self.channel = channel or self._open()

    def _open(self) -> grpc.aio.Channel:
        settings = self.settings
        credentials = settings.credentials()
        if credentials is None:
            return grpc.aio.insecure_channel(settings.target, options=settings.channel_options())
        return grpc.aio.secure_channel(settings.target, credentials, settings.channel_options())

    async def _call(self, rpc: Rpc[Req, Resp], request: Req, timeout: float | None) -> Resp:
        method = self.channel.unary_unary(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        request = with_request_id(rpc, request)
        # One deadline for the call, its retries included.
        deadline = _deadline(timeout if timeout is not None else self.settings.timeout)
        delays = self.settings.retry.delays()
        while True:
            try:
                response: Resp = await method(
                    request, metadata=self._metadata, timeout=_time_left(deadline)
                )
                return response
            except grpc.RpcError as error:
                code: grpc.StatusCode = error.code()
                delay = _retry_delay(self.settings.retry, delays, code, rpc.safe_to_retry, deadline)
                if delay is None:
                    raise from_rpc_error(error) from error
                await asyncio.sleep(delay)

    def _list(self, rpc: Rpc[Req, Resp], request: Req, timeout: float | None) -> AsyncPager[Any]:
        async def fetch(page: Message) -> Message:
            return await self._call(rpc, cast(Req, page), timeout)

        return AsyncPager(fetch, request, rpc.items)

    def _stream(
        self, rpc: Rpc[Req, Resp], request: Req, timeout: float | None
    ) -> grpc.aio.UnaryStreamCall[Any, Resp]:
        method = self.channel.unary_stream(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        return method(request, metadata=self._metadata, timeout=timeout)

    async def _client_stream(
        self, rpc: Rpc[Req, Resp], requests: Iterable[Req], timeout: float | None
    ) -> Resp:
        method = self.channel.stream_unary(
            rpc.path,
            request_serializer=rpc.request.SerializeToString,
            response_deserializer=rpc.response.FromString,
        )
        try:
            response: Resp = await method(iter(requests), metadata=self._metadata, timeout=timeout)
            return response
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error

    async def close(self) -> None:
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


__all__ = ["AsyncTransport", "Settings", "SyncTransport"]
