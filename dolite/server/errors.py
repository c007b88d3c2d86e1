"""Every error the service returns is JSON ``{"error": {"code", "message"}}``, its code and
status those of the error's class in :mod:`dolite.errors` (the one table)."""

from __future__ import annotations

import json
import logging

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from dolite.errors import Error, InternalError, LeaseHeld, MethodNotAllowed, NotFound, RequestError

log = logging.getLogger("dolite.server")

_ROUTING = (NotFound, MethodNotAllowed)  # what Starlette's router refuses with an HTTPException


class JSON(JSONResponse):
    """JSON that is always valid and ASCII (lone surrogates escaped, no NaN)."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSON:
    return JSON({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def from_exception(exc: BaseException) -> JSON:
    """The JSON error response for ``exc``: a dolite error as its class says, anything
    else (a bug) as 500 ``internal`` without details."""
    if isinstance(exc, HTTPException):
        return from_http_exception(exc)
    if not isinstance(exc, Error):
        log.error("internal error", exc_info=exc)
        return error_response(InternalError.http_status, InternalError.code,
                              f"internal error: {type(exc).__name__}")
    status, message = exc.http_status, str(exc)
    if status >= 500:
        log.warning("%s: %s", exc.code, exc)
    if isinstance(exc, LeaseHeld):
        message += ": another dolite process is serving this database; retry later"
    headers = {"Retry-After": "1"} if status == 503 else {}
    if isinstance(exc, RequestError):
        headers.update(exc.headers)
    return error_response(status, exc.code, message, headers or None)


def from_http_exception(exc: HTTPException) -> JSON:
    """Starlette's own refusals (no such route, wrong method) in the same shape."""
    kind = next((k for k in _ROUTING if k.http_status == exc.status_code), None)
    code = kind.code if kind else "http_error"
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))
