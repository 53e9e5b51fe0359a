#!/usr/bin/env python3
"""Regenerate the committed Python code in gen/ from protos/deltacloud/v1/*.proto.

Usage:
    python scripts/genproto.py          # (re)write gen/deltacloud/v1/
    python scripts/genproto.py --check  # exit 1, naming stale files, if gen/ is out of date

Runs grpc_tools.protoc with ``-I protos`` so generated modules import each other as
``from deltacloud.v1 import common_pb2``; pyproject maps the ``deltacloud.v1`` package onto
gen/deltacloud/v1.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = Path("deltacloud") / "v1"
GEN_ROOT = ROOT / "gen"

INIT_TEXT = '"""Generated protobuf and gRPC code for the deltacloud.v1 API (see protos/)."""\n'


#: The contract's descriptors with their comments, served by reflection.
DESCRIPTOR_SET = "descriptor_set.binpb"


def _protoc_include() -> str:
    """The well-known types (google/protobuf/*.proto) bundled with grpc_tools."""
    return str(resources.files("grpc_tools") / "_proto")


def generate(out_root: Path) -> list[Path]:
    """Generate code for every proto of the package under out_root; return files written."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    protos = sorted((PROTO_ROOT / PACKAGE).glob("*.proto"))
    if not protos:
        sys.exit(f"genproto: no .proto files under {PROTO_ROOT / PACKAGE}")
    out_dir = out_root / PACKAGE
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{_protoc_include()}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        # With comments, for server reflection: grpcurl describe shows the documentation.
        f"--descriptor_set_out={out_dir / DESCRIPTOR_SET}",
        "--include_source_info",
        "--include_imports",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    # protoc resolves the relative file names against the -I paths, not the cwd.
    code = protoc.main(args)
    if code != 0:
        sys.exit(f"genproto: protoc failed with exit code {code}")
    (out_dir / "__init__.py").write_text(INIT_TEXT, encoding="utf-8")
    (out_dir / "py.typed").write_text("", encoding="utf-8")
    # deltacloud/ is a namespace shared with server/ and drivers/: never give it an
    # __init__.py here.
    return sorted(p for p in out_dir.iterdir() if p.is_file())


def _relative_files(root: Path) -> set[Path]:
    base = root / PACKAGE
    if not base.is_dir():
        return set()
    return {
        p.relative_to(root) for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def check() -> int:
    """Generate into a temporary directory and compare with gen/; return an exit code."""
    with tempfile.TemporaryDirectory(prefix="genproto-") as tmp:
        fresh_root = Path(tmp)
        generate(fresh_root)
        fresh = _relative_files(fresh_root)
        current = _relative_files(GEN_ROOT)
        stale = sorted(
            str(Path("gen") / rel)
            for rel in fresh & current
            if not filecmp.cmp(fresh_root / rel, GEN_ROOT / rel, shallow=False)
        )
        missing = sorted(str(Path("gen") / rel) for rel in fresh - current)
        extra = sorted(str(Path("gen") / rel) for rel in current - fresh)
    if not (stale or missing or extra):
        print("genproto: gen/ is up to date")
        return 0
    for label, files in (("stale", stale), ("missing", missing), ("not generated", extra)):
        for name in files:
            print(f"genproto: {label}: {name}", file=sys.stderr)
    print("genproto: gen/ is out of date; run `python scripts/genproto.py`", file=sys.stderr)
    return 1


def write() -> int:
    """Regenerate gen/deltacloud/v1 from scratch (so removed protos leave no files)."""
    with tempfile.TemporaryDirectory(prefix="genproto-") as tmp:
        fresh_root = Path(tmp)
        files = generate(fresh_root)
        target = GEN_ROOT / PACKAGE
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(fresh_root / PACKAGE, target)
    for f in files:
        print(f"genproto: wrote {Path('gen') / PACKAGE / f.name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 naming the files in gen/ that differ from fresh output",
    )
    args = parser.parse_args(argv)
    return check() if args.check else write()


if __name__ == "__main__":
    sys.exit(main())
