"""Readers of a chunk's in-place key (``c/<chunk>/~``, pages/locate.py): one version, named
by its header, that a later version written in place overwrites. A reader takes it where
it is the newest version not newer than its head, takes a newer version key over it, and
gets SnapshotExpired, never an older version, where it holds a version past the head.
These stores are made by hand: each test moves a version into the in-place key, as a
commit written in place leaves it."""

from __future__ import annotations

import pytest

import dolite
from dolite.errors import CorruptChunk, SnapshotExpired
from dolite.ops import admin
from dolite.pages import inline, locate
from dolite.pages.holds import release_hold, set_hold
from dolite.pages.format import (CHUNK_HEADER_BYTES, HEAD, chunk_key, chunk_prefix, encode_chunk, in_place_key,
                                 parse_chunk_key, stored_version)
from dolite.pages.store import PageStore
from dolite.storage import open_storage


@pytest.fixture(autouse=True)
def no_held_chunks(monkeypatch):
    """These tests are about in-place keys: no head holds a chunk inline, which would keep
    rewritten pages out of them (tests/pages/test_inline_chunk.py tests that)."""
    monkeypatch.setattr(inline, "MAX_INLINE_BYTES", 0)


def _table_a(url: str, rows: int, *, retention: float, version_keys: bool = True) -> int:
    """Table a with ``rows`` rows, one commit each: the chunk holding them. With
    ``version_keys`` every commit writes version keys (a GC hold keeps a retention-0
    writer from writing in place: pages/in_place.py)."""
    if version_keys:
        set_hold(open_storage(url).object("db"), "test", 0)
    conn = dolite.connect("db", storage=url, isolation_level=None, retention=retention)
    conn.execute("CREATE TABLE a(v)")
    for i in range(rows):
        conn.execute("INSERT INTO a VALUES (?)", (i,))
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'a'").fetchone()[0]
    conn.close()
    release_hold(open_storage(url).object("db"), "test")
    return root - 1  # 4 KiB chunks: page p is chunk p - 1


def _versions(obj, chunk: int) -> list[str]:
    return sorted(obj.list(start=chunk_prefix(chunk), end=chunk_key(chunk, 1 << 47)))


def _move_in_place(obj, key: str) -> int:
    """Store the value of version key ``key`` under its chunk's in-place key instead."""
    chunk, version = parse_chunk_key(key)
    obj.commit({in_place_key(chunk): obj.get([key])[key]}, deletes=[key])
    return version


def _rows(url: str, sql: str = "SELECT v FROM a") -> list:
    conn = dolite.connect("db", storage=url)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("retention", [0.0, 600.0])
def test_a_cold_reader_reads_the_newest_version_from_the_in_place_key(storage_url, retention, opened):
    chunk = _table_a(storage_url, 3, retention=retention)
    obj = opened(storage_url)
    _move_in_place(obj, _versions(obj, chunk)[-1])
    assert _rows(storage_url) == [(0,), (1,), (2,)]
    assert admin.check(storage_url, "db").ok


@pytest.mark.parametrize("retention", [0.0, 600.0])
def test_a_newer_version_key_wins_over_an_older_in_place_value(storage_url, retention, opened):
    chunk = _table_a(storage_url, 3, retention=retention)
    obj = opened(storage_url)
    keys = _versions(obj, chunk)
    _move_in_place(obj, keys[-2])  # the in-place key holds row 1's version; row 2's is newer
    assert _rows(storage_url) == [(0,), (1,), (2,)]
    assert admin.check(storage_url, "db").ok


@pytest.mark.parametrize("retention", [0.0, 600.0])
def test_an_in_place_value_past_the_head_expires_the_snapshot(retention, opened):
    url = f"memory:past-head-{retention}"
    chunk = _table_a(url, 2, retention=retention)
    obj = opened(url)
    reader = PageStore(obj, "db")
    head = reader.read_head()
    conn = dolite.connect("db", storage=url, isolation_level=None)
    conn.execute("INSERT INTO a VALUES (2)")  # a new version of the chunk, past the reader's head
    conn.close()
    if retention:  # ... written in place (by the writer itself with retention 0)
        _move_in_place(obj, _versions(obj, chunk)[-1])
    assert in_place_key(chunk) in obj.get([in_place_key(chunk)])
    with pytest.raises(SnapshotExpired, match=rf"chunk {chunk} as of v{head.version} was overwritten in place"):
        reader.read_chunk(head, chunk)
    newest, _complete = locate.following_versions(obj, "db", head, 0, 8)
    assert chunk not in newest and chunk - 1 in newest  # prefetch leaves it to the read
    fresh = PageStore(obj, "db")
    assert fresh.read_chunk(fresh.read_head(), chunk) == obj.get([in_place_key(chunk)])[in_place_key(chunk)][CHUNK_HEADER_BYTES:]


