"""Commits written in place (pages/in_place.py): with retention 0 a single-call commit
overwrites each chunk's in-place key, so rewriting a page adds no key for GC to delete;
version keys are written as before whenever something may still need the old version
(a reader here, a GC hold, a commit too big for one call), and a commit whose reply is
lost is resolved before it returns."""

from __future__ import annotations

import threading

import pytest

import dolite
from dolite.errors import Conflict, StorageError
from dolite.ops import admin
from dolite.pages import inline
from dolite.pages.file import PagedFile
from dolite.pages.format import CHUNK_PREFIX, HEAD, chunk_key, chunk_prefix, in_place_key
from dolite.pages.holds import set_hold
from dolite.pages.store import PageStore
from dolite.storage import open_storage

CHUNK = 4096
HANG_GUARD = 10.0


@pytest.fixture(autouse=True)
def no_held_chunks(monkeypatch):
    """These tests are about in-place keys: no head holds a chunk inline, which would keep
    rewritten pages out of them (tests/pages/test_inline_chunk.py tests that)."""
    monkeypatch.setattr(inline, "MAX_INLINE_BYTES", 0)


def _kinds(obj) -> tuple[int, int]:
    """(in-place keys, version keys) stored."""
    keys = list(obj.list(prefix=CHUNK_PREFIX))
    in_place = sum(key.endswith("/~") for key in keys)
    return in_place, len(keys) - in_place


def test_single_row_commits_rewrite_their_chunks_in_place(storage_url, opened):
    conn = dolite.connect("db", storage=storage_url, isolation_level=None, retention=0.0)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO t(v) VALUES ('x')")
    obj = opened(storage_url)
    before = _kinds(obj)
    for i in range(40):
        conn.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}",))
    assert _kinds(obj) == before and before[0] >= 2  # 40 commits added no key
    assert conn.database.store.collect_garbage() == 1  # ... and left none to delete (1: the
    assert _kinds(obj) == before  # batch row holding the first 32 commits' records)
    conn.close()
    assert dolite.connect("db", storage=storage_url).execute("SELECT count(*) FROM t").fetchone() == (41,)
    assert admin.check(storage_url, "db").ok


def test_a_database_with_a_retention_window_keeps_version_keys(opened):
    conn = dolite.connect("db", storage="memory:window", isolation_level=None, retention=600.0)
    conn.execute("CREATE TABLE t(v)")
    for i in range(5):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    conn.close()
    in_place, versions = _kinds(opened("memory:window"))
    assert in_place == 0 and versions >= 6


def test_a_commit_too_big_for_one_call_writes_in_place_only_past_the_end_of_file(opened):
    conn = dolite.connect("db", storage="memory:big", isolation_level=None, retention=0.0)
    conn.execute("CREATE TABLE t(v)")
    obj = opened("memory:big")
    in_place, versions = _kinds(obj)
    conn.execute("INSERT INTO t VALUES (randomblob(200 * 4096))")  # ~200 new chunks: several calls
    assert _kinds(obj)[0] >= in_place + 195 and _kinds(obj)[1] <= versions + 5
    in_place, versions = _kinds(obj)
    conn.execute("UPDATE t SET v = randomblob(200 * 4096)")  # the same chunks again: not in place
    assert _kinds(obj)[0] == in_place and _kinds(obj)[1] >= versions + 195
    expected = conn.execute("SELECT hex(v) FROM t").fetchone()
    conn.close()
    assert dolite.connect("db", storage="memory:big").execute("SELECT hex(v) FROM t").fetchone() == expected
    assert admin.check("memory:big", "db").ok


def test_a_reader_here_keeps_its_snapshot_and_the_writer_uses_version_keys(opened):
    url = "memory:pinned"
    namespace = open_storage(url)
    writer = dolite.connect("db", storage=namespace, isolation_level=None, retention=0.0)
    writer.execute("CREATE TABLE t(v)")
    writer.execute("INSERT INTO t VALUES (0)")
    reader = dolite.connect("db", storage=namespace, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)
    obj = opened(url)
    versions = _kinds(obj)[1]
    for i in range(5):
        writer.execute("INSERT INTO t VALUES (?)", (i,))
    assert _kinds(obj)[1] > versions  # not in place: the reader's version is pinned
    writer.database.store.cache.clear()
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)
    reader.execute("COMMIT")
    versions = _kinds(obj)[1]
    writer.execute("INSERT INTO t VALUES (9)")
    assert _kinds(obj)[1] == versions  # no reader left: in place again
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (7,)


def test_a_gc_hold_keeps_the_writer_on_version_keys(opened):
    url = "memory:held"
    set_hold(opened(url), "backup", 0)
    conn = dolite.connect("db", storage=url, isolation_level=None, retention=0.0)
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    assert _kinds(opened(url))[0] == 0


class _Flaky:
    """A storage whose next ``commit`` of a head fails: after applying it (the reply is
    lost) or before (never sent; the call kept to deliver late)."""

    def __init__(self, inner):
        self.inner = inner
        self.fail: str | None = None
        self.kept: tuple | None = None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def commit(self, writes, deletes=(), expect=None):
        fail, self.fail = (self.fail, None) if HEAD in writes else (None, self.fail)
        if fail == "before":
            self.kept = (dict(writes), list(deletes), dict(expect or {}))
            raise StorageError("connection reset before the request was sent")
        self.inner.commit(writes, deletes, expect)
        if fail == "after":
            raise StorageError("connection reset before the reply")


