"""The conformance kit's stream watcher, for the server's own tests."""

from deltacloud.drivers.conformance.watching import Response, Watcher, transitions

__all__ = ["Response", "Watcher", "transitions"]
