"""The dolite command line, run for real (subprocesses), locally and against a server."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.conftest import TOKEN, Server


def dolite(*args: str, cwd: Path, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dolite.cli", *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, timeout=120, env=env)


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "app.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                       "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<500)"
                       " INSERT INTO t(v) SELECT 'row' || i FROM n;")
    conn.commit()
    conn.close()
    return path


def test_local_round_trip_through_every_command(tmp_path, source):
    assert dolite("import", str(source), "shop", cwd=tmp_path).returncode == 0
    out = dolite("ls", cwd=tmp_path)
    assert out.stdout.split() == ["shop"]
    info = dolite("info", "shop", "--json", cwd=tmp_path)
    assert '"version": 1' in info.stdout and '"page_size": 4096' in info.stdout
    shell = dolite("shell", "shop", cwd=tmp_path,
                   stdin="SELECT count(*) FROM t;\nINSERT INTO t(v) VALUES ('x;y');\nSELECT v FROM t WHERE id = 501;\n")
    assert shell.returncode == 0, shell.stderr
    assert "500" in shell.stdout and "x;y" in shell.stdout
    assert dolite("check", "shop", cwd=tmp_path).returncode == 0
    assert dolite("export", "shop", "out.sqlite", cwd=tmp_path).returncode == 0
    assert sqlite3.connect(tmp_path / "out.sqlite").execute("SELECT count(*) FROM t").fetchone() == (501,)
    versions = dolite("versions", "shop", cwd=tmp_path).stdout.split()
    assert versions[0] == "1"
    assert dolite("restore", "shop", "--version", "1", cwd=tmp_path).returncode == 0
    shell = dolite("shell", "shop", cwd=tmp_path, stdin="SELECT count(*) FROM t;\n")
    assert "500" in shell.stdout


def test_errors_are_clear_and_exit_nonzero(tmp_path):
    missing = dolite("export", "nope", "x.sqlite", cwd=tmp_path)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bad_url = dolite("ls", "--storage", "bogus:", cwd=tmp_path)
    assert bad_url.returncode == 1 and "unknown storage URL" in bad_url.stderr
    bad_name = dolite("shell", "../etc", cwd=tmp_path, stdin="SELECT 1;\n")
    assert bad_name.returncode == 1 and "invalid database name" in bad_name.stderr
    missing_db = dolite("shell", "db", cwd=tmp_path, stdin="SELECT 1;\n")
    assert missing_db.returncode == 1 and "--create" in missing_db.stderr
    bad_sql = dolite("shell", "db", "--create", cwd=tmp_path, stdin="SELEC 1;\nSELECT 'not run';\n")
    assert bad_sql.returncode == 1 and "syntax error" in bad_sql.stderr and "not run" not in bad_sql.stdout
    (tmp_path / "junk.sqlite").write_bytes(b"junk" * 100)
    junk = dolite("import", "junk.sqlite", "junk", cwd=tmp_path)
    assert junk.returncode == 1 and "not a SQLite database" in junk.stderr


def test_commands_against_a_server(tmp_path, source):
    server = Server(f"lmdb:{tmp_path}/served", log=tmp_path / "server.log").start()
    try:
        env = {**__import__("os").environ, "DOLITE_TOKEN": TOKEN}
        url = server.url
        assert dolite("import", str(source), "remote", "--storage", url, cwd=tmp_path, env=env).returncode == 0
        assert "remote" in dolite("ls", "--storage", url, cwd=tmp_path, env=env).stdout.split()
        shell = dolite("shell", "remote", "--storage", url, cwd=tmp_path, env=env,
                       stdin="INSERT INTO t(v) VALUES ('over http');\nSELECT count(*) FROM t;\n")
        assert shell.returncode == 0 and "501" in shell.stdout, shell.stdout + shell.stderr
        assert dolite("export", "remote", "back.sqlite", "--storage", url, cwd=tmp_path, env=env).returncode == 0
        assert sqlite3.connect(tmp_path / "back.sqlite").execute("SELECT count(*) FROM t").fetchone() == (501,)
        denied = dolite("ls", "--storage", url, cwd=tmp_path)
        assert denied.returncode == 1 and "token" in denied.stderr.lower(), denied.stderr
    finally:
        server.stop()




def test_wal_import_note_gc_and_rm(tmp_path, source):
    writer = sqlite3.connect(tmp_path / "wal.db", isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    writer.execute("INSERT INTO t(v) VALUES ('only in the -wal')")
    try:
        imported = dolite("import", "wal.db", "walled", cwd=tmp_path)
    finally:
        writer.close()
    assert imported.returncode == 0 and "-wal" in imported.stderr, imported.stderr
    shell = dolite("shell", "walled", cwd=tmp_path, stdin="SELECT v FROM t;\n")
    assert "only in the -wal" in shell.stdout
    assert dolite("import", str(source), "shop", cwd=tmp_path).returncode == 0
    collected = dolite("gc", "--all", "--drop-history", cwd=tmp_path)
    assert collected.returncode == 0 and "walled:" in collected.stdout and "shop:" in collected.stdout
    refused = dolite("rm", "shop", cwd=tmp_path, stdin="n\n")
    assert refused.returncode == 1 and dolite("ls", cwd=tmp_path).stdout.split() == ["shop", "walled"]
    assert dolite("rm", "shop", "--yes", cwd=tmp_path).returncode == 0
    assert dolite("ls", cwd=tmp_path).stdout.split() == ["walled"]
