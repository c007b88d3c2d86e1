"""``dolite shell``: a small SQL prompt over any DB-API connection dolite makes."""

from __future__ import annotations

import sqlite3
import sys

from rich.console import Console
from rich.table import Table

from dolite.errors import Error
from dolite.sql.pep249 import split_statements

HELP = ".tables  .schema [TABLE]  .help  .quit   — anything else is SQL, ended by ';'"


def _connect(name: str, storage: str, token: str | None):
    import dolite

    if storage.startswith(("http://", "https://")):
        return dolite.connect(f"{storage.rstrip('/')}/{name}", token=token, isolation_level=None)
    return dolite.connect(name, storage=storage, isolation_level=None)


def run_shell(name: str, storage: str, *, token: str | None = None, console: Console | None = None,
              stdin=None) -> None:
    """Read statements from ``stdin`` (a prompt on a terminal) and print their results."""
    console = console or Console()
    stdin = stdin or sys.stdin
    interactive = stdin.isatty()
    conn = _connect(name, storage, token)
    if interactive:
        console.print(f"dolite shell on [bold]{name}[/] ({storage}); {HELP}")
    buffer = ""
    failed = False
    try:
        while True:
            if interactive:
                try:
                    line = input("...> " if buffer else f"{name}> ")
                except EOFError:
                    break
            else:
                line = stdin.readline()
                if not line:
                    break
            if not buffer and line.strip().startswith("."):
                if not _dot_command(conn, line.strip(), console):
                    break
                continue
            buffer += line + "\n"
            if not sqlite3.complete_statement(buffer):
                continue
            sql, buffer = buffer, ""
            for statement in split_statements(sql):
                failed |= not _run(conn, statement, console)
    finally:
        conn.commit()
        conn.close()
    if failed and not interactive:
        raise SystemExit(1)


def _run(conn, sql: str, console: Console) -> bool:
    try:
        cur = conn.execute(sql)
        rows = cur.fetchall()
    except Error as exc:  # every error dolite raises, local or over HTTP
        console.print(f"[red]error:[/] {exc}")
        return False
    if cur.description:
        table = Table(*[d[0] for d in cur.description])
        for row in rows:
            table.add_row(*["NULL" if v is None else str(v) for v in row])
        console.print(table)
    return True


def _dot_command(conn, line: str, console: Console) -> bool:
    word, _, arg = line.partition(" ")
    if word in (".quit", ".exit"):
        return False
    if word == ".tables":
        _run(conn, "SELECT name FROM sqlite_schema WHERE type IN ('table','view') ORDER BY name", console)
    elif word == ".schema":
        where = f" AND tbl_name = '{arg.strip()}'" if arg.strip() else ""
        _run(conn, f"SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL{where}", console)
    else:
        console.print(HELP)
    return True
