"""docs/writing-a-driver.md is executed: its ```python blocks run in order in one
namespace (an error names the block's line in the doc), its entry-point block matches the
example package's pyproject.toml, and the driver it builds declares what the packaged Foo
driver (examples/foo-driver) declares."""

from __future__ import annotations

import re
import tomllib
import traceback
from pathlib import Path
from typing import Any

import pytest

from deltacloud.drivers import BaseDriver, HardwareProfile

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "writing-a-driver.md"
FOO_PYPROJECT = ROOT / "examples" / "foo-driver" / "pyproject.toml"
FENCE = re.compile(r"^( *)```(\w*)\s*$")


def blocks(language: str) -> list[tuple[int, str]]:
    """The fenced blocks of ``language`` in the doc: (line of the first code line, code),
    dedented by the fence's indentation."""
    found: list[tuple[int, str]] = []
    lines = DOC.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None or not opening.group(2):
            i += 1
            continue
        indent, lang = len(opening.group(1)), opening.group(2)
        start = i + 1
        end = start
        while not re.match(r"^ *```\s*$", lines[end]):
            end += 1
        if lang == language:
            code = "\n".join(line[indent:] for line in lines[start:end])
            found.append((start + 1, code))
        i = end + 1
    return found


@pytest.fixture(scope="module")
def namespace() -> dict[str, Any]:
    """Every python block of the doc, executed in order in one namespace."""
    ns: dict[str, Any] = {"__name__": "writing_a_driver_doc"}
    python = blocks("python")
    assert len(python) >= 10, "the doc lost its code blocks"
    for line, code in python:
        # Pad so tracebacks carry the doc's own line numbers.
        compiled = compile("\n" * (line - 1) + code, str(DOC), "exec")
        try:
            exec(compiled, ns)
        except Exception:
            pytest.fail(f"the python block at {DOC.name}:{line} failed:\n{traceback.format_exc()}")
    return ns


def test_every_python_block_runs(namespace: dict[str, Any]) -> None:
    assert issubclass(namespace["FooDriver"], BaseDriver)


def test_the_entry_point_block_matches_the_example_package() -> None:
    toml_blocks = blocks("toml")
    assert len(toml_blocks) == 1
    documented = tomllib.loads(toml_blocks[0][1])
    packaged = tomllib.loads(FOO_PYPROJECT.read_text(encoding="utf-8"))
    group = "deltacloud.drivers"
    assert documented["project"]["entry-points"][group] == {"foo": "deltacloud_foo:FooDriver"}
    assert (
        packaged["project"]["entry-points"][group] == documented["project"]["entry-points"][group]
    )


def _profiles(profiles: Any) -> list[HardwareProfile]:
    return list(profiles)


def test_the_doc_driver_declares_what_the_package_declares(namespace: dict[str, Any]) -> None:
    from deltacloud_foo import FooDriver as Packaged

    doc = namespace["FooDriver"]
    assert (doc.name, doc.description) == (Packaged.name, Packaged.description)
    assert doc.collections == Packaged.collections
    assert dict(doc.features) == dict(Packaged.features)
    assert _profiles(doc.hardware_profiles) == _profiles(Packaged.hardware_profiles)
    assert doc.instance_states.transitions == Packaged.instance_states.transitions
    assert doc.providers() == Packaged.providers()
    for collection in doc.collections:
        assert doc.operations(collection) == Packaged.operations(collection), collection
    assert not doc.supports("instances", "reboot")


def test_the_doc_driver_passes_the_registry_checks(namespace: dict[str, Any]) -> None:
    from deltacloud.drivers import DriverRegistry

    assert DriverRegistry(extra={"foo": namespace["FooDriver"]}).load("foo").name == "foo"


# ---- the SDK serves class-level profiles --------------------------------------------------


def test_class_level_hardware_profiles_are_enough() -> None:
    from deltacloud.drivers import fixed

    class ProfilesOnly(BaseDriver):
        name = "profiles-only"
        collections = frozenset({"hardware_profiles"})
        hardware_profiles = (HardwareProfile("tiny", cpu=fixed(1)),)

    assert ProfilesOnly.supports("hardware_profiles", "list")
