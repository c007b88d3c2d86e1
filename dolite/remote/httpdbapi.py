"""A PEP 249 (DB-API 2.0) driver over the HTTP API, shaped like :mod:`dolite.sql.dbapi`::

    conn = dolite.connect("http://127.0.0.1:8787/shop", token="s3cret")
    conn.execute("INSERT INTO t(v) VALUES (?)", ["x"])   # opens a server-side session
    conn.commit()                                         # durable when this returns

Like sqlite3, DML opens a transaction implicitly (unless ``isolation_level`` is None);
here the transaction is a server-side session that holds the database until commit or
rollback (or until it idles out on the server and is rolled back). Reads outside a
transaction run on their own. ``executemany`` and ``executescript`` send one batch.

Errors are the classes of :mod:`dolite.errors`, rebuilt from the server's ``error.code``:
the class the local driver raises for the same failure (``IntegrityError`` for a
constraint, ``OperationalError`` for bad SQL, ``Conflict``, ``LeaseHeld``, ...); a server
that cannot be reached is a ``NetworkError`` (an ``OperationalError``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

from dolite.errors import AlreadyExists, DatabaseNotFound, SessionExpired, SessionLost, SessionNotFound
from dolite.remote.client import Client, Result, Session
from dolite.sql.pep249 import (
    ConnectionBase,
    CursorBase,
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
    is_dml,
    paramstyle,
    split_statements,
    threadsafety,
)

_SESSION_GONE = (SessionNotFound, SessionLost, SessionExpired)


class Cursor(CursorBase):
    """PEP 249 cursor; results are fetched whole with each execute."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self._rows: Iterator[tuple] = iter(())
        self.description = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    def _set(self, result: Result, dml: bool) -> None:
        self._rows = iter(result.rows)
        self.description = tuple((c, None, None, None, None, None, None) for c in result.columns) or None
        self.rowcount = result.rows_changed if dml else -1
        self.lastrowid = result.last_insert_rowid

    def execute(self, sql: str, parameters: Iterable | dict = ()) -> Cursor:
        dml = is_dml(sql)
        self._set(self.connection._run([(sql, parameters)], dml)[0], dml)
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable) -> Cursor:
        dml = is_dml(sql)
        results = self.connection._run([(sql, p) for p in seq_of_parameters], dml) or []
        self._rows, self.description = iter(()), None
        self.rowcount = sum(r.rows_changed for r in results) if dml else -1
        self.lastrowid = results[-1].last_insert_rowid if results else self.lastrowid
        return self

    def executescript(self, sql: str) -> Cursor:
        self.connection.commit()
        statements = split_statements(sql)
        if statements:
            self.connection._run(statements, False, script=True)
        return self

    def fetchone(self) -> tuple | None:
        return next(self._rows, None)

    def fetchall(self) -> list[tuple]:
        return list(self._rows)

    def close(self) -> None:
        self._rows = iter(())


class Connection(ConnectionBase):
    """PEP 249 connection to one database on a dolite server."""

    def __init__(self, client: Client, name: str, isolation_level: str | None):
        self.client = client
        self.name = name
        self.isolation_level = isolation_level
        self._session: Session | None = None

    @property
    def in_transaction(self) -> bool:
        return self._session is not None

    def _run(self, statements: list, is_dml: bool, script: bool = False) -> list[Result]:
        if self.client is None:
            raise ProgrammingError("the connection is closed")
        try:
            if self._session is None and is_dml and self.isolation_level is not None and not script:
                self._session = self.client.session(self.name)
            if self._session is not None:
                return self._session.batch(statements) if len(statements) != 1 else [self._session.query(*statements[0])]
            if len(statements) == 1:
                return [self.client.query(self.name, *statements[0])]
            return self.client.batch(self.name, statements) if statements else []
        except _SESSION_GONE:
            self._session = None  # the server rolled it back
            raise

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        """Commit the open transaction; durable on the server when this returns."""
        session, self._session = self._session, None
        if session is not None:
            session.commit()

    def rollback(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.rollback()

    def close(self) -> None:
        if self.client is None:
            return
        try:
            self.rollback()
        except Error:
            pass  # closing anyway: the server rolls the session back when it idles out
        self.client.close()
        self.client = None


def split_url(url: str) -> tuple[str, str]:
    """``http://host:port[/prefix]/name`` -> (``http://host:port[/prefix]``, ``name``)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    base_path, _, name = path.rpartition("/")
    if parts.scheme not in ("http", "https") or not parts.netloc or not name:
        raise InterfaceError(f"expected http(s)://HOST:PORT/DATABASE, got {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, base_path, "", "")), name


def connect(url: str, token: str | None = None, *, create: bool = True, isolation_level: str | None = "",
            timeout: float = 60.0) -> Connection:
    """Open database ``DATABASE`` on the server at ``http(s)://HOST:PORT/DATABASE``.

    ``create``: create the database if it is missing (needs an admin token).
    """
    base, name = split_url(url)
    client = Client(base, token=token, timeout=timeout)
    try:
        _ensure_database(client, name, create)
    except BaseException:
        client.close()
        raise
    return Connection(client, name, isolation_level)


def _ensure_database(client: Client, name: str, create: bool) -> None:
    try:
        client.info(name)
    except DatabaseNotFound:
        if not create:
            raise
        try:
            client.create(name)
        except AlreadyExists:
            pass  # created meanwhile by someone else


__all__ = [
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "threadsafety",
]
