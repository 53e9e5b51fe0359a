"""Pagers: iterate over the items of a list RPC while the pager follows page tokens. The
state machine (``PageCursor``) is shared; ``Pager`` and ``AsyncPager`` only drive it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from .errors import Internal

Item = TypeVar("Item")


class PageCursor:
    """Which request comes next: the first one, then the same with the page token of the
    previous response, until a response has no next page token. A response whose next page
    token was already followed (the same token again, or a cycle of them) raises Internal
    (reason PAGE_TOKEN_REPEATED): following it would hand out the same items for ever."""

    def __init__(self, request: Message, items_field: str) -> None:
        self._request = request
        self._items_field = items_field
        self._token: str | None = ""
        self._followed: set[str] = set()

    def next_request(self) -> Message | None:
        """The request for the next page, or None when the list is exhausted."""
        if self._token is None:
            return None
        request = type(self._request)()
        request.CopyFrom(self._request)
        if self._token:
            request.page_token = self._token  # type: ignore[attr-defined]
        return request

    def advance(self, response: Message) -> list[Any]:
        """Record a response; its items."""
        token: str = response.next_page_token  # type: ignore[attr-defined]
        if token and token in self._followed:
            raise Internal(
                "the server answered a page token this list already followed: "
                "stopped rather than hand out the same items again",
                reason="PAGE_TOKEN_REPEATED",
                metadata={"page_token": token},
            )
        self._followed.add(token)
        self._token = token or None
        return list(getattr(response, self._items_field))


class Pager(Generic[Item]):
    """Iterates over every item of every page (each iteration lists afresh); ``pages()``
    yields the items page by page."""

    def __init__(
        self, fetch: Callable[[Message], Message], request: Message, items_field: str
    ) -> None:
        self._fetch = fetch
        self._request = request
        self._items_field = items_field

    def pages(self) -> Iterator[list[Item]]:
        cursor = PageCursor(self._request, self._items_field)
        while (request := cursor.next_request()) is not None:
            yield cursor.advance(self._fetch(request))

    def __iter__(self) -> Iterator[Item]:
        for page in self.pages():
            yield from page


class AsyncPager(Generic[Item]):
    """The asyncio pager: ``async for item in client.list_instances(): ...``."""

    def __init__(
        self, fetch: Callable[[Message], Awaitable[Message]], request: Message, items_field: str
    ) -> None:
        self._fetch = fetch
        self._request = request
        self._items_field = items_field

    async def pages(self) -> AsyncIterator[list[Item]]:
        cursor = PageCursor(self._request, self._items_field)
        while (request := cursor.next_request()) is not None:
            yield cursor.advance(await self._fetch(request))

    async def __aiter__(self) -> AsyncIterator[Item]:
        async for page in self.pages():
            for item in page:
                yield item

    async def all(self) -> list[Item]:
        """Every item, in one list."""
        return [item async for item in self]
