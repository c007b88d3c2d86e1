"""Running parsed records against a DB-API connection and comparing results."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dolite.sql.pep249 import split_statements  # one splitter for every driver and runner
from dolite.testing.sqllogictest.parse import (
    DEFAULT_HASH_THRESHOLD,
    ENGINE,
    Record,
    parse,
    parse_file,
)
from dolite.testing.sqllogictest.values import format_rows, hash_values

# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


@dataclass
class Failure:
    path: str
    line: int
    message: str
    sql: str = ""
    expected: str = ""
    got: str = ""

    def __str__(self) -> str:
        out = [f"{self.path}:{self.line}: {self.message}"]
        if self.sql:
            out.append("  sql: " + self.sql.replace("\n", "\n       "))
        if self.expected or self.got:
            out.append(f"  expected: {self.expected}")
            out.append(f"  got:      {self.got}")
        return "\n".join(out)


@dataclass
class Result:
    path: str
    run: int = 0            # statements and queries executed
    skipped: int = 0        # records skipped by skipif/onlyif
    failures: list[Failure] = field(default_factory=list)
    halted: bool = False    # a halt record (or a fatal script error) stopped the file
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        return (f"{self.path}: {len(self.failures)} failures, {self.run} run, "
                f"{self.skipped} skipped, {self.seconds:.2f}s")

    def report(self, limit: int = 5) -> str:
        lines = [self.summary()]
        for f in self.failures[:limit]:
            lines.append(str(f))
        if len(self.failures) > limit:
            lines.append(f"... and {len(self.failures) - limit} more failures")
        return "\n".join(lines)


def _show(vals: list[str] | None, limit: int = 12) -> str:
    if vals is None:
        return "(no ---- section)"
    if len(vals) <= limit:
        return repr(vals)
    return repr(vals[:limit])[:-1] + f", ... ({len(vals)} values)]"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


_HASH_LINE = re.compile(r"\s*[+-]?\d+ values hashing to (\S{1,32})")


def run_script(text: str, connect: Callable[[], Any], *, path: str = "<script>",
               engine: str = ENGINE, hash_threshold: int | None = None,
               error_types: type[BaseException] | tuple | None = None) -> Result:
    """Run script text against a fresh connection from ``connect()``.

    ``hash_threshold`` overrides the script's hash-threshold records (like ``-ht``).
    ``error_types`` are the exceptions a ``statement error`` accepts (default: the
    connection's ``Error`` attribute if it has one, else ``Exception``).
    """
    return _run(parse(text), connect, path, engine, hash_threshold, error_types)


def run_file(path: str | Path, connect: Callable[[], Any], *, engine: str = ENGINE,
             hash_threshold: int | None = None,
             error_types: type[BaseException] | tuple | None = None) -> Result:
    """Run one .test file against a fresh connection from ``connect()``."""
    return _run(parse_file(path), connect, str(path), engine, hash_threshold, error_types)


def _run(records: list[Record], connect, path, engine, ht_override, error_types) -> Result:
    t0 = time.perf_counter()
    res = Result(path)
    failures = res.failures
    threshold = DEFAULT_HASH_THRESHOLD if ht_override is None else ht_override
    labels: dict[str, str] = {}

    def fail(rec, message, expected="", got=""):
        failures.append(Failure(path, rec.line, message, rec.sql, expected, got))

    def check_label(rec, digest):
        label = rec.label
        prev = labels.setdefault(label, digest)
        if prev != digest:
            fail(rec, f"labeled result [{label}] does not agree with previous values",
                 f"hash {prev}", f"hash {digest}")

    conn = connect()
    if error_types is None:
        error_types = getattr(conn, "Error", None)
        if not (isinstance(error_types, type) and issubclass(error_types, BaseException)):
            error_types = Exception
    try:
        cur = conn.cursor()
        execute = cur.execute
        for rec in records:
            kind = rec.kind
            if rec.conditions and rec.skipped_on(engine):
                res.skipped += 1
                if kind == "query" and len(rec.tokens) > 3 and rec.expected:
                    # Verify mode: a skipped labelled query still pins its label's hash.
                    m = _HASH_LINE.match(rec.expected[0])
                    check_label(rec, m.group(1) if m else hash_values(rec.expected))
                continue

            if kind == "statement":
                mode = rec.token(1)
                if mode not in ("ok", "error"):
                    fail(rec, "statement argument should be 'ok' or 'error'")
                res.run += 1
                sql = rec.sql
                body = sql.rstrip()
                if ";" in body[:-1]:
                    # sqlite3_exec semantics: run each statement in turn, stop at the
                    # first error (each one autocommitted).
                    pieces = split_statements(sql)
                    for piece in pieces[:-1]:
                        if not _exec_statement(rec, piece, mode, execute, conn, error_types, fail,
                                               last=False):
                            break
                    else:
                        _exec_statement(rec, pieces[-1] if pieces else "", mode, execute, conn,
                                        error_types, fail, last=True)
                else:
                    _exec_statement(rec, sql, mode, execute, conn, error_types, fail, last=True)

            elif kind == "query":
                types = rec.types
                if not types:
                    fail(rec, "missing type string")
                    res.halted = True
                    break
                bad = next((c for c in types if c not in "TIR"), None)
                if bad is not None:
                    fail(rec, f"unknown type character {bad!r} in type string")
                    continue
                res.run += 1
                sql = rec.sql
                if ";" in sql.rstrip()[:-1]:
                    # sqlite3_prepare_v2 compiles the first statement only.
                    sql = (split_statements(sql) or [""])[0]
                runtime_error = None
                try:
                    execute(sql)
                    desc = cur.description
                    rows = cur.fetchall() if desc else []
                except Exception as exc:
                    # The reference driver only fails a query that does not prepare; an
                    # error while stepping just ends the rows (sqlite3_step's return code
                    # is not checked).  EXPLAIN tells the two apart without running it.
                    # Exceptions that are not database errors always fail.
                    if not isinstance(exc, error_types) or not _prepares(cur, sql):
                        fail(rec, "query failed", _show(rec.expected), _describe(exc))
                        continue
                    desc, rows, runtime_error = None, [], exc
                ncol = len(types) if runtime_error is not None else len(desc) if desc else 0
                if ncol != len(types):
                    why = " (cursor.description is None)" if not desc else ""
                    fail(rec, f"wrong number of result columns: expected {len(types)} "
                              f"but got {ncol}{why}", _show(rec.expected), _show(
                                  format_rows(rows, "T" * ncol) if ncol else []))
                    continue
                sort = rec.sort
                if sort not in ("", "nosort", "rowsort", "valuesort"):
                    fail(rec, f"unknown sort method: {sort!r}")
                vals = format_rows(rows, types, sort)
                nvals = len(vals)
                expected = rec.expected if rec.expected is not None else []
                hashed = threshold > 0 and nvals > threshold
                if hashed or len(rec.tokens) > 3:
                    digest = hash_values(vals)
                    if len(rec.tokens) > 3:
                        check_label(rec, digest)
                    if hashed:
                        got = f"{nvals} values hashing to {digest}"
                        if expected != [got]:
                            msg = "wrong result hash"
                            if runtime_error is not None:
                                msg += f" [the query stopped with {_describe(runtime_error)}]"
                            fail(rec, msg, _show(expected), got)
                        continue
                if vals != expected:
                    if len(vals) != len(expected):
                        msg = f"wrong number of values: expected {len(expected)}, got {nvals}"
                    else:
                        i = next(i for i, (a, b) in enumerate(zip(vals, expected)) if a != b)
                        msg = f"wrong result (first difference at value {i}: " \
                              f"expected {expected[i]!r}, got {vals[i]!r})"
                    if runtime_error is not None:
                        msg += f" [the query stopped with {_describe(runtime_error)}]"
                    fail(rec, msg, _show(expected), _show(vals))

            elif kind == "hash-threshold":
                if ht_override is None:
                    threshold = _atoi(rec.token(1))
            elif kind == "halt":
                res.halted = True
                break
            else:
                fail(rec, f"unknown record type: {kind!r}")
                res.halted = True
                break
    finally:
        try:
            conn.close()
        except Exception:
            pass
        res.seconds = time.perf_counter() - t0
    return res


def _exec_statement(rec, sql, mode, execute, conn, error_types, fail, last) -> bool:
    """Run one statement of a statement record; return True if it succeeded.

    ``last``: this is the record's final statement, where a success is checked against
    ``statement error``.
    """
    try:
        execute(sql)
    except error_types as exc:
        if mode == "ok":
            fail(rec, "statement failed", "success", _describe(exc))
        try:
            conn.commit()
        except Exception:
            try:
                conn.rollback()
            except Exception:
                pass
        return False
    except Exception as exc:
        fail(rec, "statement raised an exception that is not a database error",
             "success" if mode == "ok" else "a database error", _describe(exc))
        try:
            conn.rollback()
        except Exception:
            pass
        return False
    if last and mode == "error":
        fail(rec, "statement succeeded but an error was expected", "error", "success")
    try:
        conn.commit()
    except Exception as exc:
        fail(rec, "commit failed", "success", _describe(exc))
        return False
    return True


def _prepares(cur, sql: str) -> bool:
    """Whether ``sql`` compiles, checked with EXPLAIN (which does not run it)."""
    try:
        cur.execute("EXPLAIN " + sql)
        cur.fetchall()
    except Exception:
        return False
    return True


def _atoi(s: str) -> int:
    m = re.match(r"\s*([+-]?\d+)", s)
    return int(m.group(1)) if m else 0


