"""What both DB-API drivers (local :mod:`dolite.sql.dbapi`, HTTP :mod:`dolite.remote.httpdbapi`)
share: the PEP 249 exceptions (from :mod:`dolite.errors`) and globals, statement helpers,
and the parts of the connection and cursor that do not depend on how statements are run.
Needs no APSW (statement completeness is SQLite's own test, through :mod:`sqlite3`)."""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Iterator

from dolite.errors import (  # the PEP 249 exceptions live in the one error tree
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
)

apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"


_DML = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(INSERT|UPDATE|DELETE|REPLACE)\b", re.I | re.S)


@functools.lru_cache(maxsize=512)
def is_dml(sql: str) -> bool:
    """Whether ``sql`` starts with INSERT/UPDATE/DELETE/REPLACE (sqlite3's implicit-BEGIN rule)."""
    return bool(_DML.match(sql))


def split_statements(script: str) -> list[str]:
    """The complete statements of a SQL script, in order (semicolons inside strings,
    comments and trigger bodies are respected: SQLite's own completeness test decides)."""
    out, current = [], ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \t\r\n;"):
                out.append(current.strip())
            current = ""
    if current.strip(" \t\r\n;"):
        out.append(current.rstrip(";").strip())
    return out


class CursorBase:
    """Iteration and the no-op parts of a PEP 249 cursor; subclasses execute and fetch."""

    arraysize = 1

    def fetchone(self) -> tuple | None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        size = self.arraysize if size is None else size
        out = []
        while len(out) < size and (row := self.fetchone()) is not None:
            out.append(row)
        return out

    def __iter__(self) -> Iterator[tuple]:
        return self

    def __next__(self) -> tuple:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def setinputsizes(self, sizes) -> None:
        pass

    def setoutputsize(self, size, column=None) -> None:
        pass


class FetchedRows(CursorBase):
    """A cursor over rows already held in memory (a shard's or a server's whole answer)."""

    def __init__(self, rows: list[tuple]):
        self._rows, self._next = rows, 0

    def fetchone(self) -> tuple | None:
        rows = self.fetchmany(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        size = self.arraysize if size is None else size
        rows = self._rows[self._next:self._next + size]
        self._next += len(rows)
        return rows

    def fetchall(self) -> list[tuple]:
        rows = self._rows[self._next:]
        self._next = len(self._rows)
        return rows

    def close(self) -> None:
        self._rows, self._next = [], 0


class CommitOnExit:
    """``with x:`` commits ``x`` when the block ends normally, else rolls it back (sqlite3's
    connection, a cluster transaction)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


class ConnectionBase(CommitOnExit):
    """The shortcuts and context-manager behaviour of sqlite3's connection."""

    Error, DatabaseError, OperationalError, IntegrityError = Error, DatabaseError, OperationalError, IntegrityError
    ProgrammingError, DataError, InternalError, NotSupportedError = (
        ProgrammingError, DataError, InternalError, NotSupportedError)
    InterfaceError, Warning = InterfaceError, Warning

    def cursor(self):  # pragma: no cover - always overridden
        raise NotImplementedError

    def commit(self) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def rollback(self) -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def execute(self, sql: str, parameters: Iterable | dict = ()):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable):
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql: str):
        return self.cursor().executescript(sql)

