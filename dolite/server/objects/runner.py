"""Running request SQL on a hosted connection, within bounds, all or nothing.

One entry is exactly one statement. A request runs as one transaction (BEGIN ... COMMIT,
rolled back on any error); inside a session, a request runs under a SAVEPOINT so that it
too is all or nothing while the session's transaction stays open.
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass

import apsw

from dolite.sql import dbapi
from dolite.errors import (
    EmptyStatement,
    Error,
    MultipleStatements,
    RequestError,
    ResultTooLarge,
    TimeLimit,
    WireError,
    error_from_code,
)
from dolite.server.objects.authorizer import Authorizer
from dolite.server.objects.deadline import deadline as request_deadline
from dolite.server.objects.metrics import COMMIT_SECONDS
from dolite.remote.wire import Statement, encode_value

# Whitespace, comments and semicolons only: APSW traces such a tail as a "statement".
_BLANK = re.compile(r"(?:\s|;|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*", re.DOTALL)
_ROW_JSON = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))
_VACUUM = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*VACUUM\b", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Bounds:
    """Per-request limits."""

    max_statements: int = 1000
    max_result_bytes: int = 8 << 20
    statement_seconds: float = 10.0
    max_value_bytes: int = 16 << 20  # SQLITE_LIMIT_LENGTH: largest string or blob
    max_temp_bytes: int = 64 << 20   # temporary files of one connection (see memory.py)


class _Budget:
    def __init__(self, limit: int):
        self.left = limit
        self.limit = limit

    def charge(self, row: list) -> None:
        """Count the row as the bytes it takes in the answer (JSON, ASCII-escaped)."""
        self.left -= len(_ROW_JSON.encode(row)) + 1
        if self.left < 0:
            raise ResultTooLarge(f"the result is over the limit of {self.limit} bytes: "
                                 "add a LIMIT or select fewer columns (nothing was changed)")


def _statement_error(exc: BaseException, auth: Authorizer, index: int | None, timed_out: bool) -> Error:
    """The error to answer for ``exc`` from statement ``index``: SQL errors and refusals,
    named by their class's code; a dolite storage error (conflict, lease, storage) as is."""
    where = "" if index is None else f"batch[{index}]: "
    if auth.denied is not None:
        code, message = auth.denied
        return error_from_code(code, where + message)
    if isinstance(exc, RequestError):
        return _prefixed(exc, where)
    root = exc.__cause__ if isinstance(exc, dbapi.Error) and exc.__cause__ is not None else exc
    if timed_out:
        return TimeLimit(f"{where}the statement ran over the time limit and was interrupted")
    if isinstance(root, apsw.ExecTraceAbort):
        return MultipleStatements(f"{where}an entry holds exactly one statement: send several as a batch")
    if isinstance(exc, (UnicodeError, OverflowError, TypeError, ValueError)) and not isinstance(exc, Error):
        return WireError(f"{where}{exc}")
    if isinstance(exc, WireError) or type(exc) in _SQL_ERRORS:
        return _prefixed(exc, where)
    raise exc  # a storage error (conflict, lease, storage) or a bug: the caller handles it


_SQL_ERRORS = frozenset({dbapi.DatabaseError, dbapi.DataError, dbapi.OperationalError, dbapi.IntegrityError,
                         dbapi.InternalError, dbapi.ProgrammingError, dbapi.NotSupportedError})


def _prefixed(exc: Error, where: str) -> Error:
    """A copy of ``exc`` whose message starts with ``where``."""
    error = copy.copy(exc)
    error.args = (where + str(exc),)
    return error


