"""Local replicas (issue #14): writes while the remote is unreachable, pending changes that
survive kill -9, sync that pushes exactly once under the policy and pulls only changed
chunks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import dolite
from dolite.errors import StorageError
from dolite.replica import sync as replica_sync
from dolite.sql.optimistic import ConflictingRows
from dolite.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]


class Switchable:
    """A namespace that can be made unreachable (every call raises StorageError)."""

    def __init__(self, inner):
        self.inner, self.down, self.url, self.limits = inner, False, inner.url, inner.limits

    def object(self, name):
        return _SwitchableObject(self, self.inner.object(name))

    def names(self):
        return self._check() or self.inner.names()

    def drop(self, name):
        self._check()
        self.inner.drop(name)

    def close(self):
        pass

    def _check(self):
        if self.down:
            raise StorageError("remote unreachable (test)")


class _SwitchableObject:
    def __init__(self, namespace, inner):
        self.namespace, self.inner, self.limits = namespace, inner, inner.limits

    def __getattr__(self, method):
        call = getattr(self.inner, method)

        def checked(*args, **kwargs):
            self.namespace._check()
            return call(*args, **kwargs)

        return checked


@pytest.fixture
def remote():
    namespace = Switchable(open_storage(f"memory:{uuid.uuid4().hex}"))
    conn = dolite.connect("db", namespace)
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    conn.commit()
    conn.close()
    return namespace


@pytest.fixture
def replica(remote):
    r = dolite.replica("db", remote=remote, local=f"memory:{uuid.uuid4().hex}")
    yield r
    r.close()


def remote_rows(remote) -> list[tuple]:
    conn = dolite.connect("db", remote)
    try:
        return conn.execute("SELECT * FROM t ORDER BY k").fetchall()
    finally:
        conn.close()


def write_remote(remote, sql: str) -> None:
    conn = dolite.connect("db", remote)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_reads_and_writes_while_the_remote_is_unreachable_then_syncs(remote, replica):
    conn = replica.connect()
    remote.down = True
    assert conn.execute("SELECT * FROM t ORDER BY k").fetchall() == [(1, "a"), (2, "b")]
    conn.execute("INSERT INTO t VALUES (3, 'offline')")
    conn.commit()
    conn.execute("UPDATE t SET v = 'A' WHERE k = 1")
    conn.commit()
    with pytest.raises(StorageError):
        replica.sync()
    assert [p.seq for p in replica.pending()] == [1, 2]
    assert conn.execute("SELECT * FROM t ORDER BY k").fetchall() == [(1, "A"), (2, "b"), (3, "offline")]
    remote.down = False
    write_remote(remote, "UPDATE t SET v = 'B' WHERE k = 2")
    assert replica.sync()["pushed"] == 2
    assert replica.pending() == []
    assert remote_rows(remote) == [(1, "A"), (2, "B"), (3, "offline")]
    assert conn.execute("SELECT * FROM t ORDER BY k").fetchall() == [(1, "A"), (2, "B"), (3, "offline")]


def test_abort_keeps_the_transaction_pending_until_another_policy_or_discard(remote, replica):
    conn = replica.connect()
    conn.execute("UPDATE t SET v = 'local' WHERE k = 1")
    conn.commit()
    write_remote(remote, "UPDATE t SET v = 'remote' WHERE k = 1")
    with pytest.raises(ConflictingRows) as raised:
        replica.sync()
    assert raised.value.pending == 1
    assert [(c.key, c.stored, c.ours) for c in raised.value.conflicts] == [
        ((1,), {"k": 1, "v": "remote"}, {"k": 1, "v": "local"})]
    assert [p.seq for p in replica.pending()] == [1]
    assert remote_rows(remote) == [(1, "remote"), (2, "b")]
    replica.sync(on_conflict="theirs")
    assert replica.pending() == []
    assert conn.execute("SELECT * FROM t ORDER BY k").fetchall() == [(1, "remote"), (2, "b")]


@pytest.mark.parametrize("policy, expected", [
    ("ours", [(1, "local"), (2, "b")]),
    ("theirs", [(1, "remote"), (2, "b")]),
    (lambda c: {"v": c.stored["v"] + "+" + c.ours["v"]}, [(1, "remote+local"), (2, "b")]),
])
def test_sync_resolves_conflicts_by_the_policy(remote, policy, expected):
    r = dolite.replica("db", remote=remote, local=f"memory:{uuid.uuid4().hex}", on_conflict=policy)
    conn = r.connect()
    conn.execute("UPDATE t SET v = 'local' WHERE k = 1")
    conn.commit()
    write_remote(remote, "UPDATE t SET v = 'remote' WHERE k = 1")
    r.sync()
    assert remote_rows(remote) == expected
    assert conn.execute("SELECT * FROM t ORDER BY k").fetchall() == expected
    r.close()


def test_discard_drops_a_pending_transaction_and_the_pull_takes_it_out(remote, replica):
    conn = replica.connect()
    conn.execute("UPDATE t SET v = 'local' WHERE k = 1")
    conn.commit()
    replica.discard(replica.pending()[0].seq)
    replica.sync()
    assert conn.execute("SELECT * FROM t ORDER BY k").fetchall() == [(1, "a"), (2, "b")]
    assert remote_rows(remote) == [(1, "a"), (2, "b")]


def test_a_push_whose_reply_was_lost_is_not_applied_twice(remote, replica, monkeypatch):
    conn = replica.connect()
    conn.execute("INSERT INTO t VALUES (3, 'once')")
    conn.commit()
    real_remove = replica.journal.remove

    def lost(seq):
        monkeypatch.setattr(replica.journal, "remove", real_remove)
        raise StorageError("the reply was lost (test)")

    monkeypatch.setattr(replica.journal, "remove", lost)
    with pytest.raises(StorageError):
        replica.sync()
    assert remote_rows(remote) == [(1, "a"), (2, "b"), (3, "once")]  # pushed, not yet forgotten
    replica.sync()  # an insert applied twice would be an "exists" conflict under abort
    assert replica.pending() == []
    assert remote_rows(remote) == [(1, "a"), (2, "b"), (3, "once")]


def test_pull_copies_only_changed_chunks(remote, replica):
    write_remote(remote, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) "
                         "INSERT INTO t SELECT i + 10, printf('%.3000d', i) FROM n")
    replica.sync()
    total = replica._local_db.store.read_head().chunk_count
    write_remote(remote, "UPDATE t SET v = 'changed' WHERE k = 100")
    copied = replica.sync()["chunks"]
    assert 0 < copied < total // 10
    conn = replica.connect()
    assert conn.execute("SELECT v FROM t WHERE k = 100").fetchone() == ("changed",)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    local, far = replica._local_db.store, dolite.connect("db", remote)
    lhead, rhead = local.read_head(), far.database.store.read_head()
    assert [local.chunk_as_of(lhead, c) for c in range(lhead.chunk_count)] == \
        [far.database.store.chunk_as_of(rhead, c) for c in range(rhead.chunk_count)]
    far.close()


def test_what_cannot_be_journaled_is_refused(replica):
    conn = replica.connect()
    conn.execute("INSERT INTO t VALUES (7, 'x')")
    with pytest.raises(dolite.NotSupportedError, match="commits only through commit"):
        conn.execute("COMMIT")
    with pytest.raises(dolite.NotSupportedError, match="commits only through commit"):
        conn.execute("CREATE TABLE other(k INTEGER PRIMARY KEY)")  # DDL runs in autocommit
    conn.execute("INSERT INTO t VALUES (7, 'x')")
    conn.execute("CREATE TABLE other(k INTEGER PRIMARY KEY)")  # inside the transaction
    with pytest.raises(dolite.NotSupportedError, match="schema"):
        conn.commit()
    with pytest.raises(dolite.NotSupportedError):
        replica.connect(isolation_level=None)
    with pytest.raises(dolite.NotSupportedError):
        replica.connect(concurrency="optimistic")
    assert replica.pending() == []
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_status_shows_the_last_sync_and_pending_count(remote, replica):
    conn = replica.connect()
    conn.execute("INSERT INTO t VALUES (3, 'c')")
    conn.commit()
    assert replica.status()["pending"] == 1
    replica.sync()
    status = replica.status()
    assert status["pending"] == 0 and status["synced"] is not None


# -- kill -9 ---------------------------------------------------------------------------------

WRITER = """
import sys
import dolite
from dolite.errors import StorageError

