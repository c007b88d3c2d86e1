"""A lean sqllogictest runner for any PEP 249 (DB-API) connection.

Follows the reference implementation (sqllogictest.c + slt_sqlite.c, D. Richard Hipp)
in verify mode, with the database engine name ``sqlite``:

* A script is a sequence of records separated by blank lines.  Lines whose first
  character is ``#`` are comments and are skipped everywhere (even inside a record);
  trailing ``\\r`` is removed and an all-whitespace line counts as blank.
* ``skipif <db>`` / ``onlyif <db>`` lines may precede a record (compared
  case-insensitively with the engine name).  ``halt``, ``hash-threshold N``,
  ``statement ok|error``, ``query <types> [<sort> [<label>]]`` are the record kinds;
  an unknown record kind is an error that stops the file, as in the reference.
* Query values are rendered the way the reference SQLite driver renders them:
  ``NULL`` for NULL, and otherwise by the column's type letter, *whatever the value's
  storage class*:

  - ``I``: ``sqlite3_column_int`` then ``%d``: reals are truncated toward zero
    (clamped to int64), text is parsed for a leading integer (``'12abc'`` -> 12,
    ``'x'`` -> 0), and the int64 is then cut to its low 32 bits (signed).
  - ``R``: ``sqlite3_column_double`` then SQLite's ``%.3f``: integers become reals,
    text is parsed for a leading real, and rounding is half-up on the shortest
    decimal form of the double (SQLite prints ``0.0625`` as ``0.063`` and ``2.0005``
    as ``2.001``; C printf would give ``0.062`` and ``2.000``); ``-0.0`` prints as
    ``0.000``, infinities as ``Inf``/``-Inf``.
  - ``T``: ``sqlite3_column_text``: ``(empty)`` for an empty string, the text is cut at
    its first NUL, and every *byte* of its UTF-8 form outside ``' '..'~'`` becomes
    ``@`` (so a two-byte character gives ``@@``).  Integers print in decimal, reals
    as SQLite's classic ``%!.15g`` (``1.0``, ``1.0e+20``, ``0.333333333333333``).

* Sorting: ``nosort`` (or no sort word), ``rowsort`` (rows compared column by column
  as *strings*, i.e. on their rendered form: ``'10' < '9'``), ``valuesort`` (all values
  sorted individually).
* Hashing: the default hash threshold is **8** (``DEFAULT_HASH_THRESHOLD`` in
  sqllogictest.c); ``hash-threshold 0`` disables hashing.  A result with more values
  than the threshold is expected as ``N values hashing to <md5>``, the md5 of every
  value followed by ``\\n``.  A query with a label (4th token, first 20 characters
  significant) always has its hash computed, and every query with the same label in
  the file must produce the same hash -- also queries skipped by skipif/onlyif, whose
  *expected* text is hashed instead (as the reference does in verify mode).  Under the
  threshold, labelled results are still listed value by value.

Two deliberate differences from the reference, both stricter: the number of expected
values must equal the number of values returned (the reference stops comparing at the
shorter of the two), and a ``query`` without a ``----`` line expects no rows.

Statements run "autocommit style": each statement record is followed by
``conn.commit()`` (also after a failed one, so that what the engine kept -- e.g. the
first rows of an ``INSERT OR FAIL`` -- is committed, as in SQLite's autocommit mode).
A ``statement error`` record passes when execute (or fetching) raises the connection's
``Error`` class (``conn.Error`` when the driver provides it, else ``Exception``); any
other exception is reported as a failure.

Command line (stdlib :mod:`sqlite3`, in memory)::

    python -m dolite.testing.sqllogictest FILE_OR_DIR...
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import time
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = [
    "DEFAULT_HASH_THRESHOLD", "ENGINE", "Failure", "Record", "Result",
    "format_value", "parse", "parse_file", "run_file", "run_script",
]

ENGINE = "sqlite"
DEFAULT_HASH_THRESHOLD = 8
LABEL_CHARS = 20

# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


class Record:
    """One record of a script.

    ``kind`` is ``statement``, ``query``, ``hash-threshold``, ``halt`` or whatever the
    first token was (an unknown kind, reported when run).  ``line`` is the line number
    (1-based) of the record's command line (after any skipif/onlyif lines).
    """

    __slots__ = ("kind", "line", "conditions", "tokens", "sql", "expected")

    def __init__(self, kind: str, line: int, conditions: tuple, tokens: list[str],
                 sql: str = "", expected: list[str] | None = None):
        self.kind = kind
        self.line = line
        self.conditions = conditions  # (("skipif" or "onlyif", db), ...)
        self.tokens = tokens          # the command line split on whitespace, max 4
        self.sql = sql
        self.expected = expected      # query: lines after ----, None if no ---- line

    # Convenience accessors --------------------------------------------------------
    def token(self, i: int) -> str:
        return self.tokens[i] if i < len(self.tokens) else ""

    @property
    def types(self) -> str:
        return self.token(1)

    @property
    def sort(self) -> str:
        return self.token(2)

    @property
    def label(self) -> str:
        return self.token(3)[:LABEL_CHARS]

    def skipped_on(self, engine: str = ENGINE) -> bool:
        engine = engine.lower()
        for cond, db in self.conditions:
            match = db.lower() == engine
            if (cond == "skipif") == match:
                return True
        return False

    def __repr__(self) -> str:
        return f"Record({self.kind!r}, line={self.line}, tokens={self.tokens!r}, sql={self.sql!r})"


def parse(text: str) -> list[Record]:
    """Split a script into records (see the module docstring for the rules)."""
    records: list[Record] = []
    block: list[tuple[int, str]] = []
    lines = text.split("\n")
    n = len(lines)
    # A trailing newline does not make an extra (empty) line.
    if n and lines[-1] == "":
        n -= 1
    for i in range(n + 1):
        if i < n:
            line = lines[i]
            if line[-1:] == "\r":
                line = line[:-1]
            if line[:1] == "#":
                continue                      # comment: invisible everywhere
            if line and not line.isspace():
                block.append((i + 1, line))
                continue
        if block:
            records.append(_record(block))
            block = []
    return records


def _record(block: list[tuple[int, str]]) -> Record:
    conditions = []
    k = 0
    nb = len(block)
    while k < nb:
        tokens = block[k][1].split(None, 4)[:4]
        if tokens[0] in ("skipif", "onlyif"):
            conditions.append((tokens[0], tokens[1] if len(tokens) > 1 else ""))
            k += 1
            continue
        break
    else:
        # skipif/onlyif followed by a blank line: the reference reads an empty command.
        return Record("", block[-1][0] + 1, tuple(conditions), [""])
    lineno, _ = block[k]
    kind = tokens[0]
    rest = [text for _, text in block[k + 1:]]
    if kind == "statement":
        return Record(kind, lineno, tuple(conditions), tokens, "\n".join(rest))
    if kind == "query":
        try:
            sep = rest.index("----")
        except ValueError:
            return Record(kind, lineno, tuple(conditions), tokens, "\n".join(rest), None)
        return Record(kind, lineno, tuple(conditions), tokens, "\n".join(rest[:sep]), rest[sep + 1:])
    return Record(kind, lineno, tuple(conditions), tokens)


def parse_file(path: str | Path) -> list[Record]:
    data = Path(path).read_bytes()
    return parse(data.decode("utf-8", "surrogateescape"))


# --------------------------------------------------------------------------------------
# Value rendering (slt_sqlite.c semantics applied to Python values)
# --------------------------------------------------------------------------------------

_I64_MAX = (1 << 63) - 1
_I64_MIN = -(1 << 63)
_INT_PREFIX = re.compile(r"[ \t\n\v\f\r]*([+-]?)0*([0-9]*)")
_REAL_PREFIX = re.compile(
    r"[ \t\n\v\f\r]*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_THOUSANDTH = Decimal("0.001")
_HALF_THOUSANDTH = Decimal("0.0005")
_PRINTABLE = bytes(c if 32 <= c <= 126 else 64 for c in range(256))


def _atoi64(s: str) -> int:
    """sqlite3Atoi64: the leading integer of a text (0 if none), clamped to int64."""
    m = _INT_PREFIX.match(s)
    digits = m.group(2)
    if not digits:
        return 0
    v = int(digits[:20]) if len(digits) <= 20 else _I64_MAX + 1
    if m.group(1) == "-":
        v = -v
    return _I64_MAX if v > _I64_MAX else _I64_MIN if v < _I64_MIN else v


def _atof(s: str) -> float:
    """sqlite3AtoF: the leading real number of a text (0.0 if none)."""
    m = _REAL_PREFIX.match(s)
    if not m:
        return 0.0
    try:
        return float(m.group(1))
    except (ValueError, OverflowError):  # pragma: no cover - float() saturates to inf
        return 0.0


def _text_of(v: Any) -> str:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("latin-1")
    return str(v)


def _real_to_i64(r: float) -> int:
    """doubleToInt64: truncate toward zero, clamp to the int64 range."""
    if r <= -9223372036854775808.0:
        return _I64_MIN
    if r >= 9223372036854775807.0:
        return _I64_MAX
    if r != r:
        return 0
    return int(r)


def fmt_int(v: Any) -> str:
    """Render a non-NULL value for an ``I`` column (``%d`` of sqlite3_column_int)."""
    t = type(v)
    if t is not int:
        if t is float:
            v = _real_to_i64(v)
        elif isinstance(v, int):          # bool and int subclasses
            v = int(v)
        elif isinstance(v, float):
            v = _real_to_i64(float(v))
        else:
            v = _atoi64(_text_of(v))
    if -2147483648 <= v <= 2147483647:
        return str(v)
    # sqlite3_column_int returns the low 32 bits of the int64 value.
    v = max(_I64_MIN, min(_I64_MAX, v))
    return str(((v + 2147483648) & 0xFFFFFFFF) - 2147483648)


def fmt_real(v: Any) -> str:
    """Render a non-NULL value for an ``R`` column (SQLite's ``%.3f``)."""
    t = type(v)
    if t is not float:
        if isinstance(v, int):
            v = float(max(_I64_MIN, min(_I64_MAX, int(v))))
        elif isinstance(v, float):
            v = float(v)
        else:
            v = _atof(_text_of(v))
    if v == 0.0:
        return "0.000"                   # also -0.0: SQLite prints no sign for it
    s = repr(v)
    if "e" not in s and "n" not in s:    # plain d.ddd form (not inf/nan/exponent)
        dot = s.index(".")
        if len(s) - dot <= 4 and -1e13 < v < 1e13:  # <= 3 decimals, <= 16 digits: exact
            return s + "000"[: 4 - (len(s) - dot)]
    elif not math.isfinite(v):
        return "Inf" if v > 0 else "-Inf" if v < 0 else "NaN"
    # SQLite's printf (the classic algorithm that generated the corpus): add 0.0005 to
    # the magnitude, then emit at most 16 significant digits, truncating.  Working on
    # the shortest repr of the double reproduces it (checked against SQLite 3.40).
    d = abs(Decimal(s)) + _HALF_THOUSANDTH
    adjusted = d.adjusted()
    if adjusted >= 13:
        d = d.quantize(Decimal(1).scaleb(adjusted - 15), rounding=ROUND_DOWN)
        if adjusted >= 16:
            return f"{'-' if v < 0 else ''}{int(d)}.000"
    d = d.quantize(_THOUSANDTH, rounding=ROUND_DOWN)
    return f"{'-' if v < 0 else ''}{d:f}"


def real_to_text(r: float) -> str:
    """SQLite's classic text form of a REAL (``%!.15g``)."""
    if r == 0.0:
        return "0.0"
    if not math.isfinite(r):
        return "Inf" if r > 0 else "-Inf" if r < 0 else "NaN"
    s = "%.15g" % r
    if "e" in s:
        mant, exp = s.split("e")
        if "." not in mant:
            mant += ".0"
        return f"{mant}e{exp}"
    if "." not in s:
        s += ".0"
    return s


def fmt_text(v: Any) -> str:
    """Render a non-NULL value for a ``T`` column (sqlite3_column_text, ``@`` masking)."""
    t = type(v)
    if t is str:
        if v.isascii() and v.isprintable():
            return v if v else "(empty)"
        if "\x00" in v:
            v = v.split("\x00", 1)[0]
            if not v:
                return "(empty)"
        return v.encode("utf-8", "surrogatepass").translate(_PRINTABLE).decode("ascii")
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return real_to_text(float(v))
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v).split(b"\x00", 1)[0]
        return b.translate(_PRINTABLE).decode("ascii") if b else "(empty)"
    return fmt_text(str(v))


