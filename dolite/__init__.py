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
    """Open a database: see :func:`dolite.dbapi.connect`."""
    from dolite.dbapi import connect as _connect

    return _connect(*args, **kwargs)
