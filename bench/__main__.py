"""Run every benchmark, one after the other: ``python -m bench``."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ["bench.unary", "bench.watch_fanout", "bench.resume_storm", "bench.ec2_overhead"]


def main() -> int:
    failed = []
    for module in BENCHMARKS:
        print(f"\n===== {module} =====", flush=True)
        if subprocess.run([sys.executable, "-m", module]).returncode != 0:
            failed.append(module)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
