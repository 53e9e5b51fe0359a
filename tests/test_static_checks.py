"""The style guide's static checks, as tests: ruff on our code and mypy --strict on the
server and driver packages (run through scripts/typecheck.py, as `make typecheck` does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ruff_finds_nothing_to_fix() -> None:
    result = _run(
        "-m",
        "ruff",
        "check",
        "server",
        "drivers",
        "clients",
        "tests",
        "scripts",
        "examples",
        "bench",
    )
    assert result.returncode == 0, f"ruff check failed:\n{result.stdout}{result.stderr}"


def test_server_and_drivers_pass_mypy_strict() -> None:
    result = _run(str(ROOT / "scripts" / "typecheck.py"))
    assert result.returncode == 0, (
        f"mypy --strict failed (run `make typecheck`):\n{result.stdout}{result.stderr}"
    )
