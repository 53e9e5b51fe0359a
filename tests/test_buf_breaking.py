"""The v1 contract stays compatible with its committed baseline image
(protos/baseline/deltacloud-v1.binpb; see protos/baseline/README.md for refreshing it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "node_modules" / ".bin" / "buf"
BASELINE = ROOT / "protos" / "baseline" / "deltacloud-v1.binpb"


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if not BUF.exists():
        pytest.fail("buf is not installed: run `make setup` (npm ci)")
    return subprocess.run([str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_protos_have_no_breaking_change_against_the_baseline() -> None:
    result = buf("breaking", "protos", "--against", str(BASELINE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_catches_a_renumbered_field(tmp_path: Path) -> None:
    """The check has teeth: a copy of the protos with a field renumbered fails it."""
    copy = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", copy, ignore=shutil.ignore_patterns("baseline"))
    proto = copy / "deltacloud" / "v1" / "realm.proto"
    text = proto.read_text()
    assert "string name = 2;" in text
    proto.write_text(text.replace("string name = 2;", "string name = 12;"))
    result = buf("breaking", str(copy), "--against", str(BASELINE))
    assert result.returncode != 0
    assert "name" in result.stdout + result.stderr
