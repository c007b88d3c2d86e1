"""Running request SQL on a hosted connection, within bounds, all or nothing.

One entry is exactly one statement. A request runs as one transaction (BEGIN ... COMMIT,
rolled back on any error); inside a session, a request runs under the server's own
SAVEPOINT so that it too is all or nothing while the session's transaction stays open.
The one exception: a session request that is exactly one user ``SAVEPOINT`` / ``RELEASE``
/ ``ROLLBACK TO`` runs unwrapped (it changes no data, and the user's savepoint must
outlive the request); the authorizer keeps the server's savepoint name out of reach.

Connection settings a request may change (authorizer.REQUEST_SETTINGS) last as long as
the connection's transaction, that is one request or one session: they are put back
whenever the host's own transaction control finds the connection outside a transaction.
"""

from __future__ import annotations

import contextlib
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
from dolite.server.objects.authorizer import REQUEST_SETTINGS, SERVER_SAVEPOINT, Authorizer
from dolite.server.objects.deadline import deadline as request_deadline
from dolite.server.objects.metrics import COMMIT_SECONDS
from dolite.remote.wire import Statement, encode_value

# Whitespace, comments and semicolons only: APSW traces such a tail as a "statement".
_BLANK = re.compile(r"(?:\s|;|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*", re.DOTALL)
_ROW_JSON = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))
_LEAD = r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*"
_VACUUM = re.compile(_LEAD + r"VACUUM\b", re.IGNORECASE | re.DOTALL)
# Exactly one SAVEPOINT / RELEASE / ROLLBACK TO statement (then blanks, comments, ';').
_USER_SAVEPOINT = re.compile(
    _LEAD + r"(?:SAVEPOINT|RELEASE(?:\s+SAVEPOINT)?|ROLLBACK(?:\s+TRANSACTION)?\s+TO(?:\s+SAVEPOINT)?)\s+"
    r"(?:\w+|\"[^\"]*\"|'[^']*'|`[^`]*`|\[[^\]]*\])" + _BLANK.pattern, re.IGNORECASE | re.DOTALL)


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

    @staticmethod
    def cost(row: list) -> int:
        """The bytes the row takes in the answer (JSON, ASCII-escaped)."""
        return len(_ROW_JSON.encode(row)) + 1

    def charge(self, row: list, cost: int | None = None) -> None:
        self.left -= self.cost(row) if cost is None else cost
        if self.left < 0:
            raise ResultTooLarge(f"the result is over the limit of {self.limit} bytes: "
                                 "add a LIMIT or select fewer columns, or page it (page_rows) "
                                 "(nothing was changed)")


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


class _StatementRows:
    """One statement's rows on an APSW cursor of its own. Its exec trace lets exactly one
    statement run (a blank tail aside) and records the columns and whether it only reads."""

    def __init__(self, raw: apsw.Connection):
        self.cursor = raw.cursor()
        self.cursor.exec_trace = self._trace
        self.count, self.columns, self.readonly = 0, [], True
        self._rows = iter(())
        self._ahead: list | None = None  # a row read to learn that more remain (encoded)

    def _trace(self, cursor, sql, bindings) -> bool:
        if _BLANK.fullmatch(sql):
            return True  # nothing to run (a comment, a stray semicolon)
        self.count += 1
        if self.count > 1:
            return False
        try:
            self.columns = [d[0] for d in cursor.description]
        except apsw.ExecutionCompleteError:
            self.columns = []
        self.readonly = cursor.is_readonly
        return True

    def start(self, stmt: Statement) -> None:
        self._rows = self.cursor.execute(stmt.sql, stmt.params, can_cache=False)

    def take(self, budget: _Budget, limit: int | None) -> tuple[list[list], bool]:
        """Encoded rows until the statement ends or, for a page (``limit`` set), until
        ``limit`` rows or a full ``budget`` (one row at least). Returns them and whether
        rows remain."""
        rows: list[list] = []
        while (row := self._read()) is not None:
            cost = budget.cost(row)
            if limit is not None and rows and (len(rows) >= limit or cost > budget.left):
                self._ahead = row
                return rows, True
            budget.charge(row, cost)
            rows.append(row)
        return rows, False

    def _read(self) -> list | None:
        if self._ahead is not None:
            row, self._ahead = self._ahead, None
            return row
        raw = next(self._rows, None)
        return None if raw is None else [encode_value(v) for v in raw]

    def close(self) -> None:
        self.cursor.close(True)


