"""Single-call commits fold their log record into the head (issue #15: at most 2 rows
written per single-page commit): the head carries up to RECENT_MAX records, then one
batch row takes them. Every reader of the log sees the same records as before, and a head
put back from the past is still caught although no log row is ahead of it."""

from __future__ import annotations

import uuid

import pytest

import dolite
from dolite.errors import CorruptChunk
from dolite.ops import restore
from dolite.pages import PageStore
from dolite.pages.format import HEAD, LOG_PREFIX
from dolite.pages.log import RECENT_MAX, read_records
from dolite.storage import open_storage
from tests.torture.faulty import FaultyNamespace


class CountingStorage:
    """Counts the keys each commit writes (billed rows on a SQLite-backed object)."""

    def __init__(self, inner):
        self.inner, self.limits, self.rows = inner, inner.limits, []

    def commit(self, writes, deletes=(), expect=None):
        self.rows.append(len(writes) + len(list(deletes)))
        return self.inner.commit(writes, deletes, expect)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _store(versions: int) -> tuple[PageStore, CountingStorage]:
    storage = CountingStorage(open_storage("memory:").object("db"))
    store = PageStore(storage, "db")
    head = store.create(chunk_size=512)
    store.ensure_writable()
    head = store.commit(head, {c: bytes(512) for c in range(3)}, size=3 * 512)  # v1: the file
    storage.rows.clear()
    for v in range(1, versions + 1):
        head = store.commit(head, {v % 3: bytes([v % 256]) * 512}, size=3 * 512)
    return store, storage


def test_a_single_page_commit_writes_two_rows_and_a_batch_row_every_recent_max():
    commits = 3 * RECENT_MAX
    store, storage = _store(commits)
    assert sum(storage.rows) <= 2 * commits + commits // RECENT_MAX
    assert max(storage.rows) == 3  # chunk, head, and now and then the batch row
    batches = storage.inner.list(prefix=LOG_PREFIX)
    assert len(batches) == commits // RECENT_MAX  # (v1 and the commits: one flush each 32)
    assert 0 < len(store.read_head().recent) <= RECENT_MAX


@pytest.mark.parametrize("commits", [1, RECENT_MAX, RECENT_MAX + 1, 3 * RECENT_MAX + 5])
def test_every_version_has_its_record_from_rows_or_the_head(commits):
    store, _ = _store(commits)
    head = store.read_head()
    records = read_records(store.storage, "db", head, 0, head.version + 1)
    assert sorted(records) == list(range(1, head.version + 1))
    for v, record in records.items():
        assert record.chunks == ([0, 1, 2] if v == 1 else [(v - 1) % 3]) and record.size == 3 * 512
    middle = read_records(store.storage, "db", head, 2, head.version - 1)  # ranges inside batches
    assert sorted(middle) == list(range(2, head.version - 1))
    if head.version > 1:
        old = store.version_head(1, head)
        assert (old.version, old.size, old.recent) == (1, 3 * 512, ())


