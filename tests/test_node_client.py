"""The Node.js client (clients/node, built from the same protos at run time) passes its own
test suite (node --test) against a live server: list images, create an instance, watch it
run, stop and delete it. Never skipped: `make setup` installs node and its packages."""

from __future__ import annotations

from pathlib import Path

from conftest import ServerProcess
from node_suite import passes_against

NODE_CLIENT = Path(__file__).resolve().parent.parent / "clients" / "node"


def test_node_client_suite_passes_against_a_live_server(fresh_server: ServerProcess) -> None:
    # Four tests against the live server (one an upload and download of 3 MiB, one the
    # ErrorInfo of a failure), fourteen of watch()'s resume logic (thirteen on fake streams,
    # one the encoding check of a real client), two of what util.inspect and JSON.stringify
    # show of a client (no credentials), two of deadlines (unary calls, uploads) against a
    # server that never answers.
    passes_against(NODE_CLIENT, fresh_server, NODE_CLIENT / "node_modules" / ".installed", 22)
