"""Torture tests: bounded by default (``make test``); ``DOLITE_TORTURE=long`` (``make
torture``) runs the long forms and records a summary for docs/RELIABILITY.md."""

from __future__ import annotations

import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import pytest

LONG = os.environ.get("DOLITE_TORTURE") == "long"
# JSON file the figures go to; under make torture, a temporary one rendered into the doc
RESULTS = os.environ.get("DOLITE_TORTURE_RESULTS") or (
    os.path.join(tempfile.mkdtemp(prefix="dolite-torture-"), "results.json") if LONG else None)
RELIABILITY = Path(__file__).resolve().parents[2] / "docs" / "RELIABILITY.md"
START, END = "<!-- torture-results:start -->", "<!-- torture-results:end -->"
_lock = threading.Lock()
_started = time.time()


def scale(bounded: int, long: int) -> int:
    """How many trials/examples to run: ``long`` under ``make torture``."""
    return long if LONG else bounded


@pytest.fixture
def record():
    """``record(test, **figures)``: add one test's figures to the results file."""

    def _record(test: str, **figures) -> None:
        if not RESULTS:
            return
        with _lock:
            path = Path(RESULTS)
            data = json.loads(path.read_text()) if path.exists() else {}
            data[test] = figures
            path.write_text(json.dumps(data, indent=2, sort_keys=True))

    return _record


def render(results: dict, exitstatus: int, seconds: float) -> str:
    """The results section of docs/RELIABILITY.md."""
    lines = [START, "",
             f"Last `make torture`: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{seconds / 60:.1f} min, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
             f"**{'all passed' if exitstatus == 0 else f'FAILED (pytest exit status {exitstatus})'}**.",
             "", "| test | figures |", "|---|---|"]
    for test, figures in sorted(results.items()):
        shown = ", ".join(f"{k}: {json.dumps(v) if isinstance(v, dict) else v}" for k, v in sorted(figures.items()))
        lines.append(f"| `{test}` | {shown} |")
    lines += ["", END]
    return "\n".join(lines)


def pytest_sessionfinish(session, exitstatus):
    if not (LONG and RESULTS and Path(RESULTS).exists() and RELIABILITY.exists()):
        return
    results = json.loads(Path(RESULTS).read_text())
    doc = RELIABILITY.read_text()
    if START in doc and END in doc:
        head, rest = doc.split(START, 1)
        doc = head + render(results, int(exitstatus), time.time() - _started) + rest.split(END, 1)[1]
        RELIABILITY.write_text(doc)


def pytest_collection_modifyitems(config, items):
    """The long forms run for many minutes: lift pytest-timeout's 300 s for them."""
    if LONG:
        for item in items:
            if "tests/torture/" in str(item.fspath).replace("\\", "/"):
                item.add_marker(pytest.mark.timeout(4 * 3600))