def _store(url: str) -> tuple[PageStore, _Flaky]:
    flaky = _Flaky(open_storage(url).object("db"))
    store = PageStore(flaky, "db")
    return store, flaky


def test_a_commit_whose_reply_was_lost_returns_once_it_is_seen_landed():
    store, flaky = _store("memory:reply-lost")
    head = store.commit(store.create(retention=0.0), {0: b"a" * CHUNK}, CHUNK)
    flaky.fail = "after"
    new = store.commit(head, {0: b"b" * CHUNK}, CHUNK)
    assert new.version == head.version + 1 and store.read_head().encode() == new.encode()
    fresh = PageStore(open_storage("memory:reply-lost").object("db"), "db")
    assert fresh.read_chunk(fresh.read_head(), 0) == b"b" * CHUNK
    store.commit(new, {0: b"c" * CHUNK}, CHUNK)  # and the store writes on


def test_a_commit_that_never_landed_is_fenced_and_the_base_stays_readable():
    store, flaky = _store("memory:never-landed")
    head = store.commit(store.create(retention=0.0), {0: b"a" * CHUNK}, CHUNK)
    flaky.fail = "before"
    with pytest.raises(StorageError):
        store.commit(head, {0: b"b" * CHUNK}, CHUNK)
    writes, deletes, expect = flaky.kept
    assert in_place_key(0) in writes  # it was a commit in place
    with pytest.raises(Conflict):
        flaky.inner.commit(writes, deletes, expect)  # delivered late: refused
    store.cache.clear()
    assert store.read_chunk(head, 0) == b"a" * CHUNK
    assert store.commit(head, {0: b"c" * CHUNK}, CHUNK).version == head.version + 1


def test_no_reader_here_pins_the_base_while_a_commit_overwrites_it():
    store, flaky = _store("memory:gate")
    head = store.commit(store.create(retention=0.0), {0: b"a" * CHUNK}, CHUNK)
    entered, release = threading.Event(), threading.Event()
    inner_commit = flaky.inner.commit

    def slow_commit(writes, deletes=(), expect=None):
        if HEAD in writes:
            entered.set()
            release.wait(HANG_GUARD)
        inner_commit(writes, deletes, expect)
    flaky.inner.commit = slow_commit
    committer = threading.Thread(target=store.commit, args=(head, {0: b"b" * CHUNK}, CHUNK))
    committer.start()
    assert entered.wait(HANG_GUARD)
    reader = PagedFile(store)
    began = threading.Thread(target=reader.begin)
    began.start()
    began.join(0.2)
    assert began.is_alive()  # waits for the commit in place ...
    release.set()
    began.join(HANG_GUARD)
    committer.join(HANG_GUARD)
    assert reader.head.version == head.version + 1  # ... and reads the version it made
    store.cache.clear()
    assert reader.read(CHUNK, 0) == b"b" * CHUNK
    assert chunk_key(0, head.version + 1) not in flaky.inner.list(prefix=chunk_prefix(0))


def test_a_big_commit_that_never_landed_leaves_in_place_debris_removed_before_the_next():
    store, flaky = _store("memory:big-debris")
    head = store.commit(store.create(retention=0.0), {0: b"a" * CHUNK}, CHUNK)
    flaky.fail = "before"  # its last call, the head's, never lands
    with pytest.raises(StorageError):
        store.commit(head, {c: bytes([c % 251]) * CHUNK for c in range(200)}, 200 * CHUNK)
    obj = flaky.inner
    assert in_place_key(150) in obj.get([in_place_key(150)])  # written in place, uncommitted
    fresh = PageStore(open_storage("memory:big-debris").object("db"), "db")
    assert fresh.read_head().version == head.version
    assert fresh.read_chunk(fresh.read_head(), 0) == b"a" * CHUNK
    new = store.commit(head, {0: b"c" * CHUNK, 1: b"d" * CHUNK}, 2 * CHUNK)
    assert _kinds(obj) == (2, 0)  # the debris went first
    fresh = PageStore(open_storage("memory:big-debris").object("db"), "db")
    assert [fresh.read_chunk(new, c) for c in (0, 1)] == [b"c" * CHUNK, b"d" * CHUNK]


def test_a_first_look_at_a_head_others_have_committed_past_is_no_rollback(opened):
    """A process's first head read, then commits elsewhere (one flushing a batch row of the
    log, keyed by its base's version) before the log is checked: not a head put back."""
    from dolite.errors import CorruptChunk
    from dolite.pages import integrity
    from dolite.pages.log import RECENT_MAX

    conn = dolite.connect("db", storage="memory:first-look", isolation_level=None, retention=0.0)
    conn.execute("CREATE TABLE t(v)")
    obj = opened("memory:first-look")
    old = PageStore(obj, "db").read_head()
    conn.execute("INSERT INTO t VALUES (-1)")
    next_one = PageStore(obj, "db").read_head()
    for i in range(RECENT_MAX + 4):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    conn.close()
    integrity.check_log_not_ahead(obj, "db", old)  # the stored head moved on: fine
    obj.put({HEAD: old.encode()})  # ... but put back, the same rows give it away
    with pytest.raises(CorruptChunk, match="the head was rolled back"):
        integrity.check_log_not_ahead(obj, "db", old)
    obj.put({HEAD: next_one.encode()})  # moved on from what the reader saw, yet put back too
    with pytest.raises(CorruptChunk, match=f"the head says v{next_one.version} but"):
        integrity.check_log_not_ahead(obj, "db", old)
