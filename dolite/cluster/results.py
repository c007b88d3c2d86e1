"""Results of statements run on shards, held in memory (a shard's connection goes back to
its pool as soon as the statement ran), and the mapping of lock waits to Conflict."""

from __future__ import annotations

from dolite.errors import Conflict, DoliteError
from dolite.sql import dbapi
from dolite.sql.pep249 import FetchedRows


class Result(FetchedRows):
    """A cursor-like, fully fetched result: ``fetchone``, ``fetchmany``, ``fetchall``,
    iteration, ``description``, ``rowcount``, ``lastrowid``."""

    def __init__(self, rows: list[tuple], description, rowcount: int, lastrowid: int | None):
        super().__init__(rows)
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid


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
