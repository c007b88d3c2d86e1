"""Garbage collection off the commit path where every storage call is a round trip
(``Limits.remote``): the commit that makes GC due does not wait for the pass, commits go on
while it runs, a pass never deletes a version a pin or the head still needs, a delete
refused because our own lease moved on is retried, and ``close`` waits for the pass.

The storage here is ``memory:`` behind :class:`_Gated`, which reports the Durable Object's
limits (remote) and can hold GC's calls on an Event, so every interleaving is forced, not
timed.
"""

from __future__ import annotations

import threading

import pytest

from dolite.pages import store as store_module
from dolite.pages.format import CHUNK_PREFIX, GC, LEASE, Head
from dolite.pages.lease import Lease
from dolite.pages.store import PageStore
from dolite.storage import open_storage
from dolite.storage.durable_object import DO_LIMITS

# Superseded versions are dropped at once, as with retention 0, which would instead write
# in place (pages/in_place.py): these tests are about the version keys GC deletes.
NO_WINDOW = 1e-9

CHUNK = 4096
HANG_GUARD = 10.0  # seconds a held call waits at most: only so a broken build fails, not hangs


class _Gated:
    """A pass-through object storage with the Durable Object's limits. While ``hold`` is
    set, each call ``holds(method, args)`` picks waits for ``release`` (with its entry
    and return recorded in ``events``)."""

    def __init__(self, inner):
        self.inner = inner
        self.limits = DO_LIMITS
        self.hold = False
        self.holds = _is_gc_cursor_read
        self.entered, self.release = threading.Event(), threading.Event()
        self.events: list[str] = []

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def call(*args, **kwargs):
            held = self.hold and self.holds(name, args, kwargs)
            if held:
                self.events.append(f"{name} held")
                self.entered.set()
                self.release.wait(HANG_GUARD)
            try:
                return method(*args, **kwargs)
            finally:
                if held:
                    self.events.append(f"{name} returned")
                if name == "commit" and _releases_lease(args, kwargs):
                    self.events.append("lease released")

        return call


def _is_gc_cursor_read(name, args, kwargs) -> bool:
    return name == "get" and GC in list(args[0])


def _is_gc_delete(name, args, kwargs) -> bool:
    return name == "commit" and bool(kwargs.get("deletes") or (args[1:2] and args[1]))


def _releases_lease(args, kwargs) -> bool:
    raw = (args[0] if args else kwargs.get("writes", {})).get(LEASE)
    return raw is not None and Lease.decode(raw).expires == 0.0


@pytest.fixture
def gated(monkeypatch):
    monkeypatch.setattr(store_module, "GC_EVERY", 4)
    return _Gated(open_storage("memory:").object("db"))


def _chunks(i: int) -> dict[int, bytes]:
    return {i % 3: bytes([i % 251]) * CHUNK}


def _commits(store: PageStore, head: Head, first: int, count: int) -> Head:
    for i in range(first, first + count):
        head = store.commit(head, _chunks(i), 3 * CHUNK)
    return head


def test_the_commit_that_makes_gc_due_does_not_wait_for_the_pass(gated):
    store = PageStore(gated, "db")
    head = _commits(store, store.create(retention=NO_WINDOW), 0, 3)
    gated.hold = True
    head = _commits(store, head, 3, 1)  # the 4th commit: GC is due
    assert "get returned" not in gated.events  # the pass's first call is still held
    head = _commits(store, head, 4, 3)  # and commits go on meanwhile
    gated.release.set()
    store.wait_for_gc()
    assert gated.events[:2] == ["get held", "get returned"]
    assert store.stats["gc_errors"] == 0 and store.stats["commits"] == 7
    store.close()


def test_commits_go_on_while_the_pass_deletes(gated):
    store = PageStore(gated, "db")
    head = _commits(store, store.create(retention=NO_WINDOW), 0, 3)
    gated.hold, gated.holds = True, _is_gc_delete
    head = _commits(store, head, 3, 1)
    assert gated.entered.wait(HANG_GUARD)  # the pass reached its deletes, held there
    head = _commits(store, head, 4, 2)  # neither the commit lock nor anything else blocks these
    assert gated.events == ["commit held"]
    gated.release.set()
    store.wait_for_gc()
    assert store.stats["gc_errors"] == 0
    store.close()


def test_local_storage_collects_inline_before_the_commit_returns(monkeypatch):
    monkeypatch.setattr(store_module, "GC_EVERY", 4)
    storage = open_storage("memory:").object("db")
    store = PageStore(storage, "db")
    _commits(store, store.create(retention=NO_WINDOW), 0, 4)
    assert GC in storage.get([GC])  # the pass ran on the committing thread
    store.close()


def _pinned_reads_hold(storage, pinned: list[tuple[Head, dict[int, bytes]]]) -> None:
    """A fresh store (no cache) reads every pinned version exactly as it was committed."""
    fresh = PageStore(storage, "db")
    for head, expected in pinned:
        for chunk, data in expected.items():
            assert fresh.read_chunk(head, chunk) == data, (head.version, chunk)


