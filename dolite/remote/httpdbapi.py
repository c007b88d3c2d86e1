"""A PEP 249 (DB-API 2.0) driver over the HTTP API, shaped like :mod:`dolite.sql.dbapi`::

    conn = dolite.connect("http://127.0.0.1:8787/shop", token="s3cret")
    conn.execute("INSERT INTO t(v) VALUES (?)", ["x"])   # opens a server-side session
    conn.commit()                                         # durable when this returns

It behaves like the local driver within what the server allows:

- Like sqlite3, DML opens a transaction implicitly (unless ``isolation_level`` is None); here
  the transaction is a server-side session that holds the database until commit or
  rollback (or until it idles out on the server and is rolled back). ``BEGIN``, ``COMMIT``,
  ``END`` and ``ROLLBACK`` sent as SQL open and end that session. ``SAVEPOINT``,
  ``RELEASE`` and ``ROLLBACK TO`` run inside it, each a request of its own (a SAVEPOINT
  outside a transaction begins one, as in SQLite); an older server that refuses them
  makes them a ``NotSupportedError`` (never a silent no-op).
- ``executemany`` and ``executescript`` are cut into batches that fit the server's limits
  (statements per batch, body bytes: ``max_statements``/``max_body``, learnt smaller from a
  413 ``body_too_large``, which the server answers before running anything). Inside a
  transaction all batches run in its session; in autocommit mode each batch is its own
  transaction (sqlite3 commits each row there). A script's own ``BEGIN ... COMMIT`` is
  honoured.
- A result over the server's size limit is paged on one snapshot, and the cursor fetches
  the pages as it is read (:mod:`dolite.remote.paging`).
- ``recursive_triggers`` and ``defer_foreign_keys`` hold on the connection as in sqlite3,
  though the server keeps them for one request or session only: the driver sets them
  again first in each transaction it opens there (:mod:`dolite.remote.pragmas`).
  ``read_uncommitted`` (no effect there: no shared cache) is answered locally. A
  connection pragma the server will not set (``PRAGMA foreign_keys = on``) is accepted
  when the server already runs with that value, otherwise ``NotSupportedError``.

Errors are the classes of :mod:`dolite.errors`, rebuilt from the server's ``error.code``; a
server that cannot be reached is a ``NetworkError`` (an ``OperationalError``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

from dolite.errors import (AlreadyExists, BodyTooLarge, DatabaseNotFound, ResultTooLarge, SessionExpired,
                           SessionLost, SessionNotFound, SQLNotAllowed, TransactionControl, error_from_code)
from dolite.remote import paging, pragmas
from dolite.remote.api import Call, Result, batches, db_path, endpoints, statement, wire_size
from dolite.remote.client import Client, Session
from dolite.remote.pragmas import NOTHING, ConnectionPragmas
from dolite.sql.pep249 import (ConnectionBase, CursorBase, DatabaseError, DataError, Error, IntegrityError,  # noqa: F401
                               InterfaceError, InternalError, NotSupportedError, OperationalError,
                               ProgrammingError, Warning, apilevel, is_dml, paramstyle, split_statements,
                               threadsafety)

_SESSION_GONE = (SessionNotFound, SessionLost, SessionExpired)
_LEAD = r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*"
_END = r"\s*;?\s*\Z"
_TRANSACTION = r"(?:\s+TRANSACTION(?:\s+\w+)?)?"  # SQLite accepts (and ignores) a name after it
_CONTROL = [  # (kind, pattern) of the statements the driver runs itself
    ("begin", re.compile(_LEAD + r"BEGIN(?:\s+(?:DEFERRED|IMMEDIATE|EXCLUSIVE))?" + _TRANSACTION + _END, re.I | re.S)),
    ("commit", re.compile(_LEAD + r"(?:COMMIT|END)" + _TRANSACTION + _END, re.I | re.S)),
    ("rollback", re.compile(_LEAD + r"ROLLBACK" + _TRANSACTION + _END, re.I | re.S)),
    ("savepoint", re.compile(_LEAD + r"SAVEPOINT\b", re.I | re.S)),
    ("release", re.compile(_LEAD + r"(?:RELEASE|ROLLBACK(?:\s+TRANSACTION)?\s+TO)\b", re.I | re.S)),
]
_FIXED_FLAGS = frozenset({"foreign_keys"})  # the server runs with it; a client cannot change it
_BATCH_INDEX = re.compile(r"batch\[(\d+)\]: ")


def control_kind(sql: str) -> str | None:
    """Which transaction-control statement ``sql`` is (None for any other statement)."""
    return next((kind for kind, pattern in _CONTROL if pattern.match(sql)), None)


class Cursor(CursorBase):
    """PEP 249 cursor. A result arrives whole with its execute, except a paged one (see
    :mod:`dolite.remote.paging`), whose pages are fetched as the rows are read."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self._rows: Iterator[tuple] = iter(())
        self.description = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    def _set(self, result: Result, dml: bool, rows: Iterator[tuple] | None = None) -> None:
        self._drop_rows()
        self._rows = iter(result.rows) if rows is None else rows
        self.description = tuple((c, None, None, None, None, None, None) for c in result.columns) or None
        self.rowcount = result.rows_changed if dml else -1
        self.lastrowid = result.last_insert_rowid or self.lastrowid

    def _drop_rows(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()  # ends a paged result's read session

    def execute(self, sql: str, parameters: Iterable | dict = ()) -> Cursor:
        dml = is_dml(sql)
        try:
            self._set(self.connection._statement(sql, parameters, dml), dml)
        except ResultTooLarge as too_large:
            first, rows = self.connection._paged(sql, parameters, too_large)
            self._set(first, False, rows)
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable) -> Cursor:
        dml = is_dml(sql)
        results = self.connection._batch([statement((sql, p)) for p in seq_of_parameters], dml)
        self._set(NOTHING, dml)
        self.rowcount = sum(r.rows_changed for r in results) if dml else -1
        self.lastrowid = results[-1].last_insert_rowid if results else self.lastrowid
        return self

    def executescript(self, sql: str) -> Cursor:
        """Commit any open transaction, then run ``sql``: runs of plain statements as
        batches, its own BEGIN/COMMIT/SAVEPOINT and pragmas as in :meth:`execute`."""
        self.connection.commit()
        self._set(NOTHING, False)
        self.connection._script(split_statements(sql))
        return self

    def fetchone(self) -> tuple | None:
        return next(self._rows, None)

    def fetchall(self) -> list[tuple]:
        return list(self._rows)

    def close(self) -> None:
        self._drop_rows()
        self._rows = iter(())