def test_a_known_version_is_read_from_the_in_place_key(opened):
    url = "memory:known-in-place"
    chunk = _table_a(url, 2, retention=600.0)
    obj = opened(url)
    version = _move_in_place(obj, _versions(obj, chunk)[-1])
    head = PageStore(obj, "db").read_head()
    assert locate.stored_at(obj, "db", head, chunk, version) == obj.get([in_place_key(chunk)])[in_place_key(chunk)]
    older = parse_chunk_key(_versions(obj, chunk)[-1])[1]
    obj.delete([chunk_key(chunk, older)])
    with pytest.raises(CorruptChunk, match=rf"chunk {chunk} v{older} is missing"):
        locate.stored_at(obj, "db", head, chunk, older)  # the in-place key holds another version


def test_an_older_head_put_back_is_caught_by_an_in_place_value_past_it(opened):
    url = "memory:put-back-in-place"
    chunk = _table_a(url, 1, retention=0.0)
    obj = opened(url)
    old_head = obj.get([HEAD])[HEAD]
    conn = dolite.connect("db", storage=url, isolation_level=None)
    for i in range(3):
        conn.execute("INSERT INTO a VALUES (?)", (i,))  # written in place (retention 0)
    conn.close()
    assert in_place_key(chunk) in obj.get([in_place_key(chunk)])
    obj.put({HEAD: old_head})
    with pytest.raises(CorruptChunk, match="the head was rolled back"):
        _rows(url)


def test_a_damaged_in_place_value_is_reported_by_check_and_never_read(opened):
    url = "memory:damaged-in-place"
    chunk = _table_a(url, 2, retention=0.0, version_keys=False)
    obj = opened(url)
    raw = obj.get([in_place_key(chunk)])[in_place_key(chunk)]
    version = stored_version(raw, chunk, "db")
    obj.put({in_place_key(chunk): raw[:-1] + bytes([raw[-1] ^ 1])})
    with pytest.raises(CorruptChunk, match=rf"checksum mismatch in chunk {chunk} v{version}"):
        _rows(url)
    report = admin.check(url, "db")
    assert not report.ok and report.damaged == {"table a": [chunk + 1]}, report.corrupt


def _sql(url: str, *statements: str) -> None:
    conn = dolite.connect("db", storage=url, isolation_level=None, retention=0.0)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def _collect(obj) -> None:
    store = PageStore(obj, "db")
    store.collect_garbage(now=1e12)
    store.close()


def test_gc_deletes_the_in_place_key_of_a_chunk_a_truncation_cut_not_a_newer_one(opened):
    url = "memory:cut-in-place"
    _sql(url, "CREATE TABLE a(v)", "CREATE TABLE b(v)", "INSERT INTO b VALUES (zeroblob(20000))")
    obj = opened(url)
    size = PageStore(obj, "db").read_head().chunk_count
    last = size - 1  # b's pages end the file, written in place (retention 0)
    assert in_place_key(last) in obj.get([in_place_key(last)])
    _sql(url, "DROP TABLE b", "VACUUM")  # the file shrinks: the last chunk is cut
    assert PageStore(obj, "db").read_head().chunk_count < size
    _collect(obj)
    assert in_place_key(last) not in obj.get([in_place_key(last)])
    assert _versions(obj, last) == []

    _sql(url, "CREATE TABLE c(v)", "INSERT INTO c VALUES (zeroblob(20000))")  # the file grows again
    _sql(url, "DELETE FROM c", "VACUUM")  # ... is cut again
    _sql(url, "INSERT INTO c VALUES (zeroblob(20000))")  # ... and grows again, in place
    _collect(obj)
    assert in_place_key(1) in obj.get([in_place_key(1)])  # never cut
    assert in_place_key(last) in obj.get([in_place_key(last)])  # written after the cut
    assert _rows(url, "SELECT length(v) FROM c") == [(20000,)]
    assert admin.check(url, "db").ok


def test_gc_leaves_an_in_place_key_written_again_since_it_looked(opened):
    url = "memory:cut-race"
    _sql(url, "CREATE TABLE a(v)")
    obj = opened(url)
    store = PageStore(obj, "db")
    store.ensure_writable()
    fenced = store._fenced()
    old, new = encode_chunk(5, 3, b"old"), encode_chunk(5, 9, b"new")
    obj.put({in_place_key(5): new})
    fenced.delete_unchanged(in_place_key(5), old)  # GC saw the old value: it is not deleted
    assert obj.get([in_place_key(5)])[in_place_key(5)] == new
    fenced.delete_unchanged(in_place_key(5), new)
    assert in_place_key(5) not in obj.get([in_place_key(5)])
    store.close()
