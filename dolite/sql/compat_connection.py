"""The sqlite3.Connection methods of dolite's local connection that map onto APSW.

Everything a method installs on the APSW connection (functions, aggregates, collations,
the authorizer, trace and progress callbacks, limits) is kept in one registry on the
connection and installed again whenever the APSW connection is (re)opened: an exclusive
connection reopens its APSW connection after someone else committed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable

import apsw

from dolite.errors import NotSupportedError, OperationalError, ProgrammingError
from dolite.sql import compat

_ISOLATION_LEVELS = ("", "DEFERRED", "IMMEDIATE", "EXCLUSIVE")
_TRACE_ID = "dolite.sqlite3-trace"


def checked_isolation_level(value: str | None) -> str | None:
    """``value`` if sqlite3 accepts it as an isolation level, else sqlite3's error."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"isolation_level must be str or None, not {type(value).__name__}")
    if value.upper() not in _ISOLATION_LEVELS:
        raise ValueError("isolation_level string must be '', 'DEFERRED', 'IMMEDIATE', or 'EXCLUSIVE'")
    return value


class SQLite3ConnectionMethods:
    """Mixed into :class:`dolite.sql.dbapi.Connection`; relies on its ``raw``, ``_check()``,
    ``_errors()``, ``_fresh()`` and ``_wrote_elsewhere()``."""

    row_factory = None
    text_factory = str

    def _init_compat(self, detect_types: int) -> None:
        self._hooks: dict[tuple, Callable[[apsw.Connection], None]] = {}
        self.detect_types = detect_types

    def _install_hooks(self, raw: apsw.Connection) -> None:
        """Install every registered hook on a (re)opened APSW connection."""
        for install in self._hooks.values():
            install(raw)

    def _hook(self, key: tuple, install: Callable[[apsw.Connection], None] | None,
              remove: Callable[[apsw.Connection], None] | None = None) -> None:
        """Register (or with ``install=None`` drop) a hook and apply it to the current raw."""
        self._check()
        with self._errors():
            if install is None:
                self._hooks.pop(key, None)
                if remove is not None:
                    remove(self.raw)
            else:
                install(self.raw)
                self._hooks[key] = install

    # -- isolation -------------------------------------------------------------------------

    @property
    def isolation_level(self) -> str | None:
        return self._isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        value = checked_isolation_level(value)
        if value is None and getattr(self, "raw", None) is not None:
            self.commit()  # sqlite3: autocommit mode starts by committing what is pending
        self._isolation_level = value

    # -- user functions, collations, callbacks ---------------------------------------------

    def create_function(self, name: str, narg: int, func: Callable | None, *, deterministic: bool = False) -> None:
        """sqlite3.Connection.create_function: an exception in ``func`` fails the statement
        with OperationalError("user-defined function raised exception")."""
        flags = apsw.SQLITE_DETERMINISTIC if deterministic else 0
        key = ("function", name.upper(), narg)
        if func is None:
            self._hook(key, None, lambda raw: raw.create_scalar_function(name, None, narg))
            return
        wrapped = compat.scalar_function(func)
        self._hook(key, lambda raw: raw.create_scalar_function(name, wrapped, narg, flags=flags))

    def create_aggregate(self, name: str, n_arg: int, aggregate_class: type | None) -> None:
        key = ("function", name.upper(), n_arg)
        if aggregate_class is None:
            self._hook(key, None, lambda raw: raw.create_aggregate_function(name, None, n_arg))
            return
        factory = compat.aggregate_factory(aggregate_class)
        self._hook(key, lambda raw: raw.create_aggregate_function(name, factory, n_arg))

    def create_window_function(self, name: str, num_params: int, aggregate_class: type | None, /) -> None:
        key = ("function", name.upper(), num_params)
        if aggregate_class is None:
            self._hook(key, None, lambda raw: raw.create_window_function(name, None, num_params))
            return
        factory = compat.window_factory(aggregate_class)
        self._hook(key, lambda raw: raw.create_window_function(name, factory, num_params))

    def create_collation(self, name: str, callback: Callable | None, /) -> None:
        if callback is not None and not callable(callback):
            raise TypeError("parameter must be callable")
        key = ("collation", name.upper())
        if callback is None:
            self._hook(key, None, lambda raw: raw.create_collation(name, None))
            return
        self._hook(key, lambda raw: raw.create_collation(name, callback))

    def set_authorizer(self, authorizer_callback: Callable | None) -> None:
        if authorizer_callback is None:
            self._hook(("authorizer",), None, lambda raw: setattr(raw, "authorizer", None))
            return
        wrapped = compat.authorizer(authorizer_callback)
        self._hook(("authorizer",), lambda raw: setattr(raw, "authorizer", wrapped))

    def set_progress_handler(self, progress_handler: Callable | None, n: int) -> None:
        if progress_handler is None or n <= 0:
            self._hook(("progress",), None, lambda raw: raw.set_progress_handler(None))
            return
        wrapped = compat.progress_handler(progress_handler)
        self._hook(("progress",), lambda raw: raw.set_progress_handler(wrapped, n))

    def set_trace_callback(self, trace_callback: Callable[[str], object] | None) -> None:
        """Called with the text of each statement SQLite starts (including the BEGIN and
        COMMIT the driver issues); exceptions in the callback are ignored, as in sqlite3."""
        def remove(raw):
            raw.trace_v2(0, None, id=_TRACE_ID)
        if trace_callback is None:
            self._hook(("trace",), None, remove)
            return

        def trace(event: dict) -> None:
            if not event.get("trigger"):
                with contextlib.suppress(Exception):
                    trace_callback(event["sql"])
        self._hook(("trace",), lambda raw: raw.trace_v2(apsw.SQLITE_TRACE_STMT, trace, id=_TRACE_ID))

    def setlimit(self, category: int, limit: int, /) -> int:
        """Set a run-time limit (kept across reopens); returns the previous value."""
        previous = self.getlimit(category)
        if limit >= 0:
            self._hook(("limit", category), lambda raw: raw.limit(category, limit))
        return previous

    def getlimit(self, category: int, /) -> int:
        self._check()
        if category not in {v for k, v in compat.CONSTANTS.items() if k.startswith("SQLITE_LIMIT_")}:
            raise ProgrammingError("'category' is out of bounds")
        return self.raw.limit(category, -1)

    def enable_load_extension(self, enabled: bool, /) -> None:
        raise NotSupportedError("dolite does not load SQLite extensions")

    def load_extension(self, path: str, /, *, entrypoint: str | None = None) -> None:
        raise NotSupportedError("dolite does not load SQLite extensions")

    def interrupt(self) -> None:
        self._check(any_thread=True)
        self.raw.interrupt()

    @property
    def total_changes(self) -> int:
        self._check()
        return self.raw.total_changes()

    # -- whole-database operations ---------------------------------------------------------

    def blobopen(self, table: str, column: str, row: int, /, *, readonly: bool = False,
                 name: str = "main") -> Blob:
        self._check()
        self._fresh()
        with self._errors():
            return Blob(self.raw.blob_open(name, table, column, row, not readonly))

    def serialize(self, *, name: str = "main") -> bytes:
        """The database ``name`` as the bytes of a SQLite file."""
        self._check()
        self._fresh()
        with self._errors():
            data = self.raw.serialize(name)
        if data is None:
            raise OperationalError(f"unable to serialize database {name!r}")
        return data

    def deserialize(self, data: bytes, /, *, name: str = "main") -> None:
        """Replace the contents of database ``name`` with ``data`` (a SQLite file's bytes).
        Unlike sqlite3, the new contents are written to dolite's storage (the connection
        stays on its database); invalid data is refused and changes nothing."""
        self._check()
        source = apsw.Connection(":memory:")
        try:
            with self._errors():
                source.deserialize("main", bytes(data))
            self._copy_into(self, source, "main", -1, None, 0.0)
        finally:
            source.close()

    def iterdump(self):
        """The database as SQL text, one statement at a time (sqlite3's own dump code)."""
        from sqlite3.dump import _iterdump

        self._check()
        return _iterdump(_PlainRows(self))

    def backup(self, target, *, pages: int = -1, progress: Callable | None = None,
               name: str = "main", sleep: float = 0.250) -> None:
        """Copy database ``name`` into ``target``: a dolite connection or a stdlib
        sqlite3.Connection (through a stdlib in-memory copy, so sqlite3 runs the steps)."""
        self._check()
        if target is self:
            raise ValueError("target cannot be the same connection instance")
        if progress is not None and not callable(progress):
            raise TypeError("progress argument must be a callable")
        if isinstance(target, sqlite3.Connection):
            with contextlib.closing(sqlite3.connect(":memory:")) as source:
                source.deserialize(self.serialize(name=name))
                source.backup(target, pages=pages, progress=progress, sleep=sleep)
            return
        if not isinstance(target, SQLite3ConnectionMethods):
            raise TypeError(f"target must be a dolite or sqlite3 Connection, not {type(target).__name__}")
        target._check()
        if target.in_transaction:
            raise OperationalError("target is in transaction")
        self._fresh()
        self._copy_into(target, self.raw, name, pages, progress, sleep)

    @staticmethod
    def _copy_into(target, source: apsw.Connection, name: str, pages: int, progress, sleep: float) -> None:
        """SQLite's online backup from ``source`` into ``target``'s main database, with
        sqlite3's progress(status, remaining, total) after each step."""
        target._fresh()
        with target._errors(), target.raw.backup("main", source, name) as job:
            while not job.done:
                try:
                    job.step(pages if pages > 0 else -1)
                except (apsw.BusyError, apsw.LockedError):
                    time.sleep(sleep)
                    continue
                if progress is not None:
                    progress(apsw.SQLITE_DONE if job.done else apsw.SQLITE_OK, job.remaining, job.page_count)
        target._wrote_elsewhere()


