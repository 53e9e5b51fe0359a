"""Entry point of the ``deltacloud-server`` console script."""

from __future__ import annotations

import os

# gRPC core writes its own lines to stderr, not JSON (a refused TLS handshake is one at
# INFO): errors only, unless the operator asks for more. Set before gRPC is loaded.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import asyncio
import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # Loaded here, not at the top: a Ctrl-C while they load (the first third of a
        # second) ended in a KeyboardInterrupt traceback.
        from . import config as config_module
        from . import logs
        from .app import serve
    except KeyboardInterrupt:
        return 0  # as for a signal at any time: nothing was served
    config = config_module.load(argv)
    logs.configure(config.log_level)
    try:
        abandoned = asyncio.run(serve(config))
    except KeyboardInterrupt:
        abandoned = 0
    except Exception as exc:  # start-up failures: one clear line, no traceback
        # Masked as a log line is: a driver refusing an option quotes it, and an endpoint
        # URL may hold user:password@.
        reason = logs.redact(" ".join(str(exc).split()) or type(exc).__name__)
        print(f"deltacloud-server: {reason}", file=sys.stderr)
        return 1
    if abandoned:
        # Python joins worker threads at exit: a driver call blocked on a silent backend
        # would keep the stopped server alive. Nothing acknowledged is pending (the
        # journal is closed; those calls' clients were answered UNAVAILABLE).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
