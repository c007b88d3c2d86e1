"""``dolite backup push / list / restore`` through the Typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dolite.cli.backup import backup_app, parse_time
from dolite.sql.dbapi import connect

runner = CliRunner()


def run(*args):
    result = runner.invoke(backup_app, [str(a) for a in args])
    return result.exit_code, result.output


def test_push_list_restore(tmp_path):
    storage, folder = f"lmdb:{tmp_path / 'store'}", tmp_path / "backups"
    folder.mkdir()
    to = f"file://{folder}"
    conn = connect("shop", storage)
    conn.execute("CREATE TABLE t(x)")
    conn.execute("INSERT INTO t VALUES (42)")
    conn.commit()
    conn.close()
    code, out = run("push", "shop", "--to", to, "-s", storage, "--json")
    assert code == 0, out
    pushed = json.loads(out)
    assert pushed["full_snapshot"] and pushed["version"] == pushed["versions"][-1]
    code, out = run("push", "--all", "--to", to, "-s", storage)
    assert code == 0 and "nothing new" in out
    code, out = run("list", "shop", "--from", to, "--json")
    assert code == 0 and [v["version"] for v in json.loads(out)] == [pushed["version"]]
    code, out = run("restore", "shop", "--from", to, "--into", "shop2", "-s", storage)
    assert code == 0 and "as 'shop2'" in out, out
    assert connect("shop2", storage, create=False).execute("SELECT x FROM t").fetchall() == [(42,)]
    code, out = run("restore", "shop", "--from", to, "--into", "shop2", "-s", storage)
    assert code == 1 and "already exists" in out


def test_bad_input_is_refused(tmp_path):
    code, out = run("push", "--to", f"file://{tmp_path}")
    assert code != 0 and "NAME or --all" in out
    code, out = run("list", "shop", "--from", "ftp://nowhere")
    assert code == 1 and "unknown backup target" in out
    code, out = run("restore", "x", "--from", f"file://{tmp_path}", "--into", "y", "--at", "yesterday")
    assert code != 0 and "ISO 8601" in out


def test_times_are_unix_seconds_or_iso_8601():
    assert parse_time("1700000000.5") == 1700000000.5
    assert parse_time("2023-11-14T22:13:20") == 1700000000.0
    assert parse_time("2023-11-14T23:13:20+01:00") == 1700000000.0


def test_verify_exits_1_on_damage(tmp_path):
    storage, folder = f"lmdb:{tmp_path / 'store'}", tmp_path / "backups"
    folder.mkdir()
    conn = connect("shop", storage)
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    assert run("push", "shop", "--to", f"file://{folder}", "-s", storage)[0] == 0
    code, out = run("verify", "shop", "--from", f"file://{folder}")
    assert code == 0 and "newest restorable: v" in out, out
    chunk = next((folder / "shop" / "chunks").iterdir())
    chunk.write_bytes(b"rot")
    code, out = run("verify", "shop", "--from", f"file://{folder}", "--json")
    assert code == 1 and json.loads(out)["ok"] is False


def test_push_all_and_prune_go_on_past_a_database_another_process_holds(tmp_path):
    """A database locked by another push or prune is skipped, named, and the exit code is
    1; the others are still backed up (cron's `push --all` must not stop at the first)."""
    import dataclasses
    import time

    from dolite import backup
    from dolite.backup import lock

    storage, folder = f"lmdb:{tmp_path / 'store'}", tmp_path / "backups"
    folder.mkdir()
    to = f"file://{folder}"
    for name in ("a", "b", "c"):
        conn = connect(name, storage)
        conn.execute("CREATE TABLE t(x)")
        conn.commit()
        conn.close()
    assert run("push", "--all", "--to", to, "-s", storage)[0] == 0
    target = backup.open_target(to)
    other = dataclasses.replace(lock.Holder.mine("push", time.time()), host="elsewhere", machine="elsewhere")
    held = target.get_tagged(lock.lock_key("b"))[1]
    assert target.replace_if(lock.lock_key("b"), other.encode(), held)
    for name in ("a", "b", "c"):
        conn = connect(name, storage)
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        conn.close()
    code, out = run("push", "--all", "--to", to, "-s", storage, "--json")
    assert code == 1 and "skipped" in out and "locked by push" in out, out
    assert [len(backup.list_versions(n, from_=to)) for n in ("a", "b", "c")] == [2, 1, 2]
    code, out = run("prune", "--from", to, "--keep", "1d")
    assert code == 1 and "a at" in out and "c at" in out and "skipped" in out, out
    code, out = run("push", "b", "--to", to, "-s", storage)
    assert code == 1 and "locked by push" in out  # one NAME that is locked fails as before
