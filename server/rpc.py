"""What every servicer method shares: resolving the call, turning any failure into a
google.rpc.Status, filtering and paging lists, and checking required fields."""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import grpc

from deltacloud.drivers import COLLECTIONS, filter_on

from .context import parse_metadata
from .errors import ApiError, abort, invalid_argument, to_api_error
from .events.hub import EventHub
from .gateway import Call, Gateway, current_scope
from .pagination import Page, PageTokens, page_size_of, paginate, query_digest
from .requests import RequestLog

#: Marks a page token's cursor as the driver's own (list_page), not an item id.
NATIVE = "native:"

T = TypeVar("T")
M = TypeVar("M")

#: Bytes of a List response kept for the page token where its size is not known yet (a
#: native page cut short: the driver's cursor for fewer items comes with them).
RESPONSE_SLACK = 4096
#: A repeated message field's or a string field's tag and length prefix, at most.
FIELD_OVERHEAD = 6


class _NeverRaised(Exception):
    """Stands for ExecuteBatchError if a gRPC release moves it."""


#: What context.write raises when the call is gone (the client cancelled or vanished).
CallGone: type[Exception] = getattr(
    importlib.import_module("grpc._cython.cygrpc"), "ExecuteBatchError", _NeverRaised
)


access_log = logging.getLogger("deltacloud.server.access")
if TYPE_CHECKING:
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
else:  # grpc's ServicerContext takes no type arguments at run time
    Context = grpc.aio.ServicerContext


