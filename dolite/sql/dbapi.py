"""A PEP 249 (DB-API 2.0) driver over the dolite VFS, shaped like stdlib sqlite3.

    conn = dolite.connect("shop", storage="lmdb:./data")
    conn.execute("INSERT INTO t(v) VALUES (?)", ["x"])
    conn.commit()

``conn.raw`` is the underlying :class:`apsw.Connection` for power users.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import apsw

from dolite.errors import Conflict, DatabaseNotFound, DoliteError, LeaseHeld
from dolite.names import validate_name
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
    threadsafety,
)
from dolite.storage import Namespace, open_storage
from dolite.sql.vfs import Database, DoliteVFS, dolite_cause, vfs_for

DEFAULT_STORAGE = "lmdb:./.dolite"

_ERRORS = [
    (apsw.ConstraintError, IntegrityError),
    ((apsw.BindingsError, apsw.ExecutionCompleteError, apsw.CursorClosedError,
      apsw.ConnectionClosedError), ProgrammingError),
    ((apsw.SQLError, apsw.BusyError, apsw.LockedError, apsw.ReadOnlyError, apsw.AbortError,
      apsw.InterruptError, apsw.FullError, apsw.CantOpenError, apsw.AuthError), OperationalError),
    ((apsw.TooBigError, apsw.MismatchError, apsw.RangeError), DataError),
    (apsw.InternalError, InternalError),
]


def translated(exc: apsw.Error) -> Exception:
    """The exception to raise for an APSW error: the DoliteError behind it (a storage
    failure in the VFS), else the matching PEP 249 class."""
    cause = dolite_cause(exc)
    if cause is not None:
        return cause
    for apsw_type, ours in _ERRORS:
        if isinstance(exc, apsw_type):
            return ours(str(exc))
    return DatabaseError(str(exc))


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Context manager form of :func:`translated`, for code off the hot path."""
    try:
        yield
    except apsw.Error as exc:
        raise translated(exc) from exc


def _remember_description(cell: list, cursor, statement, bindings) -> bool:
    # Known before the first step, so a query with no rows still describes itself.
    cell[0] = cursor.description
    cell[1] = cell[1] and cursor.is_readonly
    return True


class Cursor(CursorBase):
    """PEP 249 cursor over an APSW cursor."""

    def __init__(self, connection: Connection):
        self.connection = connection
        # A cell, not a bound method: a cursor <-> trace cycle would leave cursors to the
        # cyclic GC, which may finalize one inside a VFS callback.
        self._described: list = [None, True]  # description, every statement read-only
        self._trace = functools.partial(_remember_description, self._described)
        self._bind()

    def _bind(self) -> None:
        """(Re)create the APSW cursor on the connection's current APSW connection."""
        self._raw = self.connection.raw
        self._cursor = self._raw.cursor()
        self._cursor.exec_trace = self._trace
        self._rows: Iterator[tuple] = iter(())
        self.description = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    def execute(self, sql: str, parameters: Iterable | dict = ()) -> Cursor:
        conn = self.connection
        if conn._setup.exclusive:
            conn._stay_fresh()
            if self._raw is not conn.raw:
                self._bind()
        dml = is_dml(sql)
        if dml:
            conn._begin_if_needed()
            before = conn.raw.total_changes()
        self._described[0], self._described[1] = None, True
        was_in_transaction = conn.raw.in_transaction
        try:
            self._rows = self._cursor.execute(sql, parameters)
        except apsw.Error as exc:
            raise conn._failed(exc) from exc
        self.description = self._described[0] or None
        if dml:
            self.rowcount = conn.raw.total_changes() - before
            self.lastrowid = conn.raw.last_insert_rowid()
        else:
            self.rowcount = -1
        if conn._setup.exclusive and (not self._described[1] or
                                       (was_in_transaction and not conn.raw.in_transaction)):
            conn._wrote()
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable) -> Cursor:
        conn = self.connection
        dml = is_dml(sql)
        if dml:
            conn._begin_if_needed()
        before = conn.raw.total_changes()
        self._cursor.exec_trace = None
        try:
            with conn._errors():
                for _ in self._cursor.executemany(sql, seq_of_parameters):
                    pass
        finally:
            self._cursor.exec_trace = self._trace
        self.description = None
        self._rows = iter(())
        self.rowcount = conn.raw.total_changes() - before if dml else -1
        self.lastrowid = conn.raw.last_insert_rowid()
        return self

    def executescript(self, sql: str) -> Cursor:
        self.connection.commit()
        with self.connection._errors():
            for _ in self._cursor.execute(sql):
                pass
        return self

    def fetchone(self) -> tuple | None:
        try:
            return next(self._rows, None)
        except apsw.Error as exc:
            raise self.connection._failed(exc) from exc

    def fetchall(self) -> list[tuple]:
        try:
            return list(self._rows)
        except apsw.Error as exc:
            raise self.connection._failed(exc) from exc

    def close(self) -> None:
        self._cursor.close(True)


