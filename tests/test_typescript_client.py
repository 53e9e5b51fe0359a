"""The JavaScript/TypeScript client (clients/typescript: stubs generated ahead of time from
protos/ with protoc-gen-es, calls over Connect's gRPC transport) passes its own test suite
(node --test) against a live server: lists, an instance's life on the watch stream, errors
with their ErrorInfo, and a strict TypeScript compile of code using the generated types.
Never skipped: `make setup` installs its packages and generates the stubs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ServerProcess

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "typescript"


def test_typescript_client_suite_passes_against_a_live_server(
    fresh_server: ServerProcess,
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node.js 20+ is a setup requirement)")
    if not (CLIENT / "gen" / ".generated").is_file():
        pytest.fail("the TypeScript client's stubs are not generated: run `make setup`")
    env = {**os.environ, "DELTACLOUD_TARGET": fresh_server.target}
    result = subprocess.run(
        [node, "--test"], cwd=CLIENT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every test ran and passed: three against the live server, one type check.
    assert "# pass 4" in result.stdout and "# fail 0" in result.stdout, result.stdout
