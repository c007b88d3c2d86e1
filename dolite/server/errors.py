"""Every error the service returns is JSON ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
import logging

from starlette.responses import JSONResponse

from dolite.sql import dbapi
from dolite.errors import (
    Conflict,
    CorruptChunk,
    DatabaseNotFound,
    DoliteError,
    InvalidName,
    LeaseHeld,
    LimitExceeded,
    SnapshotExpired,
    StorageError,
)
from dolite.server.objects.errors import RequestError
from dolite.remote.wire import WireError

log = logging.getLogger("dolite.server")


class JSON(JSONResponse):
    """JSON that is always valid and ASCII (lone surrogates escaped, no NaN)."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSON:
    return JSON({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


_TABLE: list[tuple[type, int, str]] = [
    (InvalidName, 400, "invalid_name"),
    (DatabaseNotFound, 404, "database_not_found"),
    (LeaseHeld, 503, "lease_held"),
    (Conflict, 409, "conflict"),
    (SnapshotExpired, 409, "snapshot_expired"),
    (LimitExceeded, 400, "limit_exceeded"),
    (CorruptChunk, 500, "corrupt"),
    (StorageError, 503, "storage_unavailable"),
    (WireError, 400, "bad_request"),
    (dbapi.IntegrityError, 400, "constraint"),
    (dbapi.Error, 400, "sql_error"),
    (DoliteError, 400, "bad_request"),
]


def from_exception(exc: BaseException) -> JSON:
    """The JSON error response for ``exc``."""
    if isinstance(exc, RequestError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    for kind, status, code in _TABLE:
        if isinstance(exc, kind):
            if status >= 500:
                log.warning("%s: %s", code, exc)
            headers = {"Retry-After": "1"} if status == 503 else None
            message = str(exc)
            if isinstance(exc, LeaseHeld):
                message += ": another dolite process is serving this database; retry later"
            return error_response(status, code, message, headers)
    log.error("internal error", exc_info=exc)
    return error_response(500, "internal", f"internal error: {type(exc).__name__}")
