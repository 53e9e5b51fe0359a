"""Run ``mypy --strict`` on the deltacloud.server, deltacloud.drivers and deltacloud.client
packages.

The packages live in server/, drivers/, clients/python/deltacloud_client/ and
gen/deltacloud/v1/ and are mapped to their import
names by setuptools' editable-install finder, which mypy cannot follow (it runs no import
hooks, and no mypy option maps a folder to a package of another name). So this script lays a
tree of symlinks ``deltacloud/{server,drivers,client,v1}`` -> the real folders, puts it on mypy's
search path and checks the three packages with the settings of [tool.mypy] in pyproject.toml.

The tree sits at a fixed place inside .mypy_cache/ rather than in a fresh temporary folder:
mypy's cache records module paths, and a new path on every run would defeat it. Extra
arguments are passed to mypy; the exit status is mypy's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "server": ROOT / "server",
    "drivers": ROOT / "drivers",
    "client": ROOT / "clients" / "python" / "deltacloud_client",
    "v1": ROOT / "gen" / "deltacloud" / "v1",
}
CHECKED = ("deltacloud.server", "deltacloud.drivers", "deltacloud.client")
TREE = ROOT / ".mypy_cache" / "symlink-tree"


def lay_tree() -> Path:
    """Make TREE/deltacloud/<name> -> the real folder for each package; return TREE."""
    namespace = TREE / "deltacloud"
    namespace.mkdir(parents=True, exist_ok=True)
    for name, target in PACKAGES.items():
        link = namespace / name
        if link.is_symlink() and link.readlink() == target:
            continue
        # Swap the link in atomically, so a concurrent run never sees it missing.
        staging = namespace / f".{name}.{os.getpid()}"
        staging.symlink_to(target, target_is_directory=True)
        os.replace(staging, link)
    return TREE


def main(argv: list[str]) -> int:
    tree = lay_tree()
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    for package in CHECKED:
        command += ["-p", package]
    env = {**os.environ, "MYPYPATH": str(tree)}
    result = subprocess.run(
        [*command, *argv], cwd=ROOT, env=env, check=False, capture_output=True, text=True
    )
    # Name the real files, not their paths through the symlinks.
    for name, target in PACKAGES.items():
        link = tree / "deltacloud" / name
        real = f"{target.relative_to(ROOT)}{os.sep}"
        for fake in (f"{link}{os.sep}", f"{link.relative_to(ROOT)}{os.sep}"):
            result.stdout = result.stdout.replace(fake, real)
            result.stderr = result.stderr.replace(fake, real)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
