"""The one error tree of dolite: every error dolite raises is a :class:`dolite.Error`.

The PEP 249 classes are the trunk, and each also subclasses the matching :mod:`sqlite3`
exception, so code written for sqlite3 (``except sqlite3.OperationalError``, sqlite-utils,
SQLAlchemy's SQLite dialects) catches dolite's errors too. dolite's own errors hang under
the PEP 249 class that says what the caller can do about them: a :class:`Conflict` is an
:class:`OperationalError` (retry), a :class:`CorruptChunk` a :class:`DatabaseError`.

Every class carries the stable ``code`` the HTTP API sends as ``{"error": {"code",
"message"}}`` and the ``http_status`` it is sent with. These class attributes are the only
table of codes and statuses: the server answers from them, and the HTTP client, the HTTP
DB-API driver and the Durable Object backend rebuild errors from a received code with
:func:`error_from_code`. A code belongs to exactly one class; subclasses that do not set
``code`` (outside this module) inherit their parent's.
"""

from __future__ import annotations

import sqlite3


class Warning(sqlite3.Warning):  # noqa: A001 - the PEP 249 name
    """PEP 249 warning (dolite raises none; here for completeness)."""

    code, http_status = "warning", 400


class Error(sqlite3.Error):
    """Base class of every error dolite raises.

    ``code`` and ``http_status`` come from the class; an error rebuilt from a code this
    version does not know keeps the received code and status on the instance instead.
    """

    code, http_status = "error", 400

    def __init__(self, *args, code: str | None = None, http_status: int | None = None):
        super().__init__(*args)
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status

    @property
    def message(self) -> str:
        return str(self)


DoliteError = Error
"""Deprecated: the old name of :class:`Error` (now also the root of the SQL errors)."""


class InterfaceError(Error, sqlite3.InterfaceError):
    code = "interface_error"


class DatabaseError(Error, sqlite3.DatabaseError):
    code = "database_error"


class DataError(DatabaseError, sqlite3.DataError):
    code = "data_error"


class OperationalError(DatabaseError, sqlite3.OperationalError):
    code = "sql_error"


class IntegrityError(DatabaseError, sqlite3.IntegrityError):
    code = "constraint"


class InternalError(DatabaseError, sqlite3.InternalError):
    code, http_status = "internal", 500


class ProgrammingError(DatabaseError, sqlite3.ProgrammingError):
    code = "bad_statement"


class NotSupportedError(DatabaseError, sqlite3.NotSupportedError):
    code = "not_supported"


# -- storage and the page store -------------------------------------------------------------


class Conflict(OperationalError):
    """A compare-and-set failed: someone else committed or holds the write lease (retry)."""

    code, http_status = "conflict", 409


class LeaseHeld(Conflict):
    """Another live writer holds the database's write lease (retry later)."""

    code, http_status = "lease_held", 503


class SnapshotExpired(OperationalError):
    """A version older than the retention window was asked for and is gone."""

    code, http_status = "snapshot_expired", 409


class DatabaseNotFound(OperationalError, LookupError):
    """The named database does not exist in the store."""

    code, http_status = "database_not_found", 404


class StorageError(OperationalError):
    """The storage backend failed or could not be reached."""

    code, http_status = "storage_unavailable", 503


class StorageFull(StorageError):
    """The store has no room left (ENOSPC, or the LMDB map is full). Nothing was changed;
    reads keep working; freeing space (``dolite gc``, ``dolite rm``) makes writes work again."""

    code, http_status = "storage_full", 507


class CorruptChunk(DatabaseError):
    """A stored chunk failed its checksum or does not belong where it was found."""

    code, http_status = "corrupt", 500


class LimitExceeded(DataError, ValueError):
    """A key, value, batch or request body is larger than allowed."""

    code, http_status = "limit_exceeded", 413


class PayloadTooLarge(LimitExceeded):
    """A request body over the Durable Object Worker's cap."""

    code = "payload_too_large"


class InvalidURL(InterfaceError, ValueError):
    """A storage URL that names no known backend or is malformed."""

    code = "invalid_url"


class InvalidName(ProgrammingError, ValueError):
    """A database name that is empty, too long or has forbidden characters."""

    code = "invalid_name"


class WireError(InterfaceError, ValueError):
    """A request body or value that does not follow the wire format (:mod:`dolite.remote.wire`)."""

    code = "bad_value"


