"""Results of statements run on shards, held in memory (a shard's connection goes back to
its pool as soon as the statement ran), and the mapping of lock waits to Conflict."""

from __future__ import annotations

from collections.abc import Iterator

from dolite.errors import Conflict, DoliteError
from dolite.sql import dbapi


class Result:
    """A cursor-like, fully fetched result: ``fetchone``, ``fetchmany``, ``fetchall``,
    iteration, ``description``, ``rowcount``, ``lastrowid``."""

    arraysize = 1

    def __init__(self, rows: list[tuple], description, rowcount: int, lastrowid: int | None):
        self._rows = rows
        self._next = 0
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> tuple | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        size = self.arraysize if size is None else size
        rows = self._rows[self._next:self._next + size]
        self._next += len(rows)
        return rows

    def fetchall(self) -> list[tuple]:
        rows = self._rows[self._next:]
        self._next = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple]:
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        self._rows, self._next = [], 0


def run(conn: dbapi.Connection, sql: str, parameters=()) -> Result:
    """Run ``sql`` on ``conn`` and fetch everything. A lock wait that timed out (another
    transaction holds the shard) is a :class:`Conflict`: the caller retries."""
    try:
        cursor = conn.execute(sql, parameters)
        rows = cursor.fetchall()
    except dbapi.OperationalError as exc:
        if not isinstance(exc, DoliteError) and "locked" in str(exc):
            raise Conflict(f"database {conn.name!r} is held by another transaction: {exc} (retry)") from exc
        raise
    return Result(rows, cursor.description, cursor.rowcount, cursor.lastrowid)
