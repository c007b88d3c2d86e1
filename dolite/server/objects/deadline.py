"""The deadline of the request being served, visible to the host's worker threads.

The HTTP layer sets it when a request arrives (``--request-timeout``); the host waits for a
busy database at most until then, and the runner interrupts a statement that reaches it,
so a request holds a worker for at most that long however many statements it sends.
The host runs work in a copy of the caller's context, which carries the variable.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

_DEADLINE: ContextVar[float] = ContextVar("dolite_request_deadline", default=float("inf"))


def deadline() -> float:
    """``time.monotonic()`` value the current request must finish by (inf if none)."""
    return _DEADLINE.get()


def remaining() -> float:
    return deadline() - time.monotonic()


@contextlib.contextmanager
def request_deadline(seconds: float) -> Iterator[float]:
    """Give the current request ``seconds`` from now."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield _DEADLINE.get()
    finally:
        _DEADLINE.reset(token)
