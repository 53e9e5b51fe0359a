"""The distribution ships every package of the source tree: an editable install would hide
a package missing from pyproject.toml, a wheel would not."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_python_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *relative.parts]))
    assert found == listed


def test_console_script_and_builtin_driver_entry_points_resolve() -> None:
    from importlib.metadata import entry_points

    scripts = {ep.name: ep for ep in entry_points(group="console_scripts")}
    assert scripts["deltacloud-server"].load().__module__ == "deltacloud.server.main"
    drivers = {ep.name: ep for ep in entry_points(group="deltacloud.drivers")}
    assert drivers["mock"].load().name == "mock"