FORMATTERS: dict[str, Callable[[Any], str]] = {"I": fmt_int, "R": fmt_real, "T": fmt_text}


def format_value(v: Any, type_char: str) -> str:
    """Render one value as the reference runner would for a column of ``type_char``."""
    return "NULL" if v is None else FORMATTERS[type_char](v)


def format_rows(rows: Iterable, types: str, sort: str = "nosort") -> list[str]:
    """Render and sort a result set into the flat list of values the script lists."""
    fmts = [FORMATTERS[c] for c in types]
    if len(fmts) == 1:
        f = fmts[0]
        vals = [f(r[0]) if r[0] is not None else "NULL" for r in rows]
        if sort == "rowsort" or sort == "valuesort":
            vals.sort()
        return vals
    frows = [[f(v) if v is not None else "NULL" for f, v in zip(fmts, r)] for r in rows]
    if sort == "rowsort":
        frows.sort()
    vals = [v for r in frows for v in r]
    if sort == "valuesort":
        vals.sort()
    return vals


def hash_values(vals: list[str]) -> str:
    """md5 of every value followed by a newline (hex)."""
    if not vals:
        return hashlib.md5(b"").hexdigest()
    return hashlib.md5(("\n".join(vals) + "\n").encode("utf-8", "surrogateescape")).hexdigest()


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


