"""Regression tests for the core-correctness review (issue #8): every connection sees every
committed version, a landed commit is never reported failed, a dropped database never
serves its old data, and fencing holds against late-delivered requests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

import dolite
from dolite.errors import Conflict, DatabaseNotFound, LeaseHeld, SnapshotExpired, StorageError
from dolite.pages import PageStore
from dolite.storage import open_storage
from tests.torture.faulty import FaultyNamespace


def _balance(conn) -> int:
    return conn.execute("SELECT bal FROM acct WHERE id = 1").fetchone()[0]


def _bank(url: str, name: str = "acct") -> None:
    conn = dolite.connect(name, storage=url, isolation_level=None)
    conn.execute("CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER)")
    conn.execute("INSERT INTO acct VALUES (1, 0)")
    conn.close()


def _fresh(url: str):
    """The same storage seen through a new namespace wrapper: a new VFS, as another
    process would have."""
    return FaultyNamespace(open_storage(url))


# -- 1. exclusive and normal connections see each other's commits -------------------------

@pytest.mark.parametrize("same_vfs", [True, False])
def test_normal_reader_sees_every_exclusive_commit(same_vfs):
    url = f"memory:{uuid.uuid4().hex}"
    _bank(url)
    ns_x = _fresh(url)
    ns_y = ns_x if same_vfs else _fresh(url)
    x = dolite.connect("acct", storage=ns_x, exclusive=True, isolation_level=None)
    y = dolite.connect("acct", storage=ns_y, isolation_level=None, timeout=0)
    try:
        x.execute("UPDATE acct SET bal = bal + 10 WHERE id = 1")
        assert _balance(y) == 10
        for _ in range(4):
            x.execute("UPDATE acct SET bal = bal + 10 WHERE id = 1")
        assert _balance(x) == 50
        assert _balance(y) == 50  # was 10: y's SQLite page cache was never dropped
        if same_vfs:
            return  # writers in one process take turns on the exclusive connection's lock
        x.close()
        y.execute("UPDATE acct SET bal = bal + 1000 WHERE id = 1")
        assert _balance(y) == 1050
    finally:
        x.close()
        y.close()


def test_normal_reader_in_another_process_sees_exclusive_commits(tmp_path):
    url = f"lmdb:{tmp_path}/lmdb"
    _bank(url)
    script = textwrap.dedent(f"""
        import sys
        import dolite
        x = dolite.connect("acct", storage={url!r}, exclusive=True, isolation_level=None)
        for line in sys.stdin:
            for _ in range(int(line)):
                x.execute("UPDATE acct SET bal = bal + 10 WHERE id = 1")
            print("done", flush=True)
        x.close()
    """)
    x = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    y = dolite.connect("acct", storage=url, isolation_level=None)
    try:
        for count, expected in ((1, 10), (4, 50)):
            x.stdin.write(f"{count}\n")
            x.stdin.flush()
            assert x.stdout.readline() == "done\n"
            assert _balance(y) == expected  # was 10 after the second round
        x.stdin.close()
        assert x.wait(timeout=60) == 0
        y.execute("UPDATE acct SET bal = bal + 1000 WHERE id = 1")
        assert _balance(y) == 1050
    finally:
        x.kill()
        y.close()


# -- 2. an exclusive connection never keeps serving an old snapshot -----------------------

def test_exclusive_connection_notices_a_commit_made_during_its_first_statement():
    url = f"memory:{uuid.uuid4().hex}"
    _bank(url)
    ns_x = _fresh(url)
    w = dolite.connect("acct", storage=_fresh(url), isolation_level=None)
    w.execute("UPDATE acct SET bal = 3 WHERE id = 1")  # w holds the write lease
    x = dolite.connect("acct", storage=ns_x, exclusive=True, isolation_level=None)
    fired = []

    def commit_elsewhere():  # inside x's first statement, after it pinned its version
        fired.append(1)
        w.execute("UPDATE acct SET bal = 7 WHERE id = 1")
        w.close()

    ns_x.faults.on_stall = commit_elsewhere
    ns_x.faults.arm(at=3, mode="stall")  # head, head (pin), first chunk
    try:
        assert _balance(x) == 3
        assert fired
        ns_x.faults.arm(None)
        assert _balance(x) == 7  # was 3 for ever: x's cache was never dropped
    finally:
        x.close()


# -- 3. a storage error after the head moved does not turn a landed commit into a failure --

def test_gc_failure_after_commit_is_not_a_failed_commit(monkeypatch):
    url = f"memory:{uuid.uuid4().hex}"
    _bank(url)
    conn = dolite.connect("acct", storage=url, isolation_level=None)
    store = conn.database.store

    def broken(*args, **kwargs):
        raise StorageError("injected: storage unreachable during GC")

    monkeypatch.setattr("dolite.pages.gc.collect", broken)
    store._commits_since_gc = 10_000  # GC is due on this commit
    conn.execute("UPDATE acct SET bal = bal + 1 WHERE id = 1")  # must not raise
    assert store.stats["gc_errors"] == 1
    other = dolite.connect("acct", storage=_fresh(url))
    assert _balance(other) == 1
    other.close()
    conn.close()


# -- 4. drop and re-create while a process has the database open -------------------------

@pytest.mark.parametrize("cache_bytes", [64 << 20, 4096])
def test_drop_and_recreate_never_serves_the_dropped_data(cache_bytes):
    url = f"memory:{uuid.uuid4().hex}"
    _bank(url)
    holder_ns = _fresh(url)
    holder = dolite.connect("acct", storage=holder_ns, isolation_level=None, cache_bytes=cache_bytes)
    holder.execute("UPDATE acct SET bal = 111 WHERE id = 1")
    assert _balance(holder) == 111
    holder.database.store.close()  # give the lease back, as an idle process would
    from dolite.ops import admin

    admin.drop(url, "acct")
    other = dolite.connect("acct", storage=_fresh(url), isolation_level=None)
    other.execute("CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER)")
    other.execute("INSERT INTO acct VALUES (1, 0)")
    other.execute("UPDATE acct SET bal = 5 WHERE id = 1")  # the same version numbers as before
    other.close()
    assert _balance(holder) == 5
    assert holder.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    holder.close()


def test_drop_refuses_while_a_live_writer_holds_the_lease():
    url = f"memory:{uuid.uuid4().hex}"
    _bank(url)
    from dolite.ops import admin

    holder = dolite.connect("acct", storage=_fresh(url), isolation_level=None)
    holder.execute("UPDATE acct SET bal = 1 WHERE id = 1")  # holds the write lease now
    with pytest.raises(LeaseHeld):
        admin.drop(url, "acct")
    assert _balance(holder) == 1
    admin.drop(url, "acct", force=True)
    holder.close()


# -- 5. an expired snapshot is reported as such, not as corruption ------------------------

def test_snapshot_removed_by_gc_elsewhere_is_snapshot_expired():
    url = f"memory:{uuid.uuid4().hex}"
    conn = dolite.connect("acct", storage=url, isolation_level=None, retention=0)
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (randomblob(20000))")
    reader_store = PageStore(open_storage(url).object("acct"), "acct")
    old = reader_store.read_head()
    reader_store.read_chunk(old, 3)  # learn where chunk 3 lives at this version
    reader_store.cache.clear()
    conn.execute("UPDATE t SET v = randomblob(20000)")
    conn.database.store.collect_garbage(now=time.time() + 10)
    with pytest.raises(SnapshotExpired):
        reader_store.read_chunk(old, 3)
    conn.close()


# -- 6. a pending lease renewal does not outlive a failed commit --------------------------

def test_failed_commit_forgets_its_lease_renewal():
    url = f"memory:{uuid.uuid4().hex}"
    ns = _fresh(url)
    store = PageStore(ns.object("db"), "db", lease_ttl=4.0)
    head = store.create(chunk_size=512)
    head = store.commit(head, {0: b"a" * 512}, 512)
    lease = store.lease
    lease.held = lease.held.__class__(lease.held.epoch, lease.owner, time.time() + 1.5)
    lease.raw = lease.held.encode()
    ns._inner.object("db").put({"lease": lease.raw})  # past half its time: renewal is due
    ns.faults.arm(at=1, mode="fail")  # the commit carrying the renewal never lands
    with pytest.raises(StorageError):
        store.commit(head, {0: b"b" * 512}, 512)
    ns.faults.arm(None)
    store.close()  # the lease is given back; the next commit takes a fresh one
    head = store.commit(store.read_head(), {0: b"c" * 512}, 512)
    store.commit(head, {0: b"d" * 512}, 512)  # was: a spurious Conflict (stale renewal kept)
    assert store.read_chunk(store.read_head(), 0) == b"d" * 512


# -- 7. options that cannot apply are refused, not ignored -------------------------------

def test_conflicting_store_options_are_refused():
    ns = _fresh(f"memory:{uuid.uuid4().hex}")
    first = dolite.connect("db", storage=ns)
    try:
        with pytest.raises(dolite.ProgrammingError, match="lease_ttl"):
            dolite.connect("db", storage=ns, lease_ttl=1.5)
        with pytest.raises(dolite.ProgrammingError, match="cache_bytes"):
            dolite.connect("db", storage=ns, cache_bytes=65536)
        same = dolite.connect("db", storage=ns, cache_bytes=64 << 20)  # what is in effect
        same.close()
    finally:
        first.close()


# -- 8. a head compare-and-set delivered late cannot land after debris cleanup -----------

class LateDelivery:
    """Storage whose N-th commit call is held back: the caller hears a timeout, and the
    request reaches storage later, when :meth:`deliver` is called."""

    def __init__(self, inner):
        self._inner, self.limits = inner, inner.limits
        self.hold_at: int | None = None
        self.calls = 0
        self.held = None

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def commit(self, writes, deletes=(), expect=None):
        self.calls += 1
        if self.calls == self.hold_at:
            self.held = (dict(writes), list(deletes), dict(expect or {}))
            raise StorageError("injected: commit request timed out (it may still arrive)")
        return self._inner.commit(writes, deletes, expect)

    def deliver(self):
        writes, deletes, expect = self.held
        return self._inner.commit(writes, deletes, expect)


def test_late_head_write_after_cleanup_is_refused():
    inner = open_storage(f"memory:{uuid.uuid4().hex}").object("db")
    late = LateDelivery(inner)
    store = PageStore(late, "db")
    head = store.create(chunk_size=512)
    head = store.commit(head, {0: b"a" * 512}, 512)
    many = {c: bytes([c % 250 + 1]) * 512 for c in range(300)}  # several batches
    late.calls, late.hold_at = 0, 4  # log record, batch, batch, (held) head
    with pytest.raises(StorageError):
        store.commit(head, many, 300 * 512)
    late.hold_at = None
    store.ensure_writable()  # the writer's next step: debris of v2 is cleaned up
    with pytest.raises(Conflict):
        late.deliver()
    fresh = PageStore(inner, "db")
    head = fresh.read_head()
    assert head.version == 1 and fresh.read_chunk(head, 0) == b"a" * 512


# -- the threads variant of 1: a writer thread's commits and a reader thread -------------

def test_reader_thread_tracks_exclusive_writer_thread():
    url = f"memory:{uuid.uuid4().hex}"
    _bank(url)
    ns = _fresh(url)
    x = dolite.connect("acct", storage=ns, exclusive=True, isolation_level=None)
    y = dolite.connect("acct", storage=_fresh(url), isolation_level=None)
    seen = []

    def write():
        for _ in range(20):
            x.execute("UPDATE acct SET bal = bal + 1 WHERE id = 1")

    t = threading.Thread(target=write)
    t.start()
    while t.is_alive():
        seen.append(_balance(y))
    t.join()
    assert seen == sorted(seen)
    assert _balance(y) == 20
    x.close()
    y.close()


def test_a_zombie_lease_holder_counts_as_gone():
    """Issue #10 item 15: a writer that died but was not yet reaped (a zombie) still
    answers kill(pid, 0); its lease must not keep every other writer out for 30 s."""
    from dolite.pages.lease import HOST, Lease

    child = subprocess.Popen(["true"])
    try:
        for _ in range(200):  # until it has exited (and, unreaped, is a zombie)
            with open(f"/proc/{child.pid}/stat", "rb") as stat:
                if stat.read().rpartition(b")")[2].split()[0] == b"Z":
                    break
            time.sleep(0.01)
        lease = Lease(epoch=1, owner=f"{HOST}:{child.pid}:abcd1234", expires=time.time() + 30)
        assert lease.holder_is_gone(time.time())
        alive = Lease(epoch=1, owner=f"{HOST}:{os.getpid()}:abcd1234", expires=time.time() + 30)
        assert not alive.holder_is_gone(time.time())
    finally:
        child.wait()
