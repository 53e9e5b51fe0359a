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


def test_the_wheel_carries_every_package_and_its_data_files(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("deltacloud_grpc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "deltacloud/v1/descriptor_set.binpb",  # reflection with the contract's comments
        "deltacloud/v1/instance_pb2.pyi",
        "deltacloud/server/events/hub.py",
        "deltacloud/server/py.typed",
        "deltacloud/drivers/mock/driver.py",
        "deltacloud/drivers/ec2/driver.py",
        "deltacloud/drivers/conformance/suite.py",
        "deltacloud/client/cli/main.py",
        "deltacloud/client/py.typed",
    ):
        assert required in names, required
    assert not any(n.startswith(("server/", "drivers/", "tests/")) for n in names)
