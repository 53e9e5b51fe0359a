"""The Node.js client (clients/node, built from the same protos at run time) passes its own
test suite (node --test) against a live server: list images, create an instance, watch it
run, stop and delete it. Never skipped: `make setup` installs node and its packages."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ServerProcess

NODE_CLIENT = Path(__file__).resolve().parent.parent / "clients" / "node"


def test_node_client_suite_passes_against_a_live_server(fresh_server: ServerProcess) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node.js 20+ is a setup requirement)")
    if not (NODE_CLIENT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("the Node client's packages are missing: run `make setup`")
    env = {**os.environ, "DELTACLOUD_TARGET": fresh_server.target}
    result = subprocess.run(
        [node, "--test"], cwd=NODE_CLIENT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every node test ran and passed: three against the live server, five of watch()'s
    # resume logic on fake streams.
    assert "# pass 8" in result.stdout and "# fail 0" in result.stdout, result.stdout
