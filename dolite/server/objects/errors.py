"""Errors the object host raises for a request: an HTTP status, a stable code, a message."""

from __future__ import annotations

from dolite.errors import DoliteError


class RequestError(DoliteError):
    """A request the host refuses or could not complete. Carries what the HTTP layer
    needs for ``{"error": {"code", "message"}}``; the database is left as it was."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(code: str, message: str) -> RequestError:
    return RequestError(400, code, message)