def test_interleaved_passes_keep_every_pinned_version(gated):
    store = PageStore(gated, "db")
    head = store.create(retention=NO_WINDOW)
    current: dict[int, bytes] = {}
    pinned: list[tuple[Head, dict[int, bytes]]] = []
    for i in range(40):  # a pass starts every 4th commit unless one is still running
        head = store.commit(head, _chunks(i), 3 * CHUNK)
        current.update(_chunks(i))
        if i % 7 == 0:
            store.pin(head)
            pinned.append((head, dict(current)))
    store.wait_for_gc()
    _pinned_reads_hold(gated.inner, pinned)
    for head_pinned, _ in pinned:
        store.unpin(head_pinned)
    while store.collect_garbage():
        pass
    assert len(gated.inner.list(prefix=CHUNK_PREFIX)) == 3  # the newest version of each chunk
    _pinned_reads_hold(gated.inner, [(head, current)])
    assert store.stats["gc_errors"] == 0
    store.close()


def test_a_delete_refused_after_our_lease_moved_on_is_retried(gated, monkeypatch):
    monkeypatch.setattr(store_module, "GC_EVERY", 1000)
    store = PageStore(gated, "db")
    head = _commits(store, store.create(retention=NO_WINDOW), 0, 6)
    store.pin(head)  # v6 needs the versions of v4..v6; those of v1..v3 may go
    pinned = [(head, {c: d for i in range(3, 6) for c, d in _chunks(i).items()})]
    gated.hold, gated.holds = True, _is_gc_delete
    monkeypatch.setattr(store_module, "GC_EVERY", 1)
    head = _commits(store, head, 6, 1)
    assert gated.entered.wait(HANG_GUARD)
    assert store._commit_lock.acquire(timeout=HANG_GUARD)  # the pass does not hold it
    try:
        store.lease.new_term()  # our lease's bytes change under the pass: its fence is stale
    finally:
        store._commit_lock.release()
    gated.hold = False
    gated.release.set()
    store.wait_for_gc()
    assert store.stats["gc_errors"] == 0  # refused once, then retried with the new lease
    assert GC in gated.inner.get([GC])
    _pinned_reads_hold(gated.inner, pinned)
    store.close()


def test_a_failed_background_pass_is_counted_not_raised(gated, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("injected: storage unreachable during GC")

    monkeypatch.setattr("dolite.pages.gc.collect", broken)
    store = PageStore(gated, "db")
    _commits(store, store.create(retention=NO_WINDOW), 0, 4)  # must not raise
    store.wait_for_gc()
    assert store.stats["gc_errors"] == 1
    store.close()


def test_close_waits_for_the_pass_in_flight(gated):
    store = PageStore(gated, "db")
    head = _commits(store, store.create(retention=NO_WINDOW), 0, 3)
    gated.hold, gated.holds = True, _is_gc_delete
    _commits(store, head, 3, 1)
    assert gated.entered.wait(HANG_GUARD)
    # Unblock the pass a little later, from elsewhere; close must not give the lease back
    # while the pass is held (the order of events says so, not the delay).
    unblock = threading.Timer(0.2, gated.release.set)
    unblock.start()
    store.close()
    unblock.join()
    assert gated.events == ["commit held", "commit returned", "lease released"]
    assert store.stats["gc_errors"] == 0


@pytest.mark.parametrize("retention", [NO_WINDOW, 0.0])
def test_a_readers_snapshot_survives_gc_on_every_backend(storage_url, monkeypatch, retention):
    """Through SQL, on each backend (do: passes in the background; the others: inline):
    a reader in a transaction keeps reading its snapshot while a writer's
    commits make GC due again and again, with no retention (with retention 0 the writer
    would write in place, but not while the reader here has its version pinned)."""
    import dolite

    monkeypatch.setattr(store_module, "GC_EVERY", 3)
    namespace = open_storage(storage_url)  # one namespace: both connections share its store
    writer = dolite.connect("db", storage=namespace, isolation_level=None, retention=retention)
    writer.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(12):
        writer.execute("INSERT INTO t(v) VALUES (?)", (f"{i:03d}" * 200,))
    reader = dolite.connect("db", storage=namespace, isolation_level=None)
    assert reader.database.store is writer.database.store  # pins are per store
    assert writer.database.store.limits.remote == storage_url.startswith("do+")
    snapshot = "SELECT count(*), sum(length(v)), group_concat(substr(v, 1, 3)) FROM t"
    reader.execute("BEGIN")
    before = reader.execute(snapshot).fetchone()
    for i in range(30):  # rewrites the same pages: every commit supersedes versions
        writer.execute("UPDATE t SET v = ? WHERE id = ?", (f"{i:03d}" * 250, i % 12 + 1))
    writer.database.store.wait_for_gc()
    assert reader.execute(snapshot).fetchone() == before
    reader.execute("COMMIT")
    assert writer.database.store.stats["gc_errors"] == 0
    assert writer.database.store.stats["gc_passes"] > 0
    reader.close()
    writer.close()
    fresh = dolite.connect("db", storage=storage_url)
    assert fresh.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert fresh.execute("SELECT count(*) FROM t").fetchone() == (12,)
    fresh.close()
    namespace.close()
