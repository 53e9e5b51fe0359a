"""Secret keys the server makes once and keeps in its data directory (the page-token key,
the scope key). Made whole or not at all: written to a file of their own, flushed to disk,
then linked into place, so a crash never leaves an empty or partial key, and of two
servers starting at once one makes it and the other reads it."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

#: The fewest bytes a usable key has.
MIN_KEY_BYTES = 16


def load_or_create(path: Path, what: str) -> bytes:
    """The key in ``path``, made (32 random bytes, mode 0600) if there is none; ValueError
    naming the file when it holds too few bytes to be a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = _create(path)
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"{path} ({what}) holds {len(key)} bytes, too few to be a key; delete it to make "
            "a new one"
        )
    return key


def _create(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(partial, path)  # fails if another server made it meanwhile
        except FileExistsError:
            return path.read_bytes()
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return key
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()
