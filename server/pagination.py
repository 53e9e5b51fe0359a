"""Opaque, tamper-evident page tokens and the paging of a driver's list.

A token records the id of the last item served and a digest of the query it belongs to
(collection, driver, provider, filters), signed with a key kept in the data directory so
tokens outlive a restart. Items are served in the natural order of their ids, so paging is
stable while items are added or removed: nothing is served twice, and an item present for
the whole walk is served once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from deltacloud.drivers import natural_key

from . import keyfiles
from .errors import invalid_argument

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


class PageTokens:
    """Signs and checks page tokens."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> PageTokens:
        """Load the signing key, creating it (mode 0600) on first start."""
        return cls(keyfiles.load_or_create(data_dir / "page-token.key", "page token key"))

    @classmethod
    def from_file(cls, path: Path) -> PageTokens:
        """The key an operator gave (``--page-token-key``: one for every server behind an
        address, so a page token from one is good at the others). Never created here: a
        key made by each server would not be shared."""
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"--page-token-key {path}: {exc.strerror or exc}") from None
        if len(key) < 16:
            raise ValueError(
                f"--page-token-key {path}: {len(key)} bytes; a key needs at least 16 "
                "(e.g. head -c 32 /dev/urandom > FILE)"
            )
        return cls(key)

    def caller(self, user: str, password: str) -> str:
        """Who a token is issued to, as part of its query: a keyed hash of the credentials
        (the same on servers sharing --page-token-key; nothing to guess a password from)."""
        mac = hmac.new(self._key, b"caller\0" + user.encode() + b"\0" + password.encode(), "sha256")
        return mac.hexdigest()[:24]

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, query: str, after: str) -> str:
        payload = json.dumps({"q": query, "a": after}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(self._sign(payload) + payload).decode().rstrip("=")

    def decode(self, query: str, token: str) -> str:
        """The id after which the page starts; INVALID_ARGUMENT for any token that was not
        issued by this server for this very query."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            # Only the exact string we issued: the decoder ignores stray characters and
            # the unused low bits of the last one, so a changed token could decode alike.
            if base64.urlsafe_b64encode(raw).decode().rstrip("=") != token:
                raise ValueError("not a token of ours")
            mac, payload = raw[:16], raw[16:]
            if not hmac.compare_digest(mac, self._sign(payload)):
                raise ValueError("bad signature")
            data = json.loads(payload)
            if data["q"] != query:
                raise ValueError("token of another query")
            after = data["a"]
            if not isinstance(after, str):
                raise ValueError("bad cursor")
            return after
        except (ValueError, KeyError, TypeError):
            raise self.invalid() from None

    @staticmethod
    def invalid() -> Exception:
        return invalid_argument(
            "INVALID_PAGE_TOKEN",
            "page_token was not issued for this request (was it changed, or were the "
            "filters changed between pages?); start again without a page_token",
        )


def query_digest(parts: Mapping[str, object]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def page_size_of(requested: int) -> int:
    if requested < 0:
        raise invalid_argument(
            "INVALID_PAGE_SIZE",
            f"page_size must not be negative (got {requested})",
            page_size=requested,
        )
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def paginate(
    items: Sequence[T],
    *,
    id_of: Callable[[T], str],
    page_size: int,
    page_token: str,
    tokens: PageTokens,
    query: Callable[[], str],
) -> Page[T]:
    """``query`` gives the digest of the request's query; it is computed only when a token
    is read or written (most lists fit in one page)."""
    size = page_size_of(page_size)
    ordered = sorted(items, key=lambda item: natural_key(id_of(item)))
    if page_token:
        after = natural_key(tokens.decode(query(), page_token))
        ordered = [item for item in ordered if natural_key(id_of(item)) > after]
    page = ordered[:size]
    more = len(ordered) > size
    token = tokens.encode(query(), id_of(page[-1])) if more and page else ""
    return Page(page, token)