class Connection(ConnectionBase):
    """PEP 249 connection. Like sqlite3, DML opens a transaction implicitly (unless
    ``isolation_level`` is None) and :meth:`commit` makes it durable."""

    def __init__(self, vfs: DoliteVFS, database: Database, isolation_level: str | None,
                 setup: RawSetup):
        self._vfs = vfs
        self.database = database
        self.isolation_level = isolation_level
        self._setup = setup
        self.raw = setup.open()
        # Exclusive mode: a head identity no newer than what our SQLite cache holds (None:
        # nothing cached yet). Never newer, so a commit by anyone else is never missed.
        self._seen: tuple[int, int] | None = None

    def _stay_fresh(self) -> None:
        """Exclusive mode: SQLite trusts its page cache across transactions. If someone
        else committed since our cache was filled (possible when our lease lapsed, or
        while another process held it), reopen so that cache is dropped. An exclusive
        connection owns its database, so it keeps the write lease: then no check needs
        any I/O."""
        store = self.database.store
        if store.still_newest(self._seen):
            return  # we hold the lease and nobody committed since: the common case
        if self.raw.in_transaction:
            return
        try:
            with contextlib.suppress(LeaseHeld):
                store.ensure_writable()  # take or renew the lease (another process may hold it)
            identity = store.current_head().identity
        except DoliteError:
            return  # the statement itself will report the storage error
        if self._seen is not None and identity != self._seen:
            self._reopen()
        self._seen = identity  # taken before the statement pins: never newer than it

    def _wrote(self) -> None:
        """After a statement that may have committed: our own commit is what our cache
        now holds, known for sure only while we hold the lease (else check next time)."""
        latest = self.database.store.known_newest()
        self._seen = latest.identity if latest is not None else (-1, -1)

    def _reopen(self) -> None:
        old, self.raw = self.raw, None
        with contextlib.suppress(apsw.Error):
            old.close()
        self.raw = self._setup.open()

    def _failed(self, exc: apsw.Error) -> Exception:
        """The exception to raise for ``exc``. After a Conflict an exclusive connection
        is reopened: SQLite keeps its page cache across transactions in exclusive mode,
        and after someone else committed that cache is stale."""
        error = translated(exc)
        if isinstance(error, Conflict) and self._setup.exclusive and self.raw is not None:
            self._reopen()
            self._seen = None
        return error

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except apsw.Error as exc:
            raise self._failed(exc) from exc

    @property
    def name(self) -> str:
        return self.database.store.name

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def _begin_if_needed(self) -> None:
        if self.isolation_level is not None and not self.raw.in_transaction:
            with self._errors():
                self.raw.execute(f"BEGIN {self.isolation_level}")

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        if self.raw.in_transaction:
            with self._errors():
                self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.raw.in_transaction:
            with self._errors():
                self.raw.execute("ROLLBACK")

    def close(self) -> None:
        if self.raw is None:
            return
        with contextlib.suppress(apsw.Error):
            self.rollback()
        raw, self.raw = self.raw, None
        raw.close()
        self._vfs.detach(self.database)



def connect(
    name: str,
    storage: str | Namespace | None = None,
    *,
    create: bool = True,
    exclusive: bool = False,
    timeout: float = 5.0,
    isolation_level: str | None = "",
    chunk_size: int | None = None,
    retention: float | None = None,
    cache_bytes: int | None = None,
    page_cache_bytes: int = 16 << 20,
    lease_ttl: float | None = None,
) -> Connection:
    """Open database ``name`` in ``storage`` (a URL or Namespace; default ``lmdb:./.dolite``).

    ``create``: make the database if it is missing (else raise DatabaseNotFound).
    ``exclusive``: this connection owns the database (SQLite locking_mode=EXCLUSIVE):
    SQLite keeps its page cache across transactions, the fastest mode. It holds the
    database's write lease while in use (other processes' writers get LeaseHeld until it
    closes or idles past the lease); once it has written, other writers in this process
    wait too. If anyone else commits meanwhile, it notices before its next statement and
    reopens itself.
    ``chunk_size`` and ``retention`` (seconds of old versions kept) apply at creation.
    ``cache_bytes`` (default 64 MiB) bounds the chunk cache shared by this process's
    connections to a database and ``lease_ttl`` (default 30 s) is the write lease's time
    to live: both are fixed by the first connection to ``storage`` in the process, and a
    later connection asking for another value is refused (ProgrammingError).
    ``page_cache_bytes`` is this connection's SQLite page cache (hot pages never reach the
    VFS; it stays valid across transactions while nobody else writes).
    """
    validate_name(name)
    namespace = open_storage(storage or DEFAULT_STORAGE)
    vfs = vfs_for(namespace, cache_bytes=cache_bytes, lease_ttl=lease_ttl)
    database = vfs.attach(name)
    try:
        if not database.store.exists():
            if not create:
                raise DatabaseNotFound(f"database {name!r} does not exist in {namespace.url}")
            options = {k: v for k, v in (("chunk_size", chunk_size), ("retention", retention)) if v is not None}
            database.store.create(**options)
        setup = RawSetup(vfs.vfs_name, name, timeout, page_cache_bytes, exclusive)
        return Connection(vfs, database, isolation_level, setup)
    except BaseException:
        vfs.detach(database)
        raise


@dataclass(frozen=True)
class RawSetup:
    """How to open (and reopen) the APSW connection under a :class:`Connection`."""

    vfs_name: str
    name: str
    timeout: float
    page_cache_bytes: int
    exclusive: bool

    def open(self) -> apsw.Connection:
        raw = None
        with translate_errors():
            try:
                raw = apsw.Connection(self.name, vfs=self.vfs_name,
                                      flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
                raw.set_busy_timeout(int(self.timeout * 1000))
                # One statement a call, each run to completion: APSW steps a
                # multi-statement string only as far as its first row.
                pragmas = ["journal_mode=MEMORY", "temp_store=MEMORY",
                           f"cache_size=-{max(self.page_cache_bytes // 1024, 64)}"]
                if self.exclusive:
                    pragmas.append("locking_mode=EXCLUSIVE")
                for pragma in pragmas:
                    raw.execute(f"PRAGMA {pragma}").fetchall()
            except BaseException:
                if raw is not None:
                    raw.close()
                raise
        return raw


__all__ = [
    "connect", "Connection", "Cursor", "Error", "DatabaseError", "OperationalError",
    "IntegrityError", "ProgrammingError", "DataError", "InternalError", "NotSupportedError",
    "InterfaceError", "Warning", "DoliteError", "apilevel", "threadsafety", "paramstyle",
]
