"""A PEP 249 (DB-API 2.0) driver over the dolite VFS, shaped like stdlib sqlite3.

    conn = dolite.connect("shop", storage="lmdb:./data")
    conn.execute("INSERT INTO t(v) VALUES (?)", ["x"])
    conn.commit()

``conn.raw`` is the underlying :class:`apsw.Connection` for power users.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import apsw

from dolite.errors import Conflict, DatabaseNotFound, DoliteError
from dolite.names import validate_name
from dolite.sql.freshness import CacheFreshness
from dolite.sql.pep249 import (
    ConnectionBase,
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
from dolite.storage import DEFAULT_STORAGE, Namespace, open_storage
from dolite.sql.cursor import Cursor
from dolite.sql.compat_connection import SQLite3ConnectionMethods, checked_isolation_level
from dolite.sql.optimistic import Optimistic
from dolite.sql.vfs import Database, DoliteVFS, dolite_cause, vfs_for


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
            return _with_sqlite_code(ours(str(exc)), exc)
    return _with_sqlite_code(DatabaseError(str(exc)), exc)


def _with_sqlite_code(error: Error, exc: apsw.Error) -> Error:
    """sqlite3's ``sqlite_errorcode``/``sqlite_errorname``: SQLite's extended result code."""
    code = getattr(exc, "extendedresult", None) or getattr(exc, "result", None)
    if code is not None:
        error.sqlite_errorcode = code
        error.sqlite_errorname = (apsw.mapping_extended_result_codes.get(code)
                                  or apsw.mapping_result_codes.get(code & 0xFF, "SQLITE_UNKNOWN"))
    return error


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Context manager form of :func:`translated`, for code off the hot path."""
    try:
        yield
    except apsw.Error as exc:
        raise translated(exc) from exc


class Connection(SQLite3ConnectionMethods, ConnectionBase):
    """PEP 249 connection with sqlite3.Connection's surface. Like sqlite3, DML opens a
    transaction implicitly (unless ``isolation_level`` is None) and :meth:`commit` makes
    it durable."""

    def __init__(self, vfs: DoliteVFS, database: Database, isolation_level: str | None,
                 setup: RawSetup, *, detect_types: int = 0, check_same_thread: bool = False):
        self._vfs = vfs
        self.database = database
        self._isolation_level = checked_isolation_level(isolation_level)
        self._setup = setup
        self._closed = False
        self._thread = threading.get_ident() if check_same_thread else None
        self._init_compat(detect_types)
        self.optimistic: Optimistic | None = None  # set by connect(concurrency="optimistic")
        self.raw = self._open_raw()
        self._freshness = CacheFreshness()  # exclusive mode: may SQLite's page cache be trusted?

    def _stay_fresh(self) -> None:
        """Exclusive mode, before a statement: drop SQLite's page cache if someone else
        committed since it was filled (sql/freshness.py)."""
        if self._freshness.stale(self.database.store, self.raw.in_transaction):
            self._reopen()

    def _wrote(self) -> None:
        self._freshness.wrote(self.database.store)

    def _reopen(self) -> None:
        """A new APSW connection in place of the old one (dropping SQLite's page cache).
        If opening fails, ``raw`` stays None and the next use tries again."""
        old, self.raw = self.raw, None
        if old is not None:
            with contextlib.suppress(apsw.Error):
                old.close()
        self.raw = self._open_raw()

    def _open_raw(self) -> apsw.Connection:
        """A new APSW connection with every registered hook (functions, collations,
        callbacks, limits) installed."""
        raw = self._setup.open()
        try:
            with translate_errors():
                self._install_hooks(raw)
        except BaseException:
            raw.close()
            raise
        return raw

    def _check(self, any_thread: bool = False) -> None:
        """sqlite3's guards: a closed connection, or one used outside the thread that made
        it (when ``check_same_thread``), refuses with ProgrammingError."""
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed database.")
        if not any_thread:
            self._check_thread()
            self._usable_raw()

    def _check_thread(self) -> None:
        if self._thread is not None and threading.get_ident() != self._thread:
            raise ProgrammingError(
                "SQLite objects created in a thread can only be used in that same thread. "
                f"The object was created in thread id {self._thread} and this is thread id "
                f"{threading.get_ident()}.")

    def _fresh(self) -> None:
        if self._setup.exclusive:
            self._stay_fresh()

    def _wrote_elsewhere(self) -> None:
        """After a write not made through Cursor.execute (executemany, a script, a backup)."""
        if self._setup.exclusive:
            self._wrote()

    def _usable_raw(self) -> apsw.Connection:
        if self.raw is None:
            if self._closed:
                raise ProgrammingError("Cannot operate on a closed connection.")
            self._reopen()
            self._freshness.forget()
        return self.raw

    def _failed(self, exc: apsw.Error) -> Exception:
        """The exception to raise for ``exc``. After a Conflict an exclusive connection
        is reopened: SQLite keeps its page cache across transactions in exclusive mode,
        and after someone else committed that cache is stale."""
        error = translated(exc)
        if isinstance(error, Conflict) and self._setup.exclusive and self.raw is not None:
            self._freshness.forget()
            with contextlib.suppress(Error):
                self._reopen()  # else left for the next statement (see _usable_raw)
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
        self._check()
        return self.raw.in_transaction

    def _begin_if_needed(self) -> None:
        if self._isolation_level is not None and not self.raw.in_transaction:
            with self._errors():
                self.raw.execute(f"BEGIN {self._isolation_level}")
                if self.optimistic is not None:
                    self.optimistic.began(self.raw)

    def cursor(self, factory: type[Cursor] | None = None) -> Cursor:
        self._check()
        cursor = Cursor(self) if factory is None else factory(self)
        if not isinstance(cursor, Cursor):
            raise TypeError(f"factory must return a dolite Cursor, not {type(cursor).__name__}")
        return cursor

    def commit(self) -> None:
        self._check()
        if self.raw.in_transaction and self.optimistic is not None:
            self.optimistic.commit(self)  # commit, or rebase onto a newer head
        elif self.raw.in_transaction:
            with self._errors():
                self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self._check()
        if self.optimistic is not None:
            self.optimistic.ended()
        if self.raw.in_transaction:
            with self._errors():
                self.raw.execute("ROLLBACK")

    def close(self) -> None:
        if self._closed:
            return
        self._check_thread()
        self._closed = True
        if self.optimistic is not None:
            self.optimistic.ended()
        raw, self.raw = self.raw, None
        if raw is not None:
            with contextlib.suppress(apsw.Error):
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
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
    detect_types: int = 0,
    check_same_thread: bool = False,
    factory: type | None = None,
    cached_statements: int = 128,
    uri: bool = False,
    autocommit: object = None,
    concurrency: str = "lease",
    on_conflict=None,
    retries: int | None = None,
) -> Connection:
    """Open database ``name`` in ``storage`` (a URL or Namespace; default ``sqlite:./.dolite``).

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
    ``detect_types``, ``check_same_thread`` (default False, unlike sqlite3: connections
    may be handed between threads, one user at a time),
    ``factory`` (a :class:`Connection` subclass) and ``cached_statements`` are sqlite3's;
    ``uri=True`` and ``autocommit`` (Python 3.12's transaction control) are refused.
    ``concurrency``: ``"lease"`` (default: one writer at a time, by the write lease;
    serializable) or ``"optimistic"`` (snapshot isolation with row-level write-conflict
    detection, so write skew is possible: transactions take the lease only to commit and
    rebase onto other writers' commits, each conflicting row decided by ``on_conflict``,
    default ``"abort"``, at most ``retries`` times, default 3; see
    :mod:`dolite.sql.optimistic` and docs/CONCURRENCY.md).
    """
    validate_name(name)
    _refuse_unsupported(factory, uri, autocommit)
    optimistic = _optimistic(concurrency, on_conflict, retries, exclusive)
    namespace = open_storage(storage or DEFAULT_STORAGE)
    vfs = vfs_for(namespace, cache_bytes=cache_bytes, lease_ttl=lease_ttl)
    database = vfs.attach(name)
    try:
        if not database.store.exists():
            if not create:
                raise DatabaseNotFound(f"database {name!r} does not exist in {namespace.url}")
            options = {k: v for k, v in (("chunk_size", chunk_size), ("retention", retention)) if v is not None}
            database.store.create(**options)
        setup = RawSetup(vfs.vfs_name, name, timeout, page_cache_bytes, exclusive, cached_statements,
                         optimistic is not None)
        conn = (factory or Connection)(vfs, database, isolation_level, setup, detect_types=detect_types,
                                       check_same_thread=check_same_thread)
        conn.optimistic = optimistic
        return conn
    except BaseException:
        vfs.detach(database)
        raise


