"""Torture tests: bounded by default (``make test``); ``DOLITE_TORTURE=long`` (``make
torture``) runs the long forms and records a summary for docs/RELIABILITY.md."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

LONG = os.environ.get("DOLITE_TORTURE") == "long"
RESULTS = os.environ.get("DOLITE_TORTURE_RESULTS")  # JSON file the summary goes to
_lock = threading.Lock()


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
