"""How ``dolite shell`` prints a result, mode by mode, the way the sqlite3 CLI does.

Values are shown as sqlite3 shows them: NULL as the ``.nullvalue`` text (empty by
default), a BLOB as its bytes read as text up to the first NUL byte (csv and json too);
``.mode quote``-style literals are not offered. Table and box borders are drawn by rich.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table

MODES = ("box", "table", "list", "csv", "json", "line")


@dataclass
class Style:
    """The shell's output settings (``.mode``, ``.headers``, ``.nullvalue``)."""

    mode: str = "list"
    headers: bool = False
    nullvalue: str = ""


def text(value, nullvalue: str = "") -> str:
    """``value`` as sqlite3's text modes print it."""
    if value is None:
        return nullvalue
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("utf-8", "replace")
    if isinstance(value, float):
        return _real(value)
    return str(value)


def _real(value: float) -> str:
    """A REAL as SQLite prints it (``%!.15g``: always a decimal point, ``Inf``)."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"inf": "Inf", "-inf": "-Inf"}.get(repr(value), "NaN")
    mantissa, e, exponent = f"{value:.15g}".partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + e + exponent


def render(out: TextIO, style: Style, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    """Print ``rows`` under ``columns`` to ``out`` in ``style.mode``."""
    {"box": _boxed, "table": _boxed, "list": _list, "csv": _csv, "json": _json, "line": _line}[style.mode](
        out, style, columns, rows)


def _boxed(out: TextIO, style: Style, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    table = Table(*columns, box=box.SQUARE if style.mode == "box" else box.ASCII, header_style="bold",
                  show_edge=True)
    for row in rows:
        table.add_row(*(text(v, style.nullvalue) for v in row))
    console = Console(file=out, width=1 << 14, highlight=False, markup=False, emoji=False,
                      force_terminal=None, soft_wrap=True)
    console.print(table, markup=False)


def _list(out: TextIO, style: Style, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    if style.headers:
        out.write("|".join(columns) + "\n")
    for row in rows:
        out.write("|".join(text(v, style.nullvalue) for v in row) + "\n")


def _csv(out: TextIO, style: Style, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    if style.headers:
        writer.writerow(columns)
    for row in rows:
        writer.writerow(text(v, style.nullvalue) for v in row)


def _json(out: TextIO, style: Style, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    def plain(value):
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

    objects = [json.dumps(dict(zip(columns, map(plain, row))), ensure_ascii=False, separators=(",", ":"))
               for row in rows]
    if objects:
        out.write("[" + ",\n".join(objects) + "]\n")


def _line(out: TextIO, style: Style, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    width = max((len(c) for c in columns), default=0)
    for i, row in enumerate(rows):
        if i:
            out.write("\n")
        for column, value in zip(columns, row):
            out.write(f"{column:>{width}} = {text(value, style.nullvalue)}\n")
