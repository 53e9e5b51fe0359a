"""Finds drivers through the ``deltacloud.drivers`` entry-point group: built-in drivers are
registered the same way as third-party packages, and loaded only when first used."""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import EntryPoint, entry_points

from .base import BaseDriver
from .errors import DriverDefinitionError

GROUP = "deltacloud.drivers"


class UnknownDriverError(LookupError):
    """No driver of that name is installed."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown driver {name!r}; known drivers: {', '.join(known)}")
        self.name = name
        self.known = known


def load_driver_class(path: str) -> type[BaseDriver]:
    """The driver class at ``MODULE:CLASS`` (one not installed as an entry point); ValueError
    saying what is wrong."""
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"driver class {path}: cannot import {module_name}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseDriver)):
        raise ValueError(f"driver class {path}: {class_name} is not a BaseDriver subclass")
    return cls


class DriverRegistry:
    """The installed drivers by name; classes are imported lazily and cached."""

    def __init__(self, extra: dict[str, type[BaseDriver]] | None = None) -> None:
        self._entry_points: dict[str, EntryPoint] = {
            ep.name: ep for ep in entry_points(group=GROUP)
        }
        self._classes: dict[str, type[BaseDriver]] = dict(extra or {})
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(set(self._entry_points) | set(self._classes))

    def load(self, name: str) -> type[BaseDriver]:
        with self._lock:
            cls = self._classes.get(name)
            if cls is not None:
                return cls
            entry = self._entry_points.get(name)
            if entry is None:
                raise UnknownDriverError(name, self.names())
            cls = entry.load()
            if not (isinstance(cls, type) and issubclass(cls, BaseDriver)):
                raise DriverDefinitionError(
                    f"entry point {name!r} ({entry.value}) is not a BaseDriver subclass"
                )
            if cls.name != name:
                raise DriverDefinitionError(
                    f"entry point {name!r} loads driver named {cls.name!r}; "
                    "the entry-point name and the class's name must match"
                )
            self._classes[name] = cls
            return cls