class Servicer:
    """Base of the collection servicers: thin adapters from messages to driver calls."""

    #: Calls of this service run on the driver and provider their metadata names, so their
    #: errors echo them even when refused before the call was opened (a missing field).
    echoes_scope = True

    def __init__(
        self, gateway: Gateway, tokens: PageTokens, events: EventHub, requests: RequestLog
    ) -> None:
        self.gateway = gateway
        self.tokens = tokens
        self.events = events
        #: Creates that take a request id run once per id (server/requests.py).
        self.requests = requests

    def scope_named(self, context: Context) -> dict[str, str]:
        """The driver and provider a call's metadata names, with the server's defaults, as
        echoed (empty when this service echoes none, or the names do not resolve)."""
        if not self.echoes_scope:
            return {}
        try:
            requested = parse_metadata(context.invocation_metadata(), credentials=False)
            cls, provider = self.gateway.resolve_names(requested.driver, requested.provider)
        except Exception:
            # Best effort: the error it goes with is being answered (a driver whose
            # accepts_provider raised must not turn that answer into UNKNOWN).
            return {}
        return {"driver": cls.name, "provider": provider}

    async def listed(
        self,
        call: Call,
        collection: str,
        list_method: Callable[..., Sequence[T]],
        request: Any,
        filters: dict[str, object],
        message: Callable[[T], M],
        filter_attrs: Sequence[str] | None = None,
    ) -> Page[M]:
        """The page a List request asks for, as messages (``message`` converts an item):
        paged by the driver when it pages this collection natively, else by the server over
        the driver's whole list; cut short, with a token for the rest, when the messages
        would not fit in one response."""
        check_filter_ids(filters)
        if collection in call.driver_class.pages_natively:
            return await self._native_page(
                call, collection, request, filters, message, filter_attrs
            )
        items = await call.run(list_method, filters)
        return self.page(
            call, collection, items, request, filters, message, filter_attrs=filter_attrs
        )

    async def _native_page(
        self,
        call: Call,
        collection: str,
        request: Any,
        filters: dict[str, object],
        message: Callable[[Any], M],
        filter_attrs: Sequence[str] | None,
        keep: Callable[[Any], bool] | None = None,
    ) -> Page[M]:
        """A page from the driver's ``list_page``; ``keep``: a check of each item beyond the
        collection's equality filters (a blob's prefix)."""
        query = self._query(call, collection, filters)
        cursor = ""
        if request.page_token:
            marked = self.tokens.decode(query, request.page_token)
            if not marked.startswith(NATIVE):
                raise self.tokens.invalid()
            cursor = marked[len(NATIVE) :]
        size = page_size_of(request.page_size)
        attrs = filter_attrs if filter_attrs is not None else COLLECTIONS[collection].filters
        while True:
            items, following = await call.run(
                call.driver.list_page, collection, filters, size, cursor
            )
            matching = filter_on(items, filters, *attrs)
            if keep is not None:
                matching = [item for item in matching if keep(item)]
            kept = [message(item) for item in matching[:size]]
            token = self.tokens.encode(query, NATIVE + following) if following else ""
            fits = self._fitting(kept, collection, functools.partial(_known_if_whole, token, kept))
            if fits == len(kept):
                return Page(kept, token)
            # Too large for one response: ask the driver again for fewer, from the same
            # cursor, so that its own cursor says where the next page starts.
            size = fits

    def _query(self, call: Call, collection: str, filters: dict[str, object]) -> str:
        """What a page token is issued for: the list (collection, filters), the cloud
        (driver, provider) and the caller (another caller's token is refused)."""
        creds = call.ctx.credentials
        return query_digest(
            {
                "collection": collection,
                "driver": call.driver.name,
                "provider": call.ctx.provider,
                "caller": self.tokens.caller(creds.user, creds.password),
                "filters": {k: v for k, v in filters.items() if v not in (None, "")},
            }
        )

    def page(
        self,
        call: Call,
        collection: str,
        items: Sequence[T],
        request: Any,
        filters: dict[str, object],
        message: Callable[[T], M],
        id_of: Callable[[T], str] = lambda item: item.id,  # type: ignore[attr-defined]
        filter_attrs: Sequence[str] | None = None,
        noun: str = "",
    ) -> Page[M]:
        """Apply the collection's filters (filter_on, whatever the driver did) and serve the
        page the request's token points at, as messages; cut short, with a token for the
        rest, when they would not fit in one response. ``noun``: what the items are called in
        an error (the collection's name by default)."""
        attrs = filter_attrs if filter_attrs is not None else COLLECTIONS[collection].filters
        kept = filter_on(items, filters, *attrs)
        query = functools.partial(self._query, call, collection, filters)
        page = paginate(
            kept,
            id_of=id_of,
            page_size=request.page_size,
            page_token=request.page_token,
            tokens=self.tokens,
            query=query,
        )
        messages = [message(item) for item in page.items]

        def token_of(count: int) -> str:
            if count == len(messages):
                return page.next_page_token
            return self.tokens.encode(query(), id_of(page.items[count - 1]))

        fits = self._fitting(messages, noun or collection, token_of)
        return Page(messages[:fits], token_of(fits))

    def _fitting(
        self, messages: Sequence[Any], noun: str, token_of: Callable[[int], str | None]
    ) -> int:
        """How many of ``messages``, in order, fit in one response under the server's
        largest message together with the page token for the rest (``token_of(n)``: the
        token of a page of the first n, "" for none, None when not known yet: room for
        RESPONSE_SLACK bytes is kept). At least one, or RESOURCE_EXHAUSTED: one item alone
        (with its token) is too big."""
        if not messages:
            return 0
        limit = self.gateway.config.max_message_bytes
        ends: list[int] = []  # bytes of the first n+1 items
        for item in messages:
            ends.append((ends[-1] if ends else 0) + item.ByteSize() + FIELD_OVERHEAD)
            if ends[-1] > limit:
                break
        count = len(ends) if ends[-1] <= limit else len(ends) - 1
        while count > 0:
            token = token_of(count)
            extra = min(RESPONSE_SLACK, limit // 4) if token is None else len(token)
            if ends[count - 1] + (extra + FIELD_OVERHEAD if extra else 0) <= limit:
                return count
            count -= 1
        size = messages[0].ByteSize() if messages else 0
        raise ApiError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "RESPONSE_TOO_LARGE",
            f"one item of {noun} takes {size} bytes, too many for the server's largest "
            f"message ({limit} bytes, --max-message-bytes) with the page token",
            {"collection": noun, "item_bytes": size},
        )


def _known_if_whole(token: str, kept: Sequence[Any], count: int) -> str | None:
    """The token of a native page of ``count`` of the ``kept`` items: the one the driver's
    cursor made for all of them; for fewer, not known until the driver is asked again."""
    return token if count == len(kept) else None


def require(request: Any, *fields: str, ids: bool = True) -> None:
    """INVALID_ARGUMENT naming the first required field left empty, or (an id, unless
    ``ids`` is False) holding a control character (INVALID_TEXT, as :func:`check_text`).
    Blob keys are not ids: S3 keeps a key with a tab, and one stored must stay reachable."""
    for name in fields:
        value = getattr(request, name)
        if not value:
            raise invalid_argument("MISSING_FIELD", f"{name} is required", field=name)
        if ids and _is_id(name):
            _check_one(name, value, _NOT_IN_NAMES)


