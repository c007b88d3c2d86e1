"""The object host's refusals of a request: :class:`dolite.errors.RequestError` and its
subclasses (each carries its code and HTTP status; see :mod:`dolite.errors`)."""

from __future__ import annotations

from dolite.errors import RequestError

__all__ = ["RequestError"]
