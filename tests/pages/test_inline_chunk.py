"""A chunk held inline in the head (pages/inline.py): with retention 0, rewriting the
same page commits one row, the head; every other path keeps or flushes the held chunk
so that no reader ever gets an older version in its place."""

from __future__ import annotations

import dataclasses

import pytest

import dolite
from dolite.errors import Conflict, CorruptChunk, SnapshotExpired, StorageError
from dolite.ops import admin
from dolite.pages import twophase
from dolite.pages.format import CHUNK_HEADER_BYTES, CHUNK_PREFIX, HEAD, Head, in_place_key
from dolite.pages.store import PageStore
from dolite.storage import open_storage
from dolite.storage.base import DURABLE_OBJECT_LIMITS
from dolite.storage.memory import MemoryNamespace

CHUNK = 4096


def _page(byte: int) -> bytes:
    return bytes([byte]) * CHUNK


class _Rows:
    """Counts the keys each commit writes."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def commit(self, writes, deletes=(), expect=None):
        self.calls.append(sorted(writes))
        self.inner.commit(writes, deletes, expect)


def _store(url: str) -> tuple[PageStore, _Rows]:
    rows = _Rows(open_storage(url).object("db"))
    return PageStore(rows, "db"), rows


def _fresh(url: str) -> PageStore:
    """Another process's view: nothing cached."""
    return PageStore(open_storage(url).object("db"), "db")


def _holding_page_1(url: str) -> tuple[PageStore, _Rows, Head]:
    """A two-page database whose head holds page 1 (written twice: the second rewrite is held)."""
    store, rows = _store(url)
    head = store.commit(store.create(retention=0.0), {0: _page(1), 1: _page(2)}, 2 * CHUNK)
    head = store.commit(head, {1: _page(3)}, 2 * CHUNK)
    assert head.inline.chunk == 1
    return store, rows, head


def _read_fresh(url: str, chunks=(0, 1)) -> list[bytes]:
    """``chunks`` as another process reads them from the newest head."""
    fresh = _fresh(url)
    now = fresh.read_head()
    return [fresh.read_chunk(now, c) for c in chunks]


def test_rewriting_one_page_writes_only_the_head():
    store, rows = _store("memory:inline-rows")
    head = store.commit(store.create(retention=0.0), {0: _page(1), 1: _page(2)}, 2 * CHUNK)
    rows.calls.clear()
    for i in range(10):
        head = store.commit(head, {1: _page(10 + i)}, 2 * CHUNK)
    assert all(keys == [HEAD] or keys == [HEAD, "lease"] for keys in rows.calls), rows.calls
    assert head.inline.chunk == 1 and head.inline.version == head.version
    assert _read_fresh("memory:inline-rows") == [_page(1), _page(19)]


def test_a_commit_of_another_page_flushes_the_held_one_to_its_in_place_key():
    store, rows, head = _holding_page_1("memory:inline-flush")
    head = store.commit(head, {0: _page(4)}, 2 * CHUNK)
    assert head.inline.chunk == 0
    assert in_place_key(1) in rows.calls[-1]
    assert _read_fresh("memory:inline-flush") == [_page(4), _page(3)]


def test_a_version_dropped_while_held_is_an_expired_snapshot_never_an_older_page():
    store, _ = _store("memory:inline-expired")
    head = store.commit(store.create(retention=0.0), {0: _page(1)}, CHUNK)
    first = store.commit(head, {0: _page(2)}, CHUNK)
    middle = store.commit(first, {0: _page(3)}, CHUNK)
    last = store.commit(middle, {0: _page(4)}, CHUNK)
    fresh = _fresh("memory:inline-expired")
    current = fresh.read_head()
    for dropped in (first, middle):
        older = dataclasses.replace(current, version=dropped.version)  # what version_head builds
        with pytest.raises(SnapshotExpired):
            fresh.read_chunk(older, 0)
    assert fresh.read_chunk(dataclasses.replace(current, version=last.version), 0) == _page(4)
    with pytest.raises(SnapshotExpired):
        fresh.read_chunk(fresh.version_head(middle.version, current), 0)


