"""The JavaScript/TypeScript client (clients/typescript: stubs generated ahead of time from
protos/ with protoc-gen-es, calls over Connect's gRPC transport) passes its own test suite
(node --test) against a live server: lists, an instance's life on the watch stream, errors
with their ErrorInfo; watch()'s resume logic; and a strict TypeScript compile of code using
the generated types.
Never skipped: `make setup` installs its packages and generates the stubs."""

from __future__ import annotations

from pathlib import Path

from conftest import ServerProcess
from node_suite import passes_against

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "typescript"


def test_typescript_client_suite_passes_against_a_live_server(
    fresh_server: ServerProcess,
) -> None:
    # Four tests against a live server (one against a silent one), eight of watch()'s
    # resume logic on fake streams, one type check.
    passes_against(CLIENT, fresh_server, CLIENT / "gen" / ".generated", 13)
