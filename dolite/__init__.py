"""dolite: full SQLite stored in Durable-Object-style key-value storage."""

from dolite.errors import (
    Conflict,
    CorruptChunk,
    DatabaseNotFound,
    DoliteError,
    InvalidName,
    InvalidURL,
    LeaseHeld,
    LimitExceeded,
    SnapshotExpired,
    StorageError,
)
from dolite.pep249 import (  # the DB-API exceptions, as sqlite3 exposes them
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
    apilevel,
    paramstyle,
    threadsafety,
)
from dolite.storage import open_storage
from dolite import dbapi  # noqa: E402,I001 - after the names it re-exports

__all__ = [
    "Conflict", "CorruptChunk", "DatabaseNotFound", "DoliteError", "InvalidName", "InvalidURL",
    "LeaseHeld", "LimitExceeded", "SnapshotExpired", "StorageError", "open_storage", "connect",
    "dbapi", "Error", "Warning", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
    "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError",
    "apilevel", "paramstyle", "threadsafety",
]


def connect(*args, **kwargs):
    """Open a database: see :func:`dolite.dbapi.connect`; an ``http(s)://HOST:PORT/NAME``
    first argument connects to a server instead (:func:`dolite.client.connect`)."""
    if args and isinstance(args[0], str) and args[0].startswith(("http://", "https://")):
        from dolite.client import connect as _remote

        return _remote(*args, **kwargs)
    from dolite.dbapi import connect as _connect

    return _connect(*args, **kwargs)