class _PlainRows:
    """A view of a connection whose cursors return plain tuples (for sqlite3's dump code)."""

    def __init__(self, connection):
        self._connection = connection

    def cursor(self):
        cursor = self._connection.cursor()
        cursor.row_factory, cursor._plain = None, True
        return cursor


class Blob:
    """sqlite3.Blob over an APSW blob: file-like and indexable, never resized."""

    def __init__(self, blob: apsw.Blob):
        self._blob: apsw.Blob | None = blob

    def _open(self) -> apsw.Blob:
        if self._blob is None:
            raise ProgrammingError("Cannot operate on a closed blob.")
        return self._blob

    def close(self) -> None:
        if self._blob is not None:
            self._blob.close()
            self._blob = None

    def __len__(self) -> int:
        return self._open().length()

    def tell(self) -> int:
        return self._open().tell()

    def seek(self, offset: int, origin: int = 0, /) -> None:
        blob = self._open()
        base = {0: 0, 1: blob.tell(), 2: blob.length()}.get(origin)
        if base is None:
            raise ValueError("'origin' should be os.SEEK_SET, os.SEEK_CUR, or os.SEEK_END")
        if not 0 <= base + offset <= blob.length():
            raise ValueError("offset out of blob range")
        blob.seek(base + offset)

    def read(self, length: int = -1, /) -> bytes:
        blob = self._open()
        left = blob.length() - blob.tell()
        return blob.read(left if length < 0 else min(length, left))

    def write(self, data, /) -> None:
        blob = self._open()
        if len(memoryview(data).cast("B")) > blob.length() - blob.tell():
            raise ValueError("data longer than blob length")
        blob.write(data)

    def _whole(self) -> bytearray:
        blob = self._open()
        here = blob.tell()
        blob.seek(0)
        data = bytearray(blob.read())
        blob.seek(here)
        return data

    def __getitem__(self, key):
        data = self._whole()
        if isinstance(key, int) and not -len(data) <= key < len(data):
            raise IndexError("Blob index out of range")
        return data[key] if isinstance(key, int) else bytes(data[key])

    def __setitem__(self, key, value) -> None:
        data = self._whole()
        before = len(data)
        if isinstance(key, int) and not -before <= key < before:
            raise IndexError("Blob index out of range")
        data[key] = value
        if len(data) != before:
            raise IndexError("Blob slice assignment is wrong size")
        blob = self._open()
        here = blob.tell()
        blob.seek(0)
        blob.write(bytes(data))
        blob.seek(here)

    def __enter__(self) -> Blob:
        self._open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
