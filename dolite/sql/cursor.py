"""The local driver's cursor: PEP 249 over an APSW cursor, with sqlite3.Cursor's semantics.

Statements run on the APSW connection its :class:`dolite.sql.dbapi.Connection` holds now;
after the connection reopened its APSW connection (exclusive mode), the cursor binds again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

import apsw

from dolite.errors import ProgrammingError
from dolite.sql.compat import RowShaper, bind_all, bind_parameters, check_one_statement, check_script, column_converters
from dolite.sql.pep249 import CursorBase, is_dml

def _missing_binding(exc: KeyError) -> ProgrammingError:
    return ProgrammingError(f"You did not supply a value for binding parameter :{exc.args[0]}.")


def _refuse_read_only(cursor, statement, bindings) -> bool:
    # executemany: checked on the first statement only, then the trace removes itself.
    cursor.exec_trace = None
    return not cursor.is_readonly


def _remember_description(cell: list, cursor, statement, bindings) -> bool:
    # Known before the first step, so a query with no rows still describes itself.
    cell[0] = cursor.description
    cell[1] = cell[1] and cursor.is_readonly
    return True


# (columns, text_factory, row_factory, plain) -> (description, RowShaper or None); both
# immutable. Without detect_types nothing else decides them.
_SHAPES: dict[tuple, tuple] = {}


@functools.lru_cache(maxsize=512)
def _checked_dml(sql: str) -> bool:
    """``check_one_statement(sql)`` (raises if refused: a refusal is never cached), then
    whether ``sql`` is DML. Both depend on the text alone: a statement run again is one
    cache lookup."""
    check_one_statement(sql)
    return is_dml(sql)


class Cursor(CursorBase):
    """PEP 249 cursor over an APSW cursor, with sqlite3.Cursor's semantics (one statement
    per execute, sqlite3's adapters, converters, row_factory and text_factory)."""

    def __init__(self, connection):  # a dolite.sql.dbapi.Connection
        self.connection = connection
        self.row_factory = connection.row_factory
        self._closed = False
        self._plain = False  # rows as SQLite gives them (sqlite3's dump code)
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
        self._shape: RowShaper | None = None
        self.description = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    def _ready(self, sql):
        """The connection, once this cursor, its connection and ``sql`` may be used."""
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed cursor.")
        self.connection._check()
        if not isinstance(sql, str):
            raise TypeError(f"execute() argument 1 must be str, not {type(sql).__name__}")
        return self.connection

    def _describe(self) -> None:
        described = self._described[0]
        if not described:
            self.description, self._shape = None, None
            return
        conn = self.connection
        key = (described, conn.text_factory, self.row_factory, self._plain)
        try:
            known = None if conn.detect_types else _SHAPES.get(key)
        except TypeError:  # an unhashable factory: described every time
            known, key = None, None
        if known is not None:
            self.description, self._shape = known  # the same query again: the common case
            return
        converters, names = column_converters(conn.detect_types, described)
        self.description = tuple((name, None, None, None, None, None, None) for name in names)
        shape = RowShaper(converters, conn.text_factory, self.row_factory)
        self._shape = shape if shape.needed and not self._plain else None
        if key is not None and not conn.detect_types:  # (converters: a registry that may change)
            if len(_SHAPES) >= 512:
                _SHAPES.clear()
            _SHAPES[key] = self.description, self._shape

    def execute(self, sql: str, parameters: Iterable | dict = ()) -> Cursor:
        conn = self._ready(sql)
        dml = _checked_dml(sql)
        parameters = bind_parameters(parameters)
        if conn._setup.exclusive:
            conn._stay_fresh()
        if self._raw is not conn.raw:
            self._bind()
        if dml:
            conn._begin_if_needed()
            before = conn.raw.total_changes()
        self._described[0], self._described[1] = None, True
        was_in_transaction = conn.raw.in_transaction
        try:
            self._rows = self._cursor.execute(sql, parameters)
        except apsw.Error as exc:
            raise conn._failed(exc) from exc
        except KeyError as exc:
            raise _missing_binding(exc) from None
        self._describe()
        self.rowcount = conn.raw.total_changes() - before if dml else -1
        self.lastrowid = conn.raw.last_insert_rowid()
        if conn._setup.exclusive and (not self._described[1] or
                                       (was_in_transaction and not conn.raw.in_transaction)):
            conn._wrote()
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable) -> Cursor:
        conn = self._ready(sql)
        check_one_statement(sql)
        conn._fresh()
        if self._raw is not conn.raw:
            self._bind()
        dml = is_dml(sql)
        if dml:
            conn._begin_if_needed()
        before = conn.raw.total_changes()
        self._cursor.exec_trace = _refuse_read_only
        try:
            for _ in self._cursor.executemany(sql, bind_all(seq_of_parameters)):
                pass
        except apsw.ExecTraceAbort:
            raise ProgrammingError("executemany() can only execute DML statements.") from None
        except apsw.Error as exc:
            raise conn._failed(exc) from exc
        except KeyError as exc:
            raise _missing_binding(exc) from None
        finally:
            self._cursor.exec_trace = self._trace
        self.description, self._shape = None, None
        self._rows = iter(())
        self.rowcount = conn.raw.total_changes() - before if dml else -1
        conn._wrote_elsewhere()
        return self

    def executescript(self, sql_script: str) -> Cursor:
        conn = self._ready(sql_script)
        check_script(sql_script)
        conn.commit()
        conn._fresh()
        if self._raw is not conn.raw:
            self._bind()
        with conn._errors():
            for _ in self._cursor.execute(sql_script):
                pass
        self.description, self._shape, self._rows = None, None, iter(())
        conn._wrote_elsewhere()
        return self

    def fetchone(self):
        try:
            row = next(self._rows, None)
        except apsw.Error as exc:
            raise self.connection._failed(exc) from exc
        if row is None or self._shape is None:
            return row
        return self._shape(self, row)

    def fetchall(self) -> list:
        try:
            rows = list(self._rows)
        except apsw.Error as exc:
            raise self.connection._failed(exc) from exc
        if self._shape is None:
            return rows
        return [self._shape(self, row) for row in rows]

    def close(self) -> None:
        self._closed = True
        self._cursor.close(True)
