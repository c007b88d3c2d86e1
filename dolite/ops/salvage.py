"""Salvage: every row of a damaged stored database that can still be read, into a new
SQLite file.

Tables are copied one by one in rowid order, through SQL. Where a read fails, the rowid
range under the damaged b-tree page (found by walking the trees, see
:mod:`dolite.ops.damage`) is skipped and reading resumes after it. Indexes, views and
triggers are created after the data, so damaged indexes lose nothing (they are rebuilt
from the rows) and triggers do not fire during the copy. The file appears only once
complete.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from dolite.errors import DoliteError
from dolite.names import validate_name
from dolite.ops.btree import Tree
from dolite.ops.files import atomic_path
from dolite.storage import Namespace, open_storage

BATCH = 500


@dataclass
class TableSalvage:
    """What was saved of one table."""

    name: str
    rows: int = 0
    lost: list[tuple[int | None, int | None]] = field(default_factory=list)  # rowid (lo, hi]
    error: str | None = None  # why copying stopped early, if it did


@dataclass
class SalvageReport:
    tables: list[TableSalvage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # schema objects not recreated, and why

    @property
    def complete(self) -> bool:
        return not self.skipped and all(not t.lost and t.error is None for t in self.tables)


def salvage(storage: str | Namespace, name: str, dest) -> SalvageReport:
    """Copy every readable row of database ``name`` into a new SQLite file ``dest``."""
    from dolite.ops.admin import _store, read_schema
    from dolite.ops.damage import map_damage
    from dolite.sql.dbapi import connect

    validate_name(name)
    namespace = open_storage(storage)
    store = _store(namespace, name)
    roots, schema_error = read_schema(namespace, name)
    if roots is None:
        raise SalvageImpossible(f"{name}: the schema cannot be read, so no table can be found: {schema_error}")
    damage = map_damage(store, store.read_head(), roots)
    source = connect(name, storage=namespace, create=False)
    report = SalvageReport()
    try:
        schema = source.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema "
                                "WHERE sql IS NOT NULL ORDER BY rowid").fetchall()
        with atomic_path(dest) as temp:
            out = sqlite3.connect(temp, isolation_level=None)
            try:
                out.execute("BEGIN")
                for kind, obj, _, sql in schema:
                    if kind == "table":
                        report.tables.append(_copy_table(source, out, obj, sql, damage.tree(obj), report))
                for kind, obj, _, sql in schema:
                    if kind != "table":
                        _create(out, obj, sql, report)
                out.execute("COMMIT")
            finally:
                out.close()
    finally:
        source.close()
    return report


class SalvageImpossible(DoliteError):
    """Nothing can be salvaged (the schema itself is unreadable)."""


def _create(out: sqlite3.Connection, obj: str, sql: str, report: SalvageReport) -> bool:
    try:
        out.execute(sql)
        return True
    except sqlite3.Error as exc:
        report.skipped.append(f"{obj}: {exc}")
        return False


def _copy_table(source, out: sqlite3.Connection, table: str, sql: str, tree: Tree | None,
                report: SalvageReport) -> TableSalvage:
    saved = TableSalvage(table)
    if table.startswith("sqlite_") or sql.upper().startswith("CREATE VIRTUAL"):
        report.skipped.append(f"{table}: internal or virtual table, not copied")
        return saved
    if not _create(out, table, sql, report):
        return saved
    columns = [row[1] for row in source.execute(f"PRAGMA table_xinfo({_quote(table)})").fetchall() if row[6] == 0]
    names = ", ".join(_quote(c) for c in columns)
    insert = f"INSERT INTO {_quote(table)} (rowid, {names}) VALUES ({', '.join('?' * (len(columns) + 1))})"
    select = f"SELECT rowid, {names} FROM {_quote(table)}"
    start: int | None = None  # smallest rowid not yet read (None: from the first)
    last: int | None = None  # newest rowid saved
    while True:
        try:
            query = (select, ()) if start is None else (select + " WHERE rowid >= ?", (start,))
            for row in source.execute(*query):  # row by row: rows before damage are kept
                out.execute(insert, row)
                saved.rows += 1
                last = row[0]
            return saved
        except Exception as exc:  # noqa: BLE001 (a damaged page: skip what lies under it)
            skip = _lost_range_after(tree, last)
            if skip is None or skip in saved.lost:
                saved.error = f"stopped after rowid {last}: {exc}"
                return saved
            saved.lost.append(skip)
            if skip[1] is None or skip[1] >= (1 << 63) - 1:
                return saved
            start = skip[1] + 1


def _lost_range_after(tree: Tree | None, last: int | None) -> tuple[int | None, int | None] | None:
    """The first damaged rowid range ``(lo, hi]`` that reaches past ``last``."""
    if tree is None:
        return None
    after = [(lo, hi) for lo, hi in tree.lost if hi is None or last is None or hi > last]
    return min(after, key=lambda r: (r[0] is not None, r[0] if r[0] is not None else 0), default=None)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
