"""``filter_on``, as in Deltacloud: the one implementation of list filtering; and
``natural_key``, the one order lists are served in."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")

_ASCII_DIGITS = re.compile(r"([0-9]+)")

#: The sort key natural_key returns: the id's runs of text and numbers, then the id itself.
NaturalKey = tuple[tuple[tuple[int, int | str], ...], str]


@functools.lru_cache(maxsize=65_536)  # ids recur on every list: parse each once
def natural_key(item_id: str) -> NaturalKey:
    """Sort key putting ``inst2`` before ``inst10`` and ``192.168.0.9`` before
    ``192.168.0.10``. The order is total: ids that read alike as numbers (``a01b1`` and
    ``a1b01``) are told apart by the id itself, so a page cursor on one never skips the
    other. Only ASCII digits count as numbers."""
    runs = tuple(
        (0, int(run)) if "0" <= run[0] <= "9" else (1, run)
        for run in _ASCII_DIGITS.split(item_id)
        if run
    )
    return runs, item_id


def filter_on(items: Iterable[T], filters: Mapping[str, object], *attrs: str) -> list[T]:
    """Keep the items whose attribute equals the filter's value, for every attribute in
    ``attrs`` that ``filters`` gives a non-empty value for. A list or set value matches any
    of its members. Attributes not named in ``attrs`` are not filtered on."""
    result = list(items)
    for attr in attrs:
        wanted = filters.get(attr)
        if wanted is None or wanted == "" or wanted == [] or wanted == ():
            continue
        if isinstance(wanted, list | tuple | set | frozenset):
            choices = {str(w) for w in wanted}
            result = [item for item in result if str(getattr(item, attr)) in choices]
        else:
            result = [item for item in result if str(getattr(item, attr)) == str(wanted)]
    return result
