"""The ``deltacloud`` command line, in the spirit of Deltacloud's deltacloudc:
``deltacloud <collection> <operation> [options]`` for every collection and operation."""

from __future__ import annotations

from .main import cli, main

__all__ = ["cli", "main"]