def _is_id(name: str) -> bool:
    return name == "id" or name.endswith("_id")


def check_filter_ids(filters: Mapping[str, object]) -> None:
    """INVALID_ARGUMENT (INVALID_TEXT) if a list's id filter holds a control character: no
    object has such an id, and a cloud answering in XML cannot even say so (ec2 on one
    answered UNAVAILABLE BACKEND_ERROR, which clients retry)."""
    for name, value in filters.items():
        if isinstance(value, str) and value and _is_id(name):
            _check_one(name, value, _NOT_IN_NAMES)


#: Characters no name may hold: C0 controls, DEL, and the noncharacters U+FFFE/U+FFFF.
#: Clouds that answer in XML (EC2, S3) cannot even send them back: a name with one was
#: stored, and every later list of its collection failed to parse.
_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f\ufffe\uffff]")
#: Descriptions may break lines (tab, line feed, carriage return), nothing else of those.
_NOT_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def check_text(request: Any, names: Sequence[str] = (), texts: Sequence[str] = ()) -> None:
    """INVALID_ARGUMENT (INVALID_TEXT) naming the first field of ``names`` holding a control
    character, or of ``texts`` (descriptions) one other than a line break or tab."""
    for fields, pattern in ((names, _NOT_IN_NAMES), (texts, _NOT_IN_TEXT)):
        for name in fields:
            _check_one(name, getattr(request, name), pattern)


def _check_one(name: str, value: str, pattern: re.Pattern[str]) -> None:
    found = pattern.search(value)
    if found is not None:
        raise invalid_argument(
            "INVALID_TEXT",
            f"{name} must not contain control characters (U+{ord(found.group()):04X} "
            f"at position {found.start()})",
            field=name,
        )


def _scope_metadata() -> dict[str, str]:
    return dict(current_scope.get({}))


def unary(
    fn: Callable[[Any, Any, Context], Awaitable[T]],
) -> Callable[[Any, Any, Context], Awaitable[T]]:
    """Wrap a handler (streams write with ``context.write``): any failure becomes a status
    with ErrorInfo; cancellation and aborts pass through, and so does a write that fails
    because the client has gone (as a cancellation: gRPC logs any other exception that
    leaves a handler as an error of the server)."""

    name = fn.__name__

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: Context) -> T:
        current_scope.set({})
        stats = self.gateway.metrics.rpcs.of(type(self), name)
        stats.started += 1
        started = time.perf_counter()
        code = "OK"
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            code = _aborted_code(context)
            raise
        except asyncio.CancelledError:  # the client went away, or its deadline passed
            code = _gone_code(context)
            raise
        except CallGone:
            # A write to (or read from) a stream whose client has gone: nobody to answer.
            code = _gone_code(context)
            raise asyncio.CancelledError() from None
        except Exception as exc:
            scope = _scope_metadata() or self.scope_named(context)
            error = to_api_error(exc, scope)
            code = error.code.name
            await abort(context, error, scope)
            raise AssertionError("unreachable: abort raises") from exc
        finally:
            elapsed = time.perf_counter() - started
            stats.done(code, elapsed)
            _log_access(name, code, elapsed)

    return wrapper


def _aborted_code(context: Context) -> str:
    """The status a handler aborted with (context.abort sets it)."""
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


#: A call cancelled this close to its deadline (seconds) was ended by the deadline: the
#: client's copy of it runs out first (it started before the request reached the server),
#: and the client then cancels the call, so the server sees a cancellation with a little
#: time left, a network's one-way latency.
DEADLINE_SLACK = 0.2


def _gone_code(context: Context) -> str:
    """What the client of a call that ended without an answer saw: its deadline passed, or
    it cancelled (or vanished)."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= DEADLINE_SLACK:
        return "DEADLINE_EXCEEDED"
    return "CANCELLED"


def _log_access(method: str, code: str, seconds: float) -> None:
    if access_log.isEnabledFor(logging.DEBUG):
        fields = {
            "method": method,
            "code": code,
            "ms": round(seconds * 1000, 3),
            **_scope_metadata(),
        }
        access_log.debug("call", extra={"fields": fields})