def test_point_in_time_restore_reaches_versions_folded_into_the_head():
    url = f"memory:{uuid.uuid4().hex}"
    conn = dolite.connect("db", storage=url, isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    for i in range(RECENT_MAX + 3):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    conn.close()
    versions = [v for v, _ in restore.retained_versions(url, "db")]
    assert versions == list(range(1, RECENT_MAX + 5))
    restore.restore(url, "db", version=versions[-3])
    conn = dolite.connect("db", storage=url)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (RECENT_MAX + 1,)
    conn.close()


def _older_head_put_back(url: str) -> None:
    conn = dolite.connect("db", storage=url, isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (1)")
    obj = open_storage(url).object("db")
    old = obj.get([HEAD])[HEAD]
    for i in range(3):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    conn.close()
    assert not obj.list(prefix=LOG_PREFIX)  # nothing ahead of the old head in the log
    obj.put({HEAD: old})


def test_a_reader_of_an_older_head_put_back_gets_corruption_not_old_rows():
    url = f"memory:{uuid.uuid4().hex}"
    _older_head_put_back(url)
    with pytest.raises(CorruptChunk, match="rolled back"):
        dolite.connect("db", storage=FaultyNamespace(open_storage(url))).execute(
            "SELECT count(*) FROM t").fetchall()


def test_a_writer_on_an_older_head_put_back_overwrites_nothing():
    url = f"memory:{uuid.uuid4().hex}"
    _older_head_put_back(url)
    obj = open_storage(url).object("db")
    before = obj.list(prefix="c/")
    store = PageStore(obj, "db")
    head = store.read_head()
    store.ensure_writable()
    with pytest.raises(CorruptChunk, match="rolled back"):
        store.commit(head, {0: b"x" * head.chunk_size, 1: b"y" * head.chunk_size}, size=head.size)
    assert obj.list(prefix="c/") == before


def test_gc_deletes_what_folded_commits_superseded_without_listing_chunks():
    """A folded record names the version each chunk replaced (the writer knew it), so GC
    deletes exactly those keys: no list of a chunk's versions per record."""
    store, storage = _store(2 * RECENT_MAX)
    head = store.read_head()
    lists = []
    storage.list = lambda **kw: lists.append(kw) or storage.inner.list(**kw)
    deleted = store.collect_garbage(now=head.time + head.retention + 1)
    chunk_lists = [kw for kw in lists if str(kw.get("start", "")).startswith("c/")
                   or str(kw.get("prefix", "")).startswith("c/")]
    assert chunk_lists == []
    versions = {}
    for key in storage.inner.list(prefix="c/"):
        chunk, version = (int(part, 16) for part in key.split("/")[1:])
        versions.setdefault(chunk, []).append(version)
    assert all(len(v) == 1 for v in versions.values()), versions  # only the newest is left
    assert deleted >= 2 * RECENT_MAX - 3
    fresh = PageStore(storage.inner, "db")
    assert [fresh.read_chunk(head, c) for c in range(3)] == [store.read_chunk(head, c) for c in range(3)]


def test_a_head_with_records_encodes_to_the_same_bytes_after_a_round_trip():
    """Compare-and-set compares head bytes: decoding and encoding again must not change
    one byte (records with and without replaced versions, floats and all)."""
    from dataclasses import replace

    from dolite.pages.format import Head

    head = Head(version=7, size=1536, chunk_size=512, retention=600.0, time=1795700000.123456, id=42,
                recent=((6, 1795699999.5, 1024, 512, ((0, 1),)), (7, 1795700000.123456, 1536, 1024,
                                                               ((2, 2),), (2, -1))))
    raw = head.encode()
    decoded = Head.decode(raw)
    assert decoded == head and decoded.encode() == raw
    assert replace(decoded, id=decoded.id).encode() == raw  # encoded afresh, not the bytes read


def test_a_format_2_head_is_read_and_the_next_commit_writes_format_3():
    import json

    from dolite.pages.format import HEAD, Head, seal

    storage = open_storage("memory:").object("db")
    fields = {"id": 5, "version": 0, "size": 0, "chunk_size": 512, "retention": 600.0, "time": 1.0, "format": 2}
    storage.put({HEAD: seal(HEAD, json.dumps(fields, separators=(",", ":")).encode())})
    store = PageStore(storage, "db")
    head = store.read_head()
    assert (head.format, head.recent) == (2, ())
    store.ensure_writable()
    new = store.commit(head, {0: b"x" * 512}, size=512)
    stored = Head.decode(storage.get([HEAD])[HEAD])
    assert stored == new and stored.format == 3 and [r[0] for r in stored.recent] == [1]


def test_a_gc_run_costs_a_few_calls_and_leaves_no_log_row_behind():
    store, storage = _store(3 * RECENT_MAX)
    head = store.read_head()
    calls = []
    for op in ("get", "list", "commit"):
        inner = getattr(storage.inner, op)
        setattr(storage, op, lambda *a, _op=op, _inner=inner, **kw: calls.append(_op) or _inner(*a, **kw))
    store.collect_garbage(now=head.time + head.retention + 1)
    assert calls.count("get") + calls.count("list") <= 3, calls  # cursor, holds, log rows
    assert calls.count("commit") <= 2, calls  # the deletes (about 100 keys) and the cursor
    for v in range(3):  # more commits, then everything processed again
        head = store.commit(head, {v: bytes(512)}, size=3 * 512)
    store.collect_garbage(now=head.time + head.retention + 1)
    assert storage.inner.list(prefix=LOG_PREFIX) == {}  # the batch rows, all processed, are gone
    assert sorted(read_records(storage.inner, "db", head, 0, head.version + 1)) == [head.version]


def test_a_commit_landing_while_another_thread_reads_the_head_is_no_going_back():
    """read_head compares with the newest head known *before* its read: a commit made by
    another thread meanwhile must not make the head it read look rolled back."""
    store, storage = _store(2)
    base = store.read_head()
    inner_get = storage.inner.get

    def get_then_commit_elsewhere(keys):
        found = inner_get(keys)  # the head as of now ...
        if HEAD in keys and storage.get is get_then_commit_elsewhere:
            storage.get = inner_get
            store.commit(base, {0: b"z" * 512}, size=3 * 512)  # ... then a commit lands
        return found

    storage.get = get_then_commit_elsewhere
    assert store.read_head().version == base.version  # the head read, not an error
    assert store.read_head().version == base.version + 1