def split_statements(sql: str) -> list[str]:
    """Split SQL text into complete statements (``;`` inside strings, comments and
    trigger bodies does not split), dropping empty ones."""
    from sqlite3 import complete_statement

    parts: list[str] = []
    start = 0
    i = sql.find(";")
    while i != -1:
        chunk = sql[start:i + 1]
        if complete_statement(chunk):
            if chunk.strip(" \t\r\n;"):
                parts.append(chunk)
            start = i + 1
        i = sql.find(";", i + 1)
    tail = sql[start:]
    if tail.strip():
        parts.append(tail)
    return parts


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


# --------------------------------------------------------------------------------------
# Command line: run files against stdlib sqlite3 in memory
# --------------------------------------------------------------------------------------


def _sqlite3_memory():
    import sqlite3

    return sqlite3.connect(":memory:", isolation_level=None)


def _expand(args: list[str]) -> list[Path]:
    out: list[Path] = []
    for a in args:
        p = Path(a)
        out.extend(sorted(p.rglob("*.test")) if p.is_dir() else [p])
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m dolite.testing.sqllogictest",
        description="Run sqllogictest files against stdlib sqlite3 (:memory:).")
    ap.add_argument("paths", nargs="+", help=".test files or folders (searched recursively)")
    ap.add_argument("--show", type=int, default=5, help="failures shown per file (default 5)")
    ap.add_argument("--ht", type=int, default=None, help="hash threshold override")
    args = ap.parse_args(argv)
    total = nfail = 0
    t0 = time.perf_counter()
    for path in _expand(args.paths):
        res = run_file(path, _sqlite3_memory, hash_threshold=args.ht)
        total += 1
        nfail += bool(res.failures)
        print(res.report(args.show) if res.failures else res.summary(), flush=True)
    print(f"{total} files, {nfail} with failures, {time.perf_counter() - t0:.2f}s")
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
