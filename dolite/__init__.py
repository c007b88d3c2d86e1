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
from dolite.sql.pep249 import (  # the DB-API exceptions, as sqlite3 exposes them
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

# sqlite3's module-level surface, from dolite.sql.compat on first use (it needs APSW).
_SQLITE3_NAMES = (
    "Row", "Blob", "Binary", "PrepareProtocol", "sqlite_version", "sqlite_version_info",
    "PARSE_DECLTYPES", "PARSE_COLNAMES", "register_adapter", "register_converter", "adapt",
    "adapters", "converters", "complete_statement", "enable_callback_tracebacks",
    "Connection", "Cursor",
)

__all__ = [
    "Conflict", "CorruptChunk", "DatabaseNotFound", "DoliteError", "InvalidName", "InvalidURL",
    "LeaseHeld", "LimitExceeded", "SnapshotExpired", "StorageError", "open_storage", "connect", "replica",
    "dbapi", "Error", "Warning", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
    "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError",
    "apilevel", "paramstyle", "threadsafety", *_SQLITE3_NAMES,
]


def connect(*args, **kwargs):
    """Open a database: see :func:`dolite.sql.dbapi.connect`; an ``http(s)://HOST:PORT/NAME``
    first argument connects to a server instead (:func:`dolite.remote.httpdbapi.connect`)."""
    if args and isinstance(args[0], str) and args[0].startswith(("http://", "https://")):
        from dolite.remote.httpdbapi import connect as _remote

        return _remote(*args, **kwargs)
    from dolite.sql.dbapi import connect as _connect

    return _connect(*args, **kwargs)


def replica(*args, **kwargs):
    """Open a local replica of a database that reads and writes while the remote is
    unreachable and syncs later: see :func:`dolite.replica.replica` and docs/CONCURRENCY.md."""
    from dolite.replica import replica as _replica

    return _replica(*args, **kwargs)


def open_cluster(*args, **kwargs):
    """Open (or create, with ``shards=N``) a cluster of databases with atomic cross-shard
    transactions: see :func:`dolite.cluster.cluster` and docs/CLUSTERS.md; an
    ``http(s)://HOST:PORT/NAME`` first argument opens one on a server instead
    (:func:`dolite.remote.cluster.connect`)."""
    if args and isinstance(args[0], str) and args[0].startswith(("http://", "https://")):
        from dolite.remote.cluster import connect as _remote

        return _remote(*args, **kwargs)
    from dolite.cluster import cluster as _cluster

    return _cluster(*args, **kwargs)


cluster = open_cluster  # importing dolite.cluster rebinds this name to the (callable) package


def __getattr__(name: str):
    # Imported on first use, so ``import dolite.remote`` works where APSW is not installed.
    if name == "dbapi":
        from dolite.sql import dbapi

        return dbapi
    if name in _SQLITE3_NAMES or name.startswith("SQLITE_"):
        from dolite.sql import compat, compat_connection, dbapi

        for module in (compat, compat_connection, dbapi):
            if hasattr(module, name):
                return getattr(module, name)
        if name in compat.CONSTANTS:
            return compat.CONSTANTS[name]
    raise AttributeError(f"module 'dolite' has no attribute {name!r}")
