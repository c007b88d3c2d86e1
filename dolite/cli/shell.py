"""``dolite shell``: a SQL prompt like the sqlite3 CLI, over any connection dolite makes.

On a terminal: line editing and history (prompt_toolkit; the history file is
``$DOLITE_HISTORY`` or ``~/.local/share/dolite/history``), Ctrl-C drops the line being typed
(or interrupts the running statement) and Ctrl-D exits. Piped input runs without prompts
and stops at the first error with exit status 1, like ``sqlite3 -bail``. Statements
autocommit unless wrapped in BEGIN ... COMMIT; an open transaction is rolled back on exit.
Dot commands: see :mod:`dolite.cli.commands`.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from dolite.cli import commands
from dolite.cli.render import Style, render
from dolite.errors import Error
from dolite.sql.pep249 import split_statements


class Shell:
    """Runs input lines on ``conn``: results to ``out``, errors to ``err``. Each method
    that runs something returns False when it failed (the piped loop stops there)."""

    def __init__(self, conn, out: TextIO, err: TextIO, style: Style | None = None):
        self.conn, self.out, self.err = conn, out, err
        self.style = style or Style()
        self.timer = False
        self.pending = ""  # the start of a statement not yet ended by ';'

    def fail(self, message: str) -> bool:
        self.out.flush()
        self.err.write(f"Error: {message}\n")
        self.err.flush()
        return False

    def line(self, line: str) -> bool:
        """One line of input: a dot command at the start of a statement, else SQL, run once
        it completes a statement."""
        if not self.pending and line.lstrip().startswith("."):
            return commands.run(self, line.strip())
        self.pending += line + "\n"
        if not sqlite3.complete_statement(self.pending):
            return True
        sql, self.pending = self.pending, ""
        return self.sql(sql)

    def lines(self, lines: Iterable[str]) -> bool:
        """Every line of a script, stopping at the first failure; a statement left without
        its ';' at the end is run too."""
        for line in lines:
            if not self.line(line.rstrip("\r\n")):
                self.pending = ""
                return False
        sql, self.pending = self.pending, ""
        return not sql.strip() or self.sql(sql)

    def sql(self, sql: str) -> bool:
        return all(self.statement(s) for s in split_statements(sql))

    def statement(self, sql: str, params=()) -> bool:
        started = time.perf_counter()
        try:
            cur = self.conn.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
        except Error as exc:  # every error dolite raises, local or over HTTP
            return self.fail(str(exc))
        if cur.description:
            render(self.out, self.style, [d[0] for d in cur.description], rows)
        if self.timer:
            self.out.write(f"Run Time: real {time.perf_counter() - started:.3f}\n")
        self.out.flush()
        return True

    def query(self, sql: str, params=()) -> list[tuple] | None:
        """Rows of a query the shell runs for itself (None after printing its error)."""
        try:
            return self.conn.execute(sql, params).fetchall()
        except Error as exc:
            self.fail(str(exc))
            return None


def history_path() -> Path:
    default = Path.home() / ".local" / "share" / "dolite" / "history"
    return Path(os.environ.get("DOLITE_HISTORY") or default)


def _prompter() -> Callable[[str], str]:
    """Read one line with a prompt: prompt_toolkit with a history file, else input()."""
    try:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory
    except ImportError:  # pragma: no cover - prompt_toolkit is a dependency
        return input
    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return PromptSession(history=FileHistory(str(path))).prompt


def interactive(shell: Shell, name: str) -> int:
    """The prompt loop on a terminal. Always exit status 0 (errors were shown)."""
    read = _prompter()
    shell.out.write(f'dolite shell on {name}. Enter ".help" for usage hints.\n')
    while True:
        try:
            line = read("   ...> " if shell.pending else f"{name}> ")
        except KeyboardInterrupt:
            shell.pending = ""  # Ctrl-C: drop what was typed
            continue
        except EOFError:  # Ctrl-D
            return 0
        try:
            shell.line(line)
        except KeyboardInterrupt:
            shell.pending = ""
            shell.fail("interrupted")
        except commands.Quit:
            return 0


def piped(shell: Shell, stdin: TextIO) -> int:
    """Run piped input; exit status 1 at the first error (nothing after it runs)."""
    try:
        return 0 if shell.lines(stdin) else 1
    except commands.Quit:
        return 0


def connect(name: str, storage: str, *, token: str | None, create: bool):
    """A connection to ``name`` in autocommit mode (DatabaseNotFound if it is missing
    and not ``create``)."""
    import dolite

    if storage.startswith(("http://", "https://")):
        return dolite.connect(f"{storage.rstrip('/')}/{name}", token=token, create=create, isolation_level=None)
    return dolite.connect(name, storage=storage, create=create, isolation_level=None)


def run_shell(name: str, storage: str, *, token: str | None = None, create: bool = False,
              stdin: TextIO | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the shell on database ``name``; returns the exit status."""
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    conn = connect(name, storage, token=token, create=create)
    terminal = stdin.isatty()
    shell = Shell(conn, out, err, Style(mode="box" if terminal and out.isatty() else "list"))
    try:
        return interactive(shell, name) if terminal else piped(shell, stdin)
    finally:
        conn.close()
