"""``dolite backup prune --keep``: old versions and the chunks only they use go; every kept
version still restores byte-identical."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dolite import backup
from dolite.backup.manifest import FULL_EVERY, chunk_key, listing
from dolite.backup.prune import parse_duration
from dolite.cli.backup import backup_app
from dolite.ops.snapshot import iter_export
from dolite.sql.dbapi import connect


def history(ns, target_url, commits):
    """``commits`` commits, each pushed: one manifest per version (a chain with full ones)."""
    conn = connect("db", ns)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.commit()
    for i in range(commits):
        conn.execute("INSERT INTO t(v) VALUES (randomblob(3000))")
        if i % 4 == 3:
            conn.execute("DELETE FROM t WHERE id = ?", (i - 2,))
        conn.commit()
        if i % 3 == 0:
            backup.push(ns, "db", to=target_url)
    conn.close()
    backup.push(ns, "db", to=target_url)


def test_prune_keeps_every_version_in_the_window_restorable(ns, target_url):
    history(ns, target_url, FULL_EVERY + 12)
    target = backup.open_target(target_url)
    known = listing(target, "db")
    versions = list(known)
    cut = versions[len(versions) - 6]  # keep the last 6 versions by time, and the one before
    now = known[cut][0] + 1000.0
    chunks_before = len(target.list(chunk_key("db", "")))
    (result,) = backup.prune("db", from_=target_url, keep=1000.0, now=now)
    after = listing(target, "db")
    assert result.oldest_kept == [v for v, (t, _) in known.items() if t < known[cut][0]][-1]  # current at the start
    assert set(versions[versions.index(cut):]) <= set(after)
    assert result.manifests_deleted == len(known) - len(after) > 0
    assert 0 < result.chunks_deleted == chunks_before - len(target.list(chunk_key("db", "")))
    for n, v in enumerate(after):
        if v >= result.oldest_kept:
            backup.restore("db", from_=target_url, storage=ns, into=f"r{n}", version=v)
            assert b"".join(iter_export(ns, f"r{n}")) == b"".join(iter_export(ns, "db", version=v))
    assert backup.verify("db", from_=target_url).ok
    again = backup.prune(None, from_=target_url, keep=1000.0, now=now)
    assert [(r.name, r.manifests_deleted, r.chunks_deleted) for r in again] == [("db", 0, 0)]


def test_the_newest_backup_is_kept_however_old(ns, target_url):
    history(ns, target_url, 5)
    newest = max(listing(backup.open_target(target_url), "db"))
    (result,) = backup.prune("db", from_=target_url, keep=0, now=1e12)
    assert result.oldest_kept == newest and newest in listing(backup.open_target(target_url), "db")
    restored = backup.restore("db", from_=target_url, storage=ns, into="copy")
    assert restored.version == newest
    assert b"".join(iter_export(ns, "copy")) == b"".join(iter_export(ns, "db"))


def test_durations():
    assert parse_duration("30d") == 30 * 86400 and parse_duration("90m") == 5400 and parse_duration("1.5h") == 5400
    for bad in ("30", "-1d", "a week"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_cli_prune(ns, tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    storage = f"lmdb:{tmp_path / 'store'}"
    conn = connect("shop", storage)
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    runner = CliRunner()
    assert runner.invoke(backup_app, ["push", "shop", "--to", f"file://{folder}", "-s", storage]).exit_code == 0
    result = runner.invoke(backup_app, ["prune", "--from", f"file://{folder}", "--keep", "30d", "--json"])
    assert result.exit_code == 0, result.output
    assert [(r["name"], r["manifests_deleted"]) for r in json.loads(result.output)] == [("shop", 0)]
    bad = runner.invoke(backup_app, ["prune", "--from", f"file://{folder}", "--keep", "forever"])
    assert bad.exit_code != 0 and "duration" in bad.output
