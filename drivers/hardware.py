"""Hardware profiles: fixed, range and enum properties with units, and the one place where
create-time overrides are validated."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .errors import DriverDefinitionError, PropertyValidationError

Value = float | str

#: The properties a profile may describe, with their units.
PROPERTY_UNITS: dict[str, str] = {
    "cpu": "count",
    "memory": "MB",
    "storage": "GB",
    "architecture": "label",
}


class PropertyKind(enum.StrEnum):
    FIXED = "fixed"
    RANGE = "range"
    ENUM = "enum"


@dataclass(frozen=True)
class Property:
    """One property of a hardware profile. Build with :func:`fixed`, :func:`range_of` or
    :func:`enum_of`."""

    kind: PropertyKind
    default: Value
    first: Value | None = None
    last: Value | None = None
    values: tuple[Value, ...] = ()

    def allows(self, value: Value) -> bool:
        if self.kind is PropertyKind.FIXED:
            return _same(value, self.default)
        if self.kind is PropertyKind.ENUM:
            return any(_same(value, v) for v in self.values)
        assert self.first is not None and self.last is not None
        if isinstance(value, str):
            return False
        return float(self.first) <= value <= float(self.last)

    def describe(self) -> str:
        """What is allowed, in words, for error messages."""
        if self.kind is PropertyKind.FIXED:
            return f"only {_fmt(self.default)}"
        if self.kind is PropertyKind.ENUM:
            return "one of " + ", ".join(_fmt(v) for v in self.values)
        return f"{_fmt(self.first)}..{_fmt(self.last)}"


def _same(a: Value, b: Value) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return float(a) == float(b)


def _fmt(value: Value | None) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def fixed(value: Value) -> Property:
    return Property(PropertyKind.FIXED, value)


def range_of(first: float, last: float, default: float | None = None) -> Property:
    if first > last:
        raise DriverDefinitionError(f"range {first}..{last} is empty")
    chosen = first if default is None else default
    if not first <= chosen <= last:
        raise DriverDefinitionError(f"default {chosen} outside range {first}..{last}")
    return Property(PropertyKind.RANGE, chosen, first=first, last=last)


def enum_of(*values: Value, default: Value | None = None) -> Property:
    if not values:
        raise DriverDefinitionError("an enum property needs at least one value")
    chosen = values[0] if default is None else default
    if chosen not in values:
        raise DriverDefinitionError(f"default {chosen!r} is not one of {values!r}")
    return Property(PropertyKind.ENUM, chosen, values=tuple(values))


@dataclass(frozen=True)
class HardwareProfile:
    """A named hardware profile; a property left as None is not described ("opaque")."""

    id: str
    name: str = ""
    cpu: Property | None = None
    memory: Property | None = None
    storage: Property | None = None
    architecture: Property | None = None

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)

    def properties(self) -> dict[str, Property]:
        """The described properties by name, in a fixed order."""
        found = {name: getattr(self, name) for name in PROPERTY_UNITS}
        return {name: prop for name, prop in found.items() if prop is not None}

    @property
    def architecture_label(self) -> str | None:
        prop = self.architecture
        return None if prop is None else str(prop.default)

    def resolve(self, overrides: HardwareOverrides | None) -> HardwareOverrides:
        """Validate ``overrides`` against this profile and return the overrides that differ
        from the defaults (what the instance records). Raises PropertyValidationError naming
        the property, the value and what is allowed."""
        chosen = HardwareOverrides()
        for name, value in (overrides or HardwareOverrides()).items():
            prop = self.properties().get(name)
            if prop is None:
                raise PropertyValidationError(
                    self.id, name, value, "nothing: the profile does not describe it"
                )
            if not prop.allows(value):
                raise PropertyValidationError(self.id, name, value, prop.describe())
            if not _same(value, prop.default):
                setattr(chosen, name, value)
        return chosen


@dataclass
class HardwareOverrides:
    """Overrides of a profile's range and enum properties chosen at create."""

    cpu: float | None = None
    memory: float | None = None
    storage: float | None = None
    architecture: str | None = None

    def items(self) -> list[tuple[str, Value]]:
        found = [(name, getattr(self, name)) for name in PROPERTY_UNITS]
        return [(name, value) for name, value in found if value is not None]

    def __bool__(self) -> bool:
        return bool(self.items())


@dataclass(frozen=True)
class ProfileCatalog:
    """The hardware profiles of a driver, in order; ``default_for`` picks the first that
    matches an image's architecture, as Deltacloud did."""

    profiles: tuple[HardwareProfile, ...] = field(default_factory=tuple)

    def get(self, profile_id: str) -> HardwareProfile | None:
        return next((p for p in self.profiles if p.id == profile_id), None)

    def default_for(self, architecture: str | None) -> HardwareProfile | None:
        for profile in self.profiles:
            label = profile.architecture_label
            if architecture is None or label is None or label == architecture:
                return profile
        return None