class Connection(ConnectionBase):
    """PEP 249 connection to one database on a dolite server. ``max_statements`` and
    ``max_body`` bound the batches it sends (the server's defaults unless given)."""

    def __init__(self, client: Client, name: str, isolation_level: str | None, *,
                 max_statements: int = 1000, max_body: int = 1 << 20, max_page_rows: int = 0):
        self.client = client
        self.name = name
        self.isolation_level = isolation_level
        self.max_statements, self.max_body = max_statements, max_body
        self.max_page_rows = max_page_rows  # 0: the server holds no paged results open
        self._session: Session | None = None
        self.pragmas = ConnectionPragmas()

    @property
    def in_transaction(self) -> bool:
        return self._session is not None

    # -- sending ---------------------------------------------------------------------

    def _send(self, call: Call):
        if self.client is None:
            raise ProgrammingError("the connection is closed")
        try:
            return self.client.send(call)
        except _SESSION_GONE:
            if self._session is not None and call.path.startswith(self._session.path):
                self._ended()  # the server rolled it back
            raise

    def _path(self, dml: bool) -> str:
        """Where a statement goes: the open session (opened first for DML, as sqlite3
        opens a transaction), else the database itself (autocommit)."""
        if self._session is None and dml and self.isolation_level is not None:
            self._begin()
        return self._session.path if self._session is not None else db_path(self.name)

    def _statement(self, sql: str, params: Iterable | dict, dml: bool) -> Result:
        kind = control_kind(sql)
        if kind is not None:
            return self._control(kind, sql)
        pragma = pragmas.parse(sql)
        answer = self.pragmas.answer(pragma, self.in_transaction) if pragma else None
        if answer is not None:
            return answer
        try:
            return self._query(sql, params, dml)
        except SQLNotAllowed as refused:
            return self._fixed_pragma(pragma, refused)

    def _query(self, sql: str, params: Iterable | dict, dml: bool) -> Result:
        path = self._path(dml)
        if self._session is not None or not self.pragmas.prefix():
            return self._send(endpoints.query(path, sql, params))
        try:
            return self._autocommit([statement((sql, params))])[0]
        except Error as failed:
            if not _BATCH_INDEX.match(str(failed)):
                raise
            raise _renumbered(failed, 0, keep_index=False) from None  # one statement, as sent

    def _batch(self, entries: list[dict], dml: bool) -> list[Result]:
        if not entries:
            return []
        path = self._path(dml)
        if self._session is None:
            return self._autocommit(entries)
        results: list[Result] = []
        for batch in batches(entries, self.max_statements, self.max_body):
            results += self._send_halving(path, batch, [])
        return results

    def _autocommit(self, entries: list[dict]) -> list[Result]:
        """Run ``entries`` outside a transaction in batches, each a transaction of its own
        that starts with the connection's settings (then one-transaction settings end)."""
        prefix = [statement(sql) for sql in self.pragmas.prefix()]
        room = self.max_body - sum(map(wire_size, prefix))
        results: list[Result] = []
        try:
            for batch in batches(entries, self.max_statements - len(prefix), room):
                results += self._send_halving(db_path(self.name), batch, prefix)
        finally:
            self.pragmas.transaction_ended()
        return results

    def _send_halving(self, path: str, batch: list[dict], prefix: list[dict]) -> list[Result]:
        """Send ``prefix + batch`` and answer ``batch``'s results; if the body is over the
        server's limit (refused before anything ran), remember a smaller limit and send
        ``batch`` in two halves, each after ``prefix``."""
        try:
            return self._send(endpoints.encoded_batch(path, prefix + batch))[len(prefix):]
        except BodyTooLarge:
            if len(batch) == 1:
                raise
            self.max_body = min(self.max_body, sum(map(wire_size, prefix + batch)) // 2)
            half = len(batch) // 2
            return self._send_halving(path, batch[:half], prefix) + self._send_halving(path, batch[half:], prefix)
        except Error as failed:
            if not prefix:
                raise
            raise _renumbered(failed, len(prefix)) from None

    def _script(self, statements: list[str]) -> None:
        plain: list[dict] = []
        for sql in statements:
            if control_kind(sql) is None and pragmas.parse(sql) is None:
                plain.append(statement(sql))
                continue
            self._batch(plain, False)
            plain = []
            self._statement(sql, (), False)
        self._batch(plain, False)

    # -- transaction control -----------------------------------------------------------

    def _begin(self) -> None:
        """Open a session that starts with the connection's settings."""
        self._session = Session(self.client, self.name, self._send(endpoints.session(self.name)))
        prefix = self.pragmas.prefix()
        if prefix:
            try:
                self._send(endpoints.batch(self._session.path, prefix))
            except BaseException:
                self.rollback()
                raise

    def _ended(self) -> None:
        """The open transaction ended (committed, rolled back, or lost on the server)."""
        self._session = None
        self.pragmas.transaction_ended()

    def _control(self, kind: str, sql: str) -> Result:
        if kind == "begin":
            if self._session is not None:
                raise OperationalError("cannot start a transaction within a transaction")
            self._begin()
        elif kind in ("commit", "rollback"):
            if self._session is None:
                raise OperationalError(f"cannot {kind} - no transaction is active")
            self.commit() if kind == "commit" else self.rollback()
        else:
            self._savepoint(kind, sql)
        return NOTHING

    def _savepoint(self, kind: str, sql: str) -> None:
        opened = self._session is None
        if opened:
            if kind == "release":
                raise OperationalError(f"no such savepoint: {sql.split()[-1].rstrip(';')}")
            self._begin()  # as in SQLite, a SAVEPOINT outside a transaction begins one
        try:
            self._send(endpoints.query(self._session.path, sql, ()))
        except TransactionControl as refused:
            if opened:
                self.rollback()
            raise NotSupportedError(f"this server refuses {kind.upper()} inside a session ({refused}); "
                                    "savepoints over HTTP need a server that allows them") from refused

    def commit(self) -> None:
        """Commit the open transaction; durable on the server when this returns."""
        session = self._session
        if session is not None:
            self._ended()
            session.commit()

    def rollback(self) -> None:
        session = self._session
        if session is not None:
            self._ended()
            session.rollback()

    def _fixed_pragma(self, pragma: tuple[str, str | None] | None, refused: SQLNotAllowed) -> Result:
        """A refused ``PRAGMA flag = value``: fine if the server already runs with it."""
        if pragma is None or pragma[1] is None or pragma[0] not in _FIXED_FLAGS:
            raise refused
        name, wanted = pragma[0], pragmas.flag(pragma[1], pragma[0])
        (current,) = self._send(endpoints.query(self._path(False), f"PRAGMA {name}", ())).rows[0]
        if current != wanted:
            raise NotSupportedError(f"PRAGMA {name} = {pragma[1]}: the server's connections run with "
                                    f"{name} = {current}, which a client cannot change") from refused
        return NOTHING

    def _paged(self, sql: str, params: Iterable | dict, too_large: ResultTooLarge) -> tuple[Result, Iterator[tuple]]:
        session = self._session.path if self._session is not None else None
        return paging.paged(self._send, self.name, session, self.max_page_rows, sql, params, too_large)

    # -- the rest of PEP 249 -----------------------------------------------------------

    def cursor(self) -> Cursor:
        return Cursor(self)

    def close(self) -> None:
        if self.client is None:
            return
        try:
            self.rollback()
        except Error:
            pass  # closing anyway: the server rolls the session back when it idles out
        self.client.close()
        self.client = None


def _renumbered(error: Error, shift: int, keep_index: bool = True) -> Error:
    """``error`` as if the first ``shift`` statements of its batch (the driver's own) had not
    been sent: its ``batch[i]: `` moved down by ``shift``, or dropped (``keep_index``
    false: the batch held one statement of the user's)."""
    found = _BATCH_INDEX.match(str(error))
    if found is None or int(found[1]) < shift:
        return error  # not a batch's error, or one of the driver's statements failed
    rest = str(error)[found.end():]
    message = f"batch[{int(found[1]) - shift}]: {rest}" if keep_index else rest
    return error_from_code(error.code, message, error.http_status)


def split_url(url: str) -> tuple[str, str]:
    """``http://host:port[/prefix]/name`` -> (``http://host:port[/prefix]``, ``name``)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    base_path, _, name = path.rpartition("/")
    if parts.scheme not in ("http", "https") or not parts.netloc or not name:
        raise InterfaceError(f"expected http(s)://HOST:PORT/DATABASE, got {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, base_path, "", "")), name


def connect(url: str, token: str | None = None, *, create: bool = True, isolation_level: str | None = "",
            timeout: float = 60.0, max_statements: int | None = None, max_body: int | None = None) -> Connection:
    """Open database ``DATABASE`` on the server at ``http(s)://HOST:PORT/DATABASE``.

    ``create``: create the database if it is missing (needs an admin token).
    ``max_statements``, ``max_body``: the server's batch limits, if not its defaults (a
    server that publishes its ``limits`` in ``/healthz`` is taken at its word).
    """
    base, name = split_url(url)
    client = Client(base, token=token, timeout=timeout)
    try:
        _ensure_database(client, name, create)
        published = client.health().get("limits") or {}
    except BaseException:
        client.close()
        raise
    return Connection(client, name, isolation_level,
                      max_statements=max_statements or published.get("max_statements", 1000),
                      max_body=max_body or published.get("max_body_bytes", 1 << 20),
                      max_page_rows=published.get("max_page_rows", 0))


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
    "Connection", "Cursor", "DataError", "DatabaseError", "Error", "IntegrityError", "InterfaceError", "InternalError",
    "NotSupportedError", "OperationalError", "ProgrammingError", "Warning", "apilevel", "connect", "paramstyle", "threadsafety",
]
