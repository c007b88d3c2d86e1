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
from dolite.storage import open_storage

__all__ = [
    "Conflict", "CorruptChunk", "DatabaseNotFound", "DoliteError", "InvalidName", "InvalidURL",
    "LeaseHeld", "LimitExceeded", "SnapshotExpired", "StorageError", "open_storage", "connect",
]


def connect(*args, **kwargs):
    """Open a database: see :func:`dolite.dbapi.connect`; an ``http(s)://HOST:PORT/NAME``
    first argument connects to a server instead (:func:`dolite.client.connect`)."""
    if args and isinstance(args[0], str) and args[0].startswith(("http://", "https://")):
        from dolite.client import connect as _remote

        return _remote(*args, **kwargs)
    from dolite.dbapi import connect as _connect

    return _connect(*args, **kwargs)
