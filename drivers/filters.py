"""``filter_on``, as in Deltacloud: the one implementation of list filtering."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


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
