"""``dolite shell`` on a real terminal (a pseudo-terminal): history, Ctrl-C, Ctrl-D,
``.mode csv`` and ``.import`` (issue #11 item 5)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

pytest.importorskip("prompt_toolkit")

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>]|\r")


class Terminal:
    """A process on a pseudo-terminal, driven by writing keys and waiting for output."""

    def __init__(self, args: list[str], cwd, env: dict):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.seen = ""  # everything printed so far, ANSI sequences removed

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def expect(self, pattern: str, timeout: float = 10.0) -> re.Match:
        """Wait until ``pattern`` appears in the output after what earlier calls consumed."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.seen)
            if found:
                self.seen = self.seen[found.end():]
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not seen; output: {self.seen[-2000:]!r}")
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.seen += _ANSI.sub("", os.read(self.master, 65536).decode(errors="replace"))
                except OSError:  # the process exited
                    pass

    def close(self) -> int:
        try:
            return self.proc.wait(10)
        finally:
            os.close(self.master)


def test_shell_on_a_terminal(tmp_path):
    (tmp_path / "people.csv").write_text("name,age\nbob,42\nann,7\n")
    env = {**os.environ, "DOLITE_HISTORY": str(tmp_path / "history"), "PROMPT_TOOLKIT_NO_CPR": "1",
           "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    term = Terminal([sys.executable, "-m", "dolite.cli", "shell", "db", "--create", "--storage", "memory:"],
                    tmp_path, env)
    try:
        term.expect(r"db>")
        term.send("SELECT 40 + 2 AS answer;\r")
        term.expect(r"│ 42\s*│")
        term.send("\x1b[A\r")  # Up recalls the last line from history
        term.expect(r"SELECT 40 \+ 2 AS answer;")
        term.expect(r"│ 42\s*│")
        term.send("SELECT 1 +\r")  # an unfinished statement...
        term.expect(r"\.\.\.>")
        term.send("SELECT 2 +")
        term.send("\x03")  # ...dropped by Ctrl-C, with the line being typed
        term.expect(r"db>")
        term.send("SELECT 5 AS five;\r")
        term.expect(r"│ 5\s*│")
        assert "Error" not in term.seen
        term.send(".mode csv\r")
        term.send(".headers on\r")
        term.send(".import people.csv people\r")
        term.send("SELECT name, age FROM people ORDER BY age + 0;\r")
        term.expect(r"name,age\nann,7\nbob,42\n")
        term.expect(r"db>")
        term.send("\x04")  # Ctrl-D leaves
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert "SELECT 40 + 2 AS answer;" in (tmp_path / "history").read_text()