class Down:  # the remote service is stopped
    url, limits = "down:", None
    def object(self, name):
        raise StorageError("remote unreachable")
    def names(self):
        raise StorageError("remote unreachable")
    def drop(self, name):
        raise StorageError("remote unreachable")
    def close(self):
        pass

r = dolite.replica("db", remote=Down(), local=sys.argv[1])
conn = r.connect()
i = 0
while True:
    i += 1
    conn.execute("INSERT INTO t VALUES (?, 'offline')", [100 + i])
    conn.execute("UPDATE t SET v = ? WHERE k = 1", [f"local-{i}"])
    conn.commit()
    print(i, flush=True)  # acknowledged
"""


@pytest.mark.parametrize("policy", ["ours", "theirs"])
def test_pending_changes_survive_kill9_and_sync_after(tmp_path, policy):
    remote_url, local_url = f"lmdb:{tmp_path}/remote", f"lmdb:{tmp_path}/local"
    conn = dolite.connect("db", remote_url)
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO t VALUES (1, 'a')")
    conn.commit()
    dolite.replica("db", remote=remote_url, local=local_url).close()  # the first copy
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", WRITER, local_url], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    acknowledged = 0
    while acknowledged < 20:
        line = child.stdout.readline()
        assert line, child.stderr.read()
        acknowledged = int(line)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    conn.execute("UPDATE t SET v = 'remote' WHERE k = 1")  # meanwhile, on the remote
    conn.commit()
    r = dolite.replica("db", remote=remote_url, local=local_url, on_conflict=policy)
    assert len(r.pending()) >= acknowledged
    r.sync()
    assert r.pending() == []
    rows = dict(conn.execute("SELECT k, v FROM t").fetchall())
    assert set(range(101, 101 + acknowledged)) <= set(rows)
    assert rows[1] == (f"local-{len(rows) - 1}" if policy == "ours" else "remote")
    assert dict(r.connect().execute("SELECT k, v FROM t").fetchall()) == rows
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    r.close()
    conn.close()


def test_a_durable_object_remote(request, tmp_path):
    from tests.backends import BACKENDS, backend_url

    if "do" not in BACKENDS:
        pytest.skip("the do backend is not selected (DOLITE_BACKENDS)")
    remote = backend_url(request, "do", tmp_path)
    conn = dolite.connect("db", remote)
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO t VALUES (1, 'a')")
    conn.commit()
    conn.close()  # (a lease-mode writer keeps the write lease until it closes)
    r = dolite.replica("db", remote=remote, local=f"lmdb:{tmp_path}/local", on_conflict="ours")
    local = r.connect()
    local.execute("UPDATE t SET v = 'local' WHERE k = 1")
    local.execute("INSERT INTO t VALUES (2, 'b')")
    local.commit()
    conn = dolite.connect("db", remote)
    conn.execute("UPDATE t SET v = 'remote' WHERE k = 1")
    conn.commit()
    conn.close()
    assert r.sync()["pushed"] == 1
    conn = dolite.connect("db", remote)
    assert conn.execute("SELECT * FROM t ORDER BY k").fetchall() == [(1, "local"), (2, "b")]
    assert local.execute("SELECT * FROM t ORDER BY k").fetchall() == [(1, "local"), (2, "b")]
    r.close()
    conn.close()


def test_info_shows_each_replicas_last_push(tmp_path):
    from typer.testing import CliRunner

    from dolite.cli.main import app
    from dolite.ops import admin

    remote = f"lmdb:{tmp_path}/remote"
    conn = dolite.connect("db", remote)
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    conn.commit()
    conn.close()
    assert admin.info(remote, "db")["replicas"] == []
    r = dolite.replica("db", remote=remote, local=f"memory:{uuid.uuid4().hex}")
    local = r.connect()
    for k in (1, 2):
        local.execute("INSERT INTO t VALUES (?, 'x')", [k])
        local.commit()
    r.sync()
    replica_id = r.status()["replica"]
    r.close()
    (mark,) = admin.info(remote, "db")["replicas"]
    assert (mark["replica"], mark["seq"]) == (replica_id, 2) and mark["synced"] > 0
    shown = CliRunner().invoke(app, ["info", "db", "--storage", remote], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert f"replica {replica_id}" in shown.output and "seq 2, last sync" in shown.output


def test_a_marks_table_without_times_gains_them(remote, replica):
    write_remote(remote, "CREATE TABLE _dolite_replicas(replica TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
    conn = replica.connect()  # (the local copy does not have the table: pushes only write the remote)
    conn.execute("INSERT INTO t VALUES (3, 'c')")
    conn.commit()
    replica.sync()
    far = dolite.connect("db", remote)
    assert far.execute("SELECT seq, synced IS NOT NULL FROM _dolite_replicas").fetchall() == [(1, 1)]
    far.close()


def test_a_pull_whose_remote_head_was_overwritten_in_place_meanwhile_starts_again(monkeypatch):
    from dolite.pages import inline
    from dolite.pages.store import PageStore

    monkeypatch.setattr(inline, "MAX_INLINE_BYTES", 0)  # no head holds the page: it is rewritten in place
    remote = open_storage(f"memory:{uuid.uuid4().hex}")
    conn = dolite.connect("db", remote, retention=0.0)  # retention 0: commits write in place
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    conn.commit()
    conn.close()
    r = dolite.replica("db", remote=remote, local=f"memory:{uuid.uuid4().hex}")
    r.sync()
    write_remote(remote, "UPDATE t SET v = v || '1'")
    chunk_as_of, rewrites = PageStore.chunk_as_of, []

    def racing(store, head, chunk):  # the replica's copy of the remote is not the writer's store
        if not rewrites:
            rewrites.append(chunk)
            write_remote(remote, "UPDATE t SET v = v || '2'")  # rewrites the chunk in place
        return chunk_as_of(store, head, chunk)

    monkeypatch.setattr(PageStore, "chunk_as_of", racing)
    r.sync()
    assert rewrites and r.connect().execute("SELECT * FROM t ORDER BY k").fetchall() == [(1, "a12"), (2, "b12")]
    r.close()
