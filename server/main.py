"""Entry point of the ``deltacloud-server`` console script."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from . import config as config_module
from . import logs
from .app import serve


def main(argv: Sequence[str] | None = None) -> int:
    config = config_module.load(argv)
    logs.configure(config.log_level)
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # start-up failures: one clear line, no traceback
        print(f"deltacloud-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
