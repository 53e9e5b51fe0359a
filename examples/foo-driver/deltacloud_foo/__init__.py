"""The Deltacloud driver of Foo, an imaginary cloud (see :mod:`deltacloud_foo.driver`).

Registered through the ``deltacloud.drivers`` entry point ``foo`` in pyproject.toml."""

from .driver import FooDriver

__all__ = ["FooDriver"]
