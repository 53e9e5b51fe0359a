"""Running a client's own `node --test` suite against a live server (the Node.js and the
TypeScript clients): never skipped, since `make setup` installs node's packages."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deltacloud.drivers.conformance import ServerProcess


def passes_against(
    directory: Path, server: ServerProcess, installed: Path, tests: int, timeout: float = 180
) -> None:
    """``node --test`` in ``directory`` with DELTACLOUD_TARGET = ``server``: every one of
    ``tests`` ran and passed. ``installed``: a file `make setup` leaves once ready."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node.js 20+ is a setup requirement)")
    if not installed.exists():
        pytest.fail(f"{installed} is missing: run `make setup`")
    env = {**os.environ, "DELTACLOUD_TARGET": server.target}
    result = subprocess.run(
        [node, "--test"], cwd=directory, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"# pass {tests}" in result.stdout and "# fail 0" in result.stdout, result.stdout