def test_a_pinned_reader_here_gets_its_own_version_and_the_held_page_is_flushed():
    url = "memory:inline-pinned"
    namespace = open_storage(url)
    writer = dolite.connect("db", storage=namespace, isolation_level=None, retention=0.0)
    writer.execute("CREATE TABLE t(v)")
    writer.execute("INSERT INTO t VALUES (0)")
    writer.execute("INSERT INTO t VALUES (1)")
    held = writer.database.store.read_head().inline
    assert held is not None
    reader = dolite.connect("db", storage=namespace, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (2,)
    writer.execute("INSERT INTO t VALUES (2)")  # rewrites the held page, not in place
    head = writer.database.store.read_head()
    assert head.inline is None
    stored = open_storage(url).object("db").get([in_place_key(held.chunk)])
    assert stored[in_place_key(held.chunk)] == held.value  # flushed before the head lost it
    writer.database.store.cache.clear()
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (2,)
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (3,)


def test_a_prepared_transaction_flushes_the_held_page_and_its_head_holds_none():
    store, rows, head = _holding_page_1("memory:inline-2pc")
    txn = twophase.TxnRef("t1", "coordinator", "owner", 1e12)
    prepared = twophase.prepare(store, head, {0: _page(4)}, 2 * CHUNK, txn)
    assert in_place_key(1) in rows.calls[-1]
    assert prepared.new.inline is None
    rows.inner.commit({HEAD: prepared.new.encode()}, expect={HEAD: head.encode()})
    assert _read_fresh("memory:inline-2pc") == [_page(4), _page(3)]


def test_truncating_below_the_held_page_drops_it():
    store, _, head = _holding_page_1("memory:inline-cut")
    head = store.commit(head, {}, CHUNK)  # no chunk written: not in place, not held
    assert head.inline is None
    head = store.commit(head, {1: _page(5)}, 2 * CHUNK)
    assert _read_fresh("memory:inline-cut", [1]) == [_page(5)]


def test_a_sql_workload_reads_back_and_checks_clean(storage_url):
    conn = dolite.connect("db", storage=storage_url, isolation_level=None, retention=0.0)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(300):
        conn.execute("INSERT INTO t(v) VALUES (?)", ("x" * 50 + str(i),))
        if i % 50 == 7:
            conn.execute("UPDATE t SET v = 'y' WHERE id = ?", (i // 2,))
    assert conn.database.store.read_head().inline is not None
    expected = conn.execute("SELECT sum(length(v)), count(*) FROM t").fetchone()
    conn.close()
    other = dolite.connect("db", storage=storage_url)
    assert other.execute("SELECT sum(length(v)), count(*) FROM t").fetchone() == expected
    assert other.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    other.close()
    assert admin.check(storage_url, "db").ok


def test_a_damaged_held_chunk_is_a_corrupt_head():
    store, rows = _store("memory:inline-damaged")
    head = store.commit(store.create(retention=0.0), {0: _page(1)}, CHUNK)
    head = store.commit(head, {0: _page(2)}, CHUNK)
    raw = bytearray(head.encode())
    raw[-5] ^= 1
    with pytest.raises(CorruptChunk, match="chunk the head holds"):
        Head.decode(bytes(raw))
    with pytest.raises(CorruptChunk, match="past its end"):
        Head.decode(head.holding(None).encode() + b"\0junk")
    assert Head.decode(head.encode()) == head
    assert not [k for k in rows.inner.list(prefix=CHUNK_PREFIX)]  # chunk 0 only ever held


def test_a_page_whose_newest_version_has_a_key_of_its_own_is_not_held():
    """Held, it would leave its in-place key older than that version key, which GC then
    deletes: a reader elsewhere still on that version would find the older page."""
    store, _ = _store("memory:inline-keyed")
    head = store.commit(store.create(retention=0.0), {0: _page(1), 1: _page(2)}, 2 * CHUNK)
    head = store.commit(head, {0: _page(3)}, 2 * CHUNK)  # flushes 1 in place, holds 0
    store.pin(head)
    keyed = store.commit(head, {1: _page(4)}, 2 * CHUNK)  # a reader here: a version key
    store.unpin(head)
    head = store.commit(keyed, {1: _page(5)}, 2 * CHUNK)
    assert store.collect_garbage() >= 1
    fresh = _fresh("memory:inline-keyed")
    with pytest.raises(SnapshotExpired):
        fresh.read_chunk(keyed, 1)  # its head, read before (another process's reader)
    assert fresh.read_chunk(fresh.read_head(), 1) == _page(5)


def test_a_big_transaction_that_spilled_the_held_page_does_not_keep_holding_it():
    store, _, head = _holding_page_1("memory:inline-spill")
    at = store.spill(head, {1: bytearray(_page(4))}, part=1)
    new = store.commit(head, {0: _page(5)}, 2 * CHUNK, spilled=[1], spilled_at=at)
    assert new.inline is None or new.inline.chunk != 1
    assert _read_fresh("memory:inline-spill") == [_page(5), _page(4)]


def test_a_held_commit_whose_reply_was_lost_is_resolved_before_it_returns():
    from tests.pages.test_in_place_writes import _Flaky

    flaky = _Flaky(open_storage("memory:inline-lost").object("db"))
    store = PageStore(flaky, "db")
    head = store.commit(store.create(retention=0.0), {0: _page(1)}, CHUNK)
    flaky.fail = "after"
    new = store.commit(head, {0: _page(2)}, CHUNK)
    assert new.inline.chunk == 0 and store.read_head().encode() == new.encode()
    flaky.fail = "before"
    with pytest.raises(StorageError):
        store.commit(new, {0: _page(3)}, CHUNK)
    writes, deletes, expect = flaky.kept
    with pytest.raises(Conflict):
        flaky.inner.commit(writes, deletes, expect)  # delivered late: refused
    assert _fresh("memory:inline-lost").read_chunk(store.read_head(), 0) == _page(2)


def test_a_head_that_would_outgrow_a_value_holds_no_chunk():
    limits = dataclasses.replace(DURABLE_OBJECT_LIMITS, max_value_bytes=2 * CHUNK + CHUNK_HEADER_BYTES + 100)
    store = PageStore(MemoryNamespace(limits=limits).object("db"), "db")
    base = store.create(chunk_size=2 * CHUNK, retention=0.0)
    head = store.commit(base, {0: _page(1) * 2}, 2 * CHUNK)  # stored, as a head it would not fit
    head = store.commit(head, {0: _page(2) * 2}, 2 * CHUNK)
    assert head.inline is None
    assert store.read_chunk(store.read_head(), 0) == _page(2) * 2


def test_an_older_head_put_back_is_caught_by_the_log_its_successors_left():
    """The newer heads held the page, so storage has no page version past the old head;
    their log's batch rows give it away before a writer builds on it."""
    url = "memory:inline-put-back"
    conn = dolite.connect("db", storage=url, isolation_level=None, retention=0.0)
    conn.execute("CREATE TABLE t(v)")
    obj = open_storage(url).object("db")
    old_head = obj.get([HEAD])[HEAD]
    for i in range(40):  # past one batch row of records (32)
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    conn.close()
    obj.put({HEAD: old_head})
    with pytest.raises(CorruptChunk, match="the head was rolled back"):
        dolite.connect("db", storage=url, isolation_level=None).execute("INSERT INTO t VALUES (99)")
