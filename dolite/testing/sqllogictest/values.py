"""Rendering result values the way the reference sqllogictest SQLite driver does."""

from __future__ import annotations

import hashlib
import math
import re
from decimal import ROUND_DOWN, Decimal
from typing import Any, Callable, Iterable

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


