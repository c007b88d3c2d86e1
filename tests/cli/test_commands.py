"""CLI papercuts (issue #11 item 6): missing stores are not created, rm, info in human
form, export to stdout and no silent overwrite, flags named in messages, --at forms,
serve on a busy port."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from dolite.cli import app
from dolite.cli.human import parse_at


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, [*args, "--storage", f"lmdb:{tmp_path}/store"], input=input)

    return invoke


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "app.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE t(v); INSERT INTO t VALUES ('a'), ('b');")
    conn.close()
    return path


def test_read_only_commands_do_not_create_a_missing_store(run, tmp_path):
    listed = run("ls")
    assert listed.exit_code == 0 and listed.stdout == "" and "no store" in listed.stderr
    for args in (["info", "db"], ["rm", "db", "--yes"], ["rm", "db"], ["export", "db", "out.sqlite"],
                 ["versions", "db"], ["check", "db"], ["restore", "db", "--version", "1"]):
        result = run(*args)
        assert result.exit_code == 1 and "does not exist" in result.stderr, (args, result.stderr)
    assert not (tmp_path / "store").exists()


def test_rm(run, source):
    assert run("import", str(source), "shop").exit_code == 0
    assert run("rm", "shop", input="n\n").exit_code == 1
    assert run("rm", "shop", input="y\n").exit_code == 0
    assert run("ls").stdout == ""
    gone = run("rm", "shop", "--yes")
    assert gone.exit_code == 1 and "does not exist" in gone.stderr


def test_info_in_human_form_and_json(run, source):
    assert run("import", str(source), "shop").exit_code == 0
    human = run("info", "shop").stdout
    assert "KiB (8192 bytes)" in human and " ago)" in human and "retention" in human and "lease" in human
    assert "committed_at" not in human
    facts = __import__("json").loads(run("info", "shop", "--json").stdout)
    assert facts["size"] == 8192 and isinstance(facts["committed_at"], float)


def test_export_to_stdout_and_no_silent_overwrite(run, source, tmp_path):
    assert run("import", str(source), "shop").exit_code == 0
    piped = CliRunner().invoke(app, ["export", "shop", "-", "--storage", f"lmdb:{tmp_path}/store"])
    assert piped.exit_code == 0 and piped.stdout_bytes.startswith(b"SQLite format 3\0")
    assert len(piped.stdout_bytes) == 8192
    (tmp_path / "out.sqlite").write_bytes(b"keep me")
    refused = run("export", "shop", "out.sqlite")
    assert refused.exit_code == 1 and "--force" in refused.stderr
    assert (tmp_path / "out.sqlite").read_bytes() == b"keep me"
    assert run("export", "shop", "out.sqlite", "--force").exit_code == 0
    assert sqlite3.connect(tmp_path / "out.sqlite").execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_messages_name_the_flags(run, source):
    assert run("import", str(source), "shop").exit_code == 0
    again = run("import", str(source), "shop")
    assert again.exit_code == 1 and "--replace" in again.stderr and "replace=" not in again.stderr
    neither = run("restore", "shop")
    assert neither.exit_code == 1 and "--version" in neither.stderr and "--at" in neither.stderr
    assert "version=" not in neither.stderr
    bad_at = run("restore", "shop", "--at", "yesterday")
    assert bad_at.exit_code == 1 and "-5m" in bad_at.stderr


def test_restore_at_a_relative_time(run, source):
    assert run("import", str(source), "shop").exit_code == 0
    assert run("restore", "shop", "--at", "-0s").exit_code == 0
    too_early = run("restore", "shop", "--at", "-2h")
    assert too_early.exit_code == 1 and "no retained version" in too_early.stderr


def test_at_forms():
    now = 1_700_000_000.0
    assert parse_at("-5m", now) == now - 300 and parse_at("-2h", now) == now - 7200
    assert parse_at("-1.5d", now) == now - 1.5 * 86400 and parse_at("1699999999", now) == 1699999999
    assert parse_at("2023-11-14T22:13:20Z", now) == now
    assert parse_at("2023-11-14T22:13:20+00:00", now) == now
    with pytest.raises(ValueError):
        parse_at("5m", now)


def test_serve_on_a_busy_port_fails_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "dolite.cli", "serve", "--storage", f"lmdb:{tmp_path}/s",
                                 "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and time.monotonic() - started < 60
    assert result.stderr.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert not (tmp_path / "s").exists()