class NetworkError(OperationalError):
    """The HTTP client could not reach the server or got no answer (never sent by a server)."""

    code, http_status = "network_error", 503


# -- refusals of one request by the service ---------------------------------------------------


class RequestError(Error):
    """Base class of the service's refusals of one request; ``headers`` go into the reply.

    ``RequestError(status, code, message)`` (the older form) builds the error of the class
    that owns ``code``, and refuses a status that differs from that class's.
    """

    code = "request_error"

    def __new__(cls, *args, **kwargs):
        if cls is RequestError and len(args) == 3:
            cls = _request_class(*args[:2])
        return super().__new__(cls, *args)

    def __init__(self, *args, headers: dict | None = None, **kwargs):
        if len(args) == 3 and isinstance(args[0], int):
            args = args[2:]
        super().__init__(*args, **kwargs)
        self.headers = dict(headers or {})


class BadRequest(RequestError, ProgrammingError):
    code = "bad_request"


class BadJSON(BadRequest):
    code = "bad_json"


class MultipleStatements(RequestError, ProgrammingError):
    code = "multiple_statements"


class EmptyStatement(RequestError, ProgrammingError):
    code = "empty_statement"


class TransactionControl(RequestError, ProgrammingError):
    code = "transaction_control"


class NotSQLite(RequestError, DatabaseError):
    code = "not_sqlite"


class TimeLimit(RequestError, OperationalError):
    code = "time_limit"


class Unauthorized(RequestError, OperationalError):
    code, http_status = "unauthorized", 401


class Forbidden(RequestError, ProgrammingError):
    code, http_status = "forbidden", 403


class SQLNotAllowed(Forbidden):
    code = "sql_not_allowed"


class NotFound(RequestError, InterfaceError):
    code, http_status = "not_found", 404


class MethodNotAllowed(RequestError, InterfaceError):
    code, http_status = "method_not_allowed", 405


class SessionNotFound(RequestError, OperationalError):
    code, http_status = "session_not_found", 404


class AlreadyExists(RequestError, OperationalError):
    code, http_status = "already_exists", 409


class SessionLost(RequestError, Conflict):
    code, http_status = "session_lost", 409


class BodyTooLarge(RequestError, LimitExceeded):
    code = "body_too_large"


class ResultTooLarge(RequestError, DataError):
    code, http_status = "result_too_large", 413


class SessionExpired(RequestError, OperationalError):
    code, http_status = "session_expired", 409


class TooManySessions(RequestError, OperationalError):
    code, http_status = "too_many_sessions", 429


class ResourceLimit(RequestError, OperationalError):
    code = "resource_limit"


class TooManyRequests(RequestError, OperationalError):
    """A token sent more requests at once than it may run and queue."""

    code, http_status = "too_many_requests", 429


class HeaderTimeout(RequestError, OperationalError):
    code, http_status = "header_timeout", 408


class BodyTimedOut(RequestError, OperationalError):
    """The request body arrived too slowly."""

    code, http_status = "body_timeout", 408


class TooManyConnections(RequestError, OperationalError):
    code, http_status = "too_many_connections", 503


class Busy(RequestError, OperationalError):
    code, http_status = "busy", 503


# -- the table --------------------------------------------------------------------------------


def _classes(root: type[Error]) -> list[type[Error]]:
    out, todo = [], [root]
    while todo:
        cls = todo.pop(0)
        if cls not in out:
            out.append(cls)
            todo.extend(cls.__subclasses__())
    return out


TABLE: dict[str, type[Error]] = {
    cls.code: cls for cls in [Warning, *_classes(Error)] if cls.__module__ == __name__
}
"""code -> the class that owns it: every class defined in this module (and nothing else)."""


def error_class(code: str) -> type[Error] | None:
    """The class that owns ``code``, or None for a code this version does not know."""
    return TABLE.get(code)


def error_from_code(code: str, message: str, status: int | None = None) -> Error:
    """The error for a ``(code, message)`` received over a wire. A code this version does
    not know becomes an :class:`OperationalError` that keeps the code and status."""
    cls = error_class(code)
    if cls is None or not issubclass(cls, Error):
        return OperationalError(message, code=code, http_status=status or 500)
    return cls(message)


def _request_class(status: int, code: str) -> type[RequestError]:
    cls = error_class(code)
    if cls is None or not issubclass(cls, RequestError) or cls.http_status != status:
        raise ValueError(f"no request error with code {code!r} and status {status}")
    return cls
