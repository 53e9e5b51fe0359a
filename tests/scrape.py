"""Scraping the server's /metrics in tests: the text format parsed as a scraper would."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable

from deltacloud.drivers.conformance import ServerProcess

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Series:
    """The samples of a text exposition, checking its shape as a scraper would: every
    sample's family has HELP and TYPE lines before it."""
    typed: set[str] = set()
    series: Series = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, line
        name, labels, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"no TYPE before {line}"
        key = (name, frozenset(LABEL.findall(labels or "")))
        assert key not in series, f"duplicate sample {line}"
        series[key] = float(value)
    return series


def value(series: Series, name: str, **labels: str) -> float:
    """The sample of ``name`` whose labels include ``labels`` (0 when there is none: a
    counter not incremented yet)."""
    found = [v for (n, ls), v in series.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


def metrics_address(server: ServerProcess) -> str:
    for line in server.log().splitlines():
        if line.startswith("{") and json.loads(line).get("message") == "serving":
            return str(json.loads(line)["metrics"])
    raise AssertionError(f"no serving line:\n{server.log()}")


def scrape(address: str, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(response.read().decode())


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)
