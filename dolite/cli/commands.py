"""The dot commands of ``dolite shell`` (a subset of the sqlite3 CLI's, same spelling).

Each takes the shell and its arguments (split like a shell line, so file names may be
quoted) and returns False when it failed. Names and patterns reach SQL only as
parameters; a table name in generated SQL is quoted as an identifier.
"""

from __future__ import annotations

import csv
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

from dolite.cli.render import MODES

HELP = """\
.dump                  The database as SQL text (what sqlite3's iterdump writes)
.exit, .quit           Leave the shell (so does Ctrl-D)
.headers on|off        Column names in list and csv modes
.help                  This text
.import FILE TABLE     Insert the rows of CSV FILE into TABLE (created from the header
                       row if missing; every row is data if TABLE exists); all or nothing
.indexes [TABLE]       Indexes (of tables whose name is LIKE TABLE)
.mode MODE             Output: box, table, list, csv, json, line
.nullvalue TEXT        How NULL is shown (default: empty)
.read FILE             Run the statements and dot commands in FILE (stops at an error)
.schema [PATTERN]      CREATE statements of objects whose name is LIKE PATTERN (any case)
.tables [PATTERN]      Tables and views whose name is LIKE PATTERN
.timer on|off          Time each statement
Anything else is SQL, run once a line ends it with ';'."""


class Quit(Exception):
    """The user asked to leave."""


def run(shell, line: str) -> bool:
    try:
        word, *args = shlex.split(line)
    except ValueError as exc:
        return shell.fail(f"{line}: {exc}")
    handler = COMMANDS.get(word)
    if handler is None:
        return shell.fail(f'unknown command or invalid arguments: "{word[1:]}". Enter ".help" for help')
    return handler(shell, args) is not False


def _on_off(shell, args: list[str], what: str) -> bool | None:
    if len(args) != 1 or args[0].lower() not in ("on", "off", "1", "0", "yes", "no"):
        shell.fail(f"usage: .{what} on|off")
        return None
    return args[0].lower() in ("on", "1", "yes")


def _quit(shell, args):
    raise Quit


def _help(shell, args):
    shell.out.write(HELP + "\n")


def _mode(shell, args):
    if len(args) != 1 or args[0] not in MODES:
        return shell.fail(f"usage: .mode {'|'.join(MODES)}")
    shell.style.mode = args[0]


def _headers(shell, args):
    value = _on_off(shell, args, "headers")
    if value is None:
        return False
    shell.style.headers = value


def _timer(shell, args):
    value = _on_off(shell, args, "timer")
    if value is None:
        return False
    shell.timer = value


def _nullvalue(shell, args):
    if len(args) != 1:
        return shell.fail("usage: .nullvalue TEXT")
    shell.style.nullvalue = args[0]


def _names(shell, sql: str, args: list[str], usage: str) -> bool:
    if len(args) > 1:
        return shell.fail(f"usage: {usage}")
    rows = shell.query(sql, [args[0] if args else "%"])
    if rows is None:
        return False
    shell.out.write("".join(f"{name}\n" for (name,) in rows))
    return True


def _tables(shell, args):
    return _names(shell, "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') "
                         "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name LIKE ? ORDER BY name",
                  args, ".tables [PATTERN]")


def _indexes(shell, args):
    return _names(shell, "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name LIKE ? "
                         "ORDER BY name", args, ".indexes [TABLE]")


def _schema(shell, args):
    if len(args) > 1:
        return shell.fail("usage: .schema [PATTERN]")
    pattern = args[0] if args else "%"
    rows = shell.query("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND (name LIKE ?1 OR tbl_name LIKE ?1) "
                       "ORDER BY tbl_name, type DESC, name", [pattern])
    if rows is None:
        return False
    shell.out.write("".join(f"{sql};\n" for (sql,) in rows))


def iterdump(conn) -> Iterator[str]:
    """The database as SQL statements, as :meth:`sqlite3.Connection.iterdump` writes them:
    the connection's own ``iterdump`` if it has one, else the stdlib's dumper run over this
    connection (it needs only ``cursor()``, ``execute`` and iteration)."""
    native = getattr(conn, "iterdump", None)
    if native is not None:
        return native()
    from sqlite3.dump import _iterdump  # noqa: PLC2701 - the stdlib's own, so the text is the same

    return _iterdump(conn)


def _dump(shell, args):
    if args:
        return shell.fail("usage: .dump (the whole database)")
    for statement in iterdump(shell.conn):
        shell.out.write(statement + "\n")


def _read(shell, args):
    if len(args) != 1:
        return shell.fail("usage: .read FILE")
    try:
        text = Path(args[0]).read_text()
    except OSError as exc:
        return shell.fail(f"cannot read {args[0]}: {exc.strerror}")
    return shell.lines(text.splitlines())


def _import(shell, args):
    args = [a for a in args if a != "--csv"]
    if len(args) != 2:
        return shell.fail("usage: .import FILE TABLE (FILE is CSV)")
    path, table = args
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            records = list(csv.reader(f))
    except (OSError, UnicodeError, csv.Error) as exc:
        return shell.fail(f"cannot read {path}: {exc}")
    exists = shell.query("SELECT count(*) FROM sqlite_schema WHERE type IN ('table', 'view') AND name = ?", [table])
    if exists is None:
        return False
    if not records:
        return shell.fail(f"{path} is empty: nothing imported")
    return _insert_records(shell, path, table, records, create=not exists[0][0])


def _insert_records(shell, path: str, table: str, records: list[list[str]], *, create: bool) -> bool:
    """Insert ``records`` into ``table`` in one transaction (created from the header row
    when ``create``); a row of the wrong width refuses the whole file."""
    quoted = '"' + table.replace('"', '""') + '"'
    header, rows = (records[0], records[1:]) if create else (None, records)
    width = len(header) if create else len(records[0])
    for number, row in enumerate(rows, start=2 if create else 1):
        if len(row) != width:
            return shell.fail(f"{path}:{number}: expected {width} columns but found {len(row)}: nothing imported")
    statements = []
    if create:
        columns = ", ".join('"' + name.replace('"', '""') + '" TEXT' for name in header)
        statements.append((f"CREATE TABLE {quoted}({columns})", None))
    statements.append((f"INSERT INTO {quoted} VALUES ({', '.join('?' * width)})", rows))
    return _in_transaction(shell, statements)


def _in_transaction(shell, statements: list[tuple[str, list | None]]) -> bool:
    from dolite.errors import Error

    try:
        shell.conn.execute("BEGIN")
        for sql, rows in statements:
            shell.conn.execute(sql) if rows is None else shell.conn.executemany(sql, rows)
        shell.conn.execute("COMMIT")
    except Error as exc:
        if shell.conn.in_transaction:
            shell.conn.execute("ROLLBACK")
        return shell.fail(f"{exc}: nothing imported")
    return True


COMMANDS: dict[str, Callable] = {
    ".dump": _dump, ".exit": _quit, ".quit": _quit, ".headers": _headers, ".help": _help,
    ".import": _import, ".indexes": _indexes, ".mode": _mode, ".nullvalue": _nullvalue, ".read": _read,
    ".schema": _schema, ".tables": _tables, ".timer": _timer,
}