class Runner:
    """Executes statements on one connection for its object."""

    def __init__(self, raw: apsw.Connection, auth: Authorizer, bounds: Bounds):
        self.raw = raw
        self.auth = auth
        self.bounds = bounds
        self._deadline = 0.0
        raw.limit(apsw.SQLITE_LIMIT_LENGTH, bounds.max_value_bytes)
        raw.set_progress_handler(self._progress, 1000)
        self._settings = {name: self._host(f"PRAGMA {name}")[0][0] for name in REQUEST_SETTINGS}
        self.control("PRAGMA temp_store=FILE")  # temporary data through the VFS, under a quota

    def _progress(self) -> bool:
        return self._deadline > 0 and time.monotonic() > self._deadline

    def _host(self, sql: str) -> list:
        """Run the host's own SQL, bypassing the authorizer."""
        self.auth.host_mode = True
        try:
            with dbapi.translate_errors():
                return self.raw.execute(sql).fetchall()
        finally:
            self.auth.host_mode = False

    def control(self, sql: str) -> None:
        """Run the host's own transaction statement, bypassing the authorizer. Outside a
        transaction (before or after it) the connection's settings are put back."""
        self._restore_settings()
        self._host(sql)
        self._restore_settings()

    def _restore_settings(self) -> None:
        """Put back the settings requests changed, once no transaction is open (the one
        request's or session's that changed them has ended, however it ended)."""
        if self.raw.in_transaction or not self.auth.changed:
            return
        for name in sorted(self.auth.changed):
            self._host(f"PRAGMA {name} = {int(self._settings[name])}")
        self.auth.changed.clear()

    def run(self, statements: list[Statement], *, read_only: bool, batch: bool,
            in_session: bool = False) -> tuple[list[dict], bool]:
        """Run ``statements`` as one unit. Returns their results and whether anything was
        written. On any error, nothing of this request is kept, and the error (a
        :class:`dolite.errors.Error`, or a bug) is raised."""
        self.auth.read_only = read_only
        budget = _Budget(self.bounds.max_result_bytes)
        if not batch and not in_session and _VACUUM.match(statements[0].sql):
            return self._unwrapped(statements[0], budget, vacuum=True)
        if not batch and in_session and _USER_SAVEPOINT.fullmatch(statements[0].sql):
            return self._unwrapped(statements[0], budget, vacuum=False)
        self.control(f"SAVEPOINT {SERVER_SAVEPOINT}" if in_session else "BEGIN")
        results, wrote = [], False
        try:
            for i, stmt in enumerate(statements):
                result, changed = self._one(stmt, budget, i if batch else None)
                results.append(result)
                wrote = wrote or changed
        except BaseException:
            if in_session:
                self.control(f"ROLLBACK TO {SERVER_SAVEPOINT}")
                self.control(f"RELEASE {SERVER_SAVEPOINT}")
            elif self.raw.in_transaction:
                self.control("ROLLBACK")
            raise
        if in_session:
            self.control(f"RELEASE {SERVER_SAVEPOINT}")
        else:
            self._commit(wrote)
        return results, wrote

    def _unwrapped(self, stmt: Statement, budget: _Budget, vacuum: bool) -> tuple[list[dict], bool]:
        """A plain VACUUM (it runs its own transaction) or, in a session, the user's own
        SAVEPOINT / RELEASE / ROLLBACK TO (the savepoint must outlive the request): neither
        changes data part way, so neither needs the server's wrapping."""
        self.auth.allow_savepoint = not vacuum
        try:
            result, wrote = self._one(stmt, budget, None, vacuum)
        except BaseException:
            if vacuum and self.raw.in_transaction:
                self.control("ROLLBACK")
            raise
        finally:
            self.auth.allow_savepoint = False
        return [result], wrote

    def _commit(self, wrote: bool) -> None:
        started = time.perf_counter()
        try:
            self.control("COMMIT")
        except BaseException:
            if self.raw.in_transaction:
                self.control("ROLLBACK")
            raise
        if wrote:
            COMMIT_SECONDS.observe(time.perf_counter() - started)

    @contextlib.contextmanager
    def _guarded(self, index: int | None):
        """Run the block as (part of) one statement: under its time limit, any error
        turned into the error to answer."""
        self.auth.denied = None
        self._deadline = min(time.monotonic() + self.bounds.statement_seconds, request_deadline())
        try:
            with dbapi.translate_errors():
                yield
        except BaseException as exc:
            raise _statement_error(exc, self.auth, index, self._progress()) from exc
        finally:
            self._deadline = 0.0

    def _one(self, stmt: Statement, budget: _Budget, index: int | None, vacuum: bool = False) -> tuple[dict, bool]:
        self.auth.allow_vacuum = vacuum
        statement = _StatementRows(self.raw)
        before = self.raw.total_changes()
        started = time.perf_counter()
        try:
            with self._guarded(index):
                statement.start(stmt)
                rows, _ = statement.take(budget, None)
        finally:
            self.auth.allow_vacuum = False
            statement.close()
        if statement.count == 0:
            raise _statement_error(EmptyStatement("the SQL holds no statement (only comments?)"),
                                   self.auth, index, False)
        changed = self.raw.total_changes() - before
        return _result(statement, rows, started, self.raw.changes() if changed else 0,
                       self.raw.last_insert_rowid()), not statement.readonly

    # -- a statement read a page at a time (on a read session: its snapshot stays put) --

    def open_paged(self, stmt: Statement) -> _StatementRows:
        """Start ``stmt`` (reading only) and keep it open for :meth:`page`. Only on a
        connection whose read transaction stays open meanwhile (a read session's)."""
        self.auth.read_only = True
        statement = _StatementRows(self.raw)
        try:
            with self._guarded(None):
                statement.start(stmt)
            if statement.count == 0:
                raise _statement_error(EmptyStatement("the SQL holds no statement (only comments?)"),
                                       self.auth, None, False)
        except BaseException:
            statement.close()
            raise
        return statement

    def page(self, statement: _StatementRows, page_rows: int) -> tuple[dict, bool]:
        """The next at most ``page_rows`` rows of ``statement`` (fewer if the result
        budget fills first), and whether rows remain."""
        started = time.perf_counter()
        with self._guarded(None):
            rows, more = statement.take(_Budget(self.bounds.max_result_bytes), page_rows)
        return _result(statement, rows, started, 0, self.raw.last_insert_rowid()), more


def _result(statement: _StatementRows, rows: list[list], started: float, changed: int, rowid: int) -> dict:
    return {
        "columns": statement.columns,
        "rows": rows,
        "rows_changed": changed,
        "last_insert_rowid": rowid,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }
