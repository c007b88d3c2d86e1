"""``dolite fork SRC NEW [--version V | --at TIME]``: a writable copy of a retained
version inside the store (lives here with the rest of issue #13's tests)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dolite.cli.main import app
from dolite.errors import AlreadyExists, SnapshotExpired
from dolite.ops.fork import fork
from dolite.ops.restore import retained_versions
from dolite.ops.snapshot import iter_export
from dolite.sql.dbapi import connect


def history(ns, steps=5) -> dict[int, list]:
    conn = connect("src", ns)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    conn.commit()
    seen = {}
    for i in range(steps):
        conn.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}" * 100,))
        conn.commit()
        seen[conn.database.store.read_head().version] = conn.execute("SELECT * FROM t").fetchall()
    conn.close()
    return seen


def rows(ns, name):
    conn = connect(name, ns, create=False)
    try:
        return conn.execute("SELECT * FROM t").fetchall()
    finally:
        conn.close()


def test_fork_copies_a_version_and_is_writable_on_its_own(ns):
    seen = history(ns)
    versions = sorted(seen)
    source_file = b"".join(iter_export(ns, "src"))
    fork(ns, "src", "old", version=versions[1])
    assert rows(ns, "old") == seen[versions[1]]
    assert b"".join(iter_export(ns, "old")) == b"".join(iter_export(ns, "src", version=versions[1]))
    fork(ns, "src", "now")
    assert rows(ns, "now") == seen[versions[-1]]
    times = dict(retained_versions(ns, "src"))
    fork(ns, "src", "then", at=times[versions[2]])
    assert rows(ns, "then") == seen[versions[2]]
    conn = connect("old", ns, create=False)
    conn.execute("INSERT INTO t(v) VALUES ('only in the fork')")
    conn.commit()
    conn.close()
    assert len(rows(ns, "old")) == len(seen[versions[1]]) + 1
    assert b"".join(iter_export(ns, "src")) == source_file


def test_fork_refusals_change_nothing(ns):
    seen = history(ns, 2)
    with pytest.raises(AlreadyExists):
        fork(ns, "src", "src")
    with pytest.raises(SnapshotExpired):
        fork(ns, "src", "x", version=max(seen) + 5)
    with pytest.raises(ValueError):
        fork(ns, "src", "x", version=1, at=1.0)
    assert "x" not in ns.names()


def test_cli_fork(tmp_path):
    storage = f"lmdb:{tmp_path / 'store'}"
    conn = connect("src", storage)
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    version = conn.database.store.read_head().version
    conn.execute("INSERT INTO t VALUES (2)")
    conn.commit()
    conn.close()
    runner = CliRunner()
    result = runner.invoke(app, ["fork", "src", "copy", "-s", storage, "--version", str(version)])
    assert result.exit_code == 0 and "forked 'src' into 'copy'" in result.output, result.output
    assert connect("copy", storage, create=False).execute("SELECT v FROM t").fetchall() == [(1,)]
    again = runner.invoke(app, ["fork", "src", "copy", "-s", storage])
    assert again.exit_code == 1 and "already exists" in again.output
    both = runner.invoke(app, ["fork", "src", "c2", "-s", storage, "--version", "1", "--at", "-5m"])
    assert both.exit_code == 1 and "at most one" in both.output