class Runner:
    """Executes statements on one connection for its object."""

    def __init__(self, raw: apsw.Connection, auth: Authorizer, bounds: Bounds):
        self.raw = raw
        self.auth = auth
        self.bounds = bounds
        self._deadline = 0.0
        raw.limit(apsw.SQLITE_LIMIT_LENGTH, bounds.max_value_bytes)
        raw.set_progress_handler(self._progress, 1000)
        self.control("PRAGMA temp_store=FILE")  # temporary data through the VFS, under a quota

    def _progress(self) -> bool:
        return self._deadline > 0 and time.monotonic() > self._deadline

    def control(self, sql: str) -> None:
        """Run the host's own transaction statement, bypassing the authorizer."""
        self.auth.host_mode = True
        try:
            with dbapi.translate_errors():
                self.raw.execute(sql)
        finally:
            self.auth.host_mode = False

    def run(self, statements: list[Statement], *, read_only: bool, batch: bool,
            in_session: bool = False) -> tuple[list[dict], bool]:
        """Run ``statements`` as one unit. Returns their results and whether anything was
        written. On any error, nothing of this request is kept, and the error (a
        :class:`dolite.errors.Error`, or a bug) is raised."""
        self.auth.read_only = read_only
        budget = _Budget(self.bounds.max_result_bytes)
        single_vacuum = not batch and not in_session and bool(_VACUUM.match(statements[0].sql))
        wrap = "SAVEPOINT dolite_request" if in_session else ("" if single_vacuum else "BEGIN")
        if wrap:
            self.control(wrap)
        results, wrote = [], False
        try:
            for i, stmt in enumerate(statements):
                result, changed = self._one(stmt, budget, i if batch else None, single_vacuum)
                results.append(result)
                wrote = wrote or changed
        except BaseException:
            if in_session:
                self.control("ROLLBACK TO dolite_request")
                self.control("RELEASE dolite_request")
            elif self.raw.in_transaction:
                self.control("ROLLBACK")
            raise
        if in_session:
            self.control("RELEASE dolite_request")
        elif wrap:
            started = time.perf_counter()
            try:
                self.control("COMMIT")
            except BaseException:
                if self.raw.in_transaction:
                    self.control("ROLLBACK")
                raise
            if wrote:
                COMMIT_SECONDS.observe(time.perf_counter() - started)
        return results, wrote

    def _one(self, stmt: Statement, budget: _Budget, index: int | None, vacuum: bool) -> tuple[dict, bool]:
        state = {"count": 0, "columns": [], "readonly": True}

        def trace(cursor, sql, bindings) -> bool:
            if _BLANK.fullmatch(sql):
                return True  # nothing to run (a comment, a stray semicolon)
            state["count"] += 1
            if state["count"] > 1:
                return False
            try:
                state["columns"] = [d[0] for d in cursor.description]
            except apsw.ExecutionCompleteError:
                state["columns"] = []
            state["readonly"] = cursor.is_readonly
            return True

        self.auth.denied = None
        self.auth.allow_vacuum = vacuum
        cursor = self.raw.cursor()
        cursor.exec_trace = trace
        before = self.raw.total_changes()
        started = time.perf_counter()
        self._deadline = min(time.monotonic() + self.bounds.statement_seconds, request_deadline())
        rows: list[list] = []
        try:
            with dbapi.translate_errors():
                for row in cursor.execute(stmt.sql, stmt.params, can_cache=False):
                    encoded = [encode_value(v) for v in row]
                    budget.charge(encoded)
                    rows.append(encoded)
        except BaseException as exc:
            timed_out = self._progress()
            raise _statement_error(exc, self.auth, index, timed_out) from exc
        finally:
            self._deadline = 0.0
            self.auth.allow_vacuum = False
            cursor.close(True)
        if state["count"] == 0:
            raise _statement_error(EmptyStatement("the SQL holds no statement (only comments?)"),
                                   self.auth, index, False)
        changed = self.raw.total_changes() - before
        return {
            "columns": state["columns"],
            "rows": rows,
            "rows_changed": self.raw.changes() if changed else 0,
            "last_insert_rowid": self.raw.last_insert_rowid(),
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }, not state["readonly"]