def _refuse_unsupported(factory, uri: bool, autocommit) -> None:
    if factory is not None and not (isinstance(factory, type) and issubclass(factory, Connection)):
        raise NotSupportedError("factory must be a subclass of dolite.sql.dbapi.Connection")
    if uri:
        raise NotSupportedError("uri=True: a dolite database is named, not opened from a file URI")
    if autocommit not in (None, -1):
        raise NotSupportedError("autocommit= (PEP 249 transaction control) is not supported; "
                                "use isolation_level (None for autocommit)")


def _optimistic(concurrency: str, on_conflict, retries: int | None, exclusive: bool) -> Optimistic | None:
    """The optimistic state for ``concurrency`` (None in lease mode); options that would
    not apply are refused."""
    if concurrency == "lease":
        if on_conflict is not None or retries is not None:
            raise NotSupportedError("on_conflict and retries apply to concurrency='optimistic' only")
        return None
    if concurrency != "optimistic":
        raise NotSupportedError(f"concurrency must be 'lease' or 'optimistic', not {concurrency!r}")
    if exclusive:
        raise NotSupportedError("exclusive=True holds the write lease: it cannot be optimistic")
    return Optimistic("abort" if on_conflict is None else on_conflict, 3 if retries is None else retries)


@dataclass(frozen=True)
class RawSetup:
    """How to open (and reopen) the APSW connection under a :class:`Connection`."""

    vfs_name: str
    name: str
    timeout: float
    page_cache_bytes: int
    exclusive: bool
    cached_statements: int = 128
    optimistic: bool = False  # the VFS makes it a writer only to commit (dolite/sql/vfs.py)

    def open(self) -> apsw.Connection:
        raw = None
        # (names are [A-Za-z0-9_.-]: nothing to escape in the URI)
        filename = f"file:{self.name}?concurrency=optimistic" if self.optimistic else self.name
        with translate_errors():
            try:
                raw = apsw.Connection(filename, vfs=self.vfs_name,
                                      flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI,
                                      statementcachesize=self.cached_statements)
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
