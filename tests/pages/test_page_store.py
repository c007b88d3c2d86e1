"""Page store behaviour: atomic large commits, snapshots, checksums, GC, chunk sizes."""

from __future__ import annotations

import dataclasses

import subprocess
import sys
import textwrap

import pytest

import dolite
from dolite.pages.format import HEAD, CHUNK_PREFIX, LOG_PREFIX, Head, parse_chunk_key
from dolite.storage import open_storage

# Superseded versions are dropped at once, as with retention 0, which would instead write
# in place (pages/in_place.py): these tests are about the version keys GC deletes.
NO_WINDOW = 1e-9


def _fill(conn, rows: int, width: int = 300) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t(v) VALUES (?)", [(f"{i:06d}" + "x" * width,) for i in range(rows)])
    conn.commit()


def test_transaction_larger_than_a_storage_call_is_atomic(storage_url):
    ns = open_storage(storage_url)
    conn = dolite.connect("big", storage=ns)
    _fill(conn, 3000)  # ~1 MB: hundreds of chunks, several storage calls
    store = conn.database.store
    head = store.read_head()
    assert head.size // head.chunk_size > ns.limits.max_keys_per_call
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (3000,)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_commit_cost_follows_dirty_pages_not_database_size(storage_url):
    conn = dolite.connect("cost", storage=storage_url)
    _fill(conn, 4000)
    store = conn.database.store
    before = dict(store.stats)
    conn.execute("UPDATE t SET v = 'changed' WHERE id = 17")
    conn.commit()
    written = store.stats["chunks_written"] - before["chunks_written"]
    assert 1 <= written <= 4, written
    conn.close()


def test_reader_keeps_its_snapshot_while_writer_commits(storage_url):
    ns = open_storage(storage_url)
    writer = dolite.connect("snap", storage=ns)
    _fill(writer, 100)
    reader = dolite.connect("snap", storage=ns)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (100,)
    writer.execute("DELETE FROM t WHERE id > 10")
    writer.commit()
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (100,)
    reader.commit()
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (10,)
    writer.close()
    reader.close()


def test_corrupt_chunk_raises_checksum_error_not_wrong_data(storage_url):
    ns = open_storage(storage_url)
    conn = dolite.connect("corrupt", storage=ns)
    _fill(conn, 200)
    conn.close()
    obj = ns.object("corrupt")
    keys = [k for k in obj.list(prefix=CHUNK_PREFIX)]
    victim = max(keys, key=lambda k: parse_chunk_key(k)[0])  # a table page, not the header
    raw = bytearray(obj.get([victim])[victim])
    raw[-10] ^= 0xFF
    obj.put({victim: bytes(raw)})
    fresh = dolite.connect("corrupt", storage=open_storage(storage_url) if not storage_url.startswith("memory:") else ns)
    fresh.database.store.cache.clear()
    with pytest.raises(dolite.CorruptChunk, match="checksum"):
        fresh.execute("SELECT sum(length(v)) FROM t").fetchall()
    fresh.close()


@pytest.mark.parametrize("chunk_size,page_size", [(512, 4096), (16384, 1024), (4096, 4096), (65536, 4096)])
def test_chunk_sizes_other_than_page_size(storage_url, chunk_size, page_size):
    conn = dolite.connect(f"cs{chunk_size}", storage=storage_url, chunk_size=chunk_size)
    conn.execute(f"PRAGMA page_size={page_size}")
    _fill(conn, 1500, 100)
    conn.execute("DELETE FROM t WHERE id % 3 = 0")
    conn.commit()
    conn.execute("VACUUM")  # shrinks the file
    _fill(conn, 500, 50)  # and grows it again
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1500,)
    assert conn.execute("PRAGMA page_size").fetchone() == (page_size,)
    conn.close()


def test_garbage_collection_keeps_the_current_version_whole(storage_url):
    ns = open_storage(storage_url)
    conn = dolite.connect("gc", storage=ns, retention=NO_WINDOW)
    _fill(conn, 500)
    for i in range(30):
        conn.execute("UPDATE t SET v = ? WHERE id % 7 = ?", (f"round{i}", i % 7))
        conn.commit()
    obj = ns.object("gc")
    before = len(obj.list(prefix=CHUNK_PREFIX))
    deleted = conn.database.store.collect_garbage()
    after = len(obj.list(prefix=CHUNK_PREFIX))
    assert deleted > 0 and after < before
    head = Head.decode(obj.get([HEAD])[HEAD])
    assert after >= head.size // head.chunk_size
    assert len(obj.list(prefix=LOG_PREFIX)) <= 2
    conn.close()
    again = dolite.connect("gc", storage=ns)
    again.database.store.cache.clear()
    assert again.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert again.execute("SELECT count(*) FROM t WHERE v LIKE 'round%'").fetchone() == (500,)
    again.close()


def test_second_process_cannot_write_while_lease_is_held(tmp_path):
    url = f"lmdb:{tmp_path}/db"
    conn = dolite.connect("leased", storage=url)
    _fill(conn, 10)  # we now hold the write lease
    script = textwrap.dedent(f"""
        import dolite, sys
        c = dolite.connect("leased", storage={url!r}, timeout=0.2)
        print(c.execute("SELECT count(*) FROM t").fetchone()[0])
        try:
            c.execute("INSERT INTO t(v) VALUES ('other')")
            c.commit()
        except dolite.LeaseHeld as exc:
            print("LeaseHeld", exc)
            sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.startswith("10\nLeaseHeld") and "being written by" in proc.stdout
    conn.close()  # releases the lease: now the other process may write
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = dolite.connect("leased", storage=url)
    assert check.execute("SELECT count(*) FROM t").fetchone() == (11,)
    check.close()


class _CountingStorage:
    """A pass-through Storage that counts calls and asks the page store to prefetch."""

    def __init__(self, inner, prefetch: int):
        self.inner, self.calls = inner, 0
        self.limits = dataclasses.replace(inner.limits, prefetch_chunks=prefetch)

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return method(*args, **kwargs)

        return counted


class _CountingNamespace:
    def __init__(self, inner, prefetch: int):
        self.inner, self.prefetch, self.objects = inner, prefetch, {}
        self.url, self.limits = inner.url, dataclasses.replace(inner.limits, prefetch_chunks=prefetch)

    def object(self, name):
        return self.objects.setdefault(name, _CountingStorage(self.inner.object(name), self.prefetch))

    def names(self):
        return self.inner.names()

    def drop(self, name):
        self.inner.drop(name)

    def close(self):
        pass


@pytest.mark.parametrize("prefetch", [0, 32])
def test_cold_scan_round_trips_with_prefetch(prefetch):
    base = open_storage("memory:")
    writer = dolite.connect("scan", storage=base)
    _fill(writer, 2000)
    expected = writer.execute("SELECT sum(length(v)), count(*) FROM t").fetchone()
    chunks = writer.database.store.read_head().size // 4096
    writer.close()
    counting = _CountingNamespace(base, prefetch)
    reader = dolite.connect("scan", storage=counting)
    assert reader.execute("SELECT sum(length(v)), count(*) FROM t").fetchone() == expected
    assert reader.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    calls = counting.objects["scan"].calls
    if prefetch:
        assert calls < chunks / 8, (calls, chunks)
    else:
        assert calls >= chunks, (calls, chunks)
    reader.close()


def test_vacuum_shrinks_the_stored_file(storage_url):
    conn = dolite.connect("shrink", storage=storage_url)
    _fill(conn, 2000)
    big = conn.database.store.read_head().size
    conn.execute("DELETE FROM t WHERE id > 10")
    conn.commit()
    conn.execute("VACUUM")
    head = conn.database.store.read_head()
    page_count, page_size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
    assert head.size == page_count * page_size < big / 10
    conn.close()
    again = dolite.connect("shrink", storage=storage_url)
    assert again.execute("SELECT count(*) FROM t").fetchone() == (10,)
    assert again.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    again.close()


@pytest.mark.parametrize("exclusive", [True, False])
def test_connection_recovers_after_another_writer_took_over(exclusive):
    """A long-lived connection whose lease ran out while idle: another writer commits.
    A normal connection re-reads at its next transaction; an exclusive one (SQLite trusts
    its page cache across transactions) notices the new version and reopens. Either way
    nothing is written on top of stale pages and no acknowledged row is lost."""
    import time

    base = open_storage("memory:")
    owner = dolite.connect("x", storage=base, exclusive=exclusive, isolation_level=None, lease_ttl=1.2)
    owner.execute("CREATE TABLE t(v)")
    owner.execute("INSERT INTO t VALUES (1)")
    time.sleep(1.3)  # the owner idles past its lease
    other = dolite.connect("x", storage=_CountingNamespace(base, 0), isolation_level=None)
    other.execute("INSERT INTO t VALUES (2)")
    other.close()
    owner.execute("INSERT INTO t VALUES (3)")
    assert owner.execute("SELECT v FROM t ORDER BY rowid").fetchall() == [(1,), (2,), (3,)]
    assert owner.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    owner.close()


def test_exclusive_reader_sees_commits_of_other_connections():
    """An exclusive connection that only reads keeps SQLite's page cache between
    statements; a commit by another connection must still become visible."""
    ns = open_storage("memory:")
    setup = dolite.connect("x", storage=ns, isolation_level=None)
    setup.execute("CREATE TABLE t(v)")
    setup.execute("INSERT INTO t VALUES (1)")
    setup.close()
    reader = dolite.connect("x", storage=ns, exclusive=True, isolation_level=None)
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)
    writer = dolite.connect("x", storage=ns, isolation_level=None)
    writer.execute("INSERT INTO t VALUES (2)")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (2,)
    writer.close()
    reader.close()


def test_prefetch_window_doubles_on_a_scan_and_falls_back_on_a_jump():
    from dolite.pages.locate import PrefetchWindow

    window = PrefetchWindow(32)
    assert window.next(0) == 32  # nothing known yet: prefetch
    window.fetched(list(range(1, 32)))
    for c in range(1, 8):
        window.read(c)
    assert window.next(5000) == 1  # most of what it brought went unread: random lookups
    window.fetched([5001])
    scan, at = [], 10
    for _ in range(7):
        scan.append(window.next(at))
        at += scan[-1]  # the next miss falls just past what this one fetched
    assert scan == [1, 2, 4, 8, 16, 32, 32]
    warm = PrefetchWindow(32)
    for start in (0, 100, 300):  # random misses whose neighbours get read: a hot database
        assert warm.next(start) == 32
        warm.fetched(list(range(start + 1, start + 32)))
        for c in range(start + 1, start + 20):
            warm.read(c)
    assert PrefetchWindow(0).next(3) == 0


def test_random_point_lookups_in_a_large_database_stop_prefetching():
    base = open_storage("memory:")
    writer = dolite.connect("look", storage=base)
    _fill(writer, 8000)
    writer.close()
    reader = dolite.connect("look", storage=_CountingNamespace(base, 32))
    assert reader.execute("SELECT count(*) FROM t WHERE id = 100").fetchone() == (1,)
    store = reader.database.store
    assert store.stats["chunks_read"] <= 32 + 8  # the first miss prefetches: nothing known yet
    for row in (7000, 3000, 5500, 1500, 4200):
        before = store.stats["chunks_read"]
        assert reader.execute("SELECT count(*) FROM t WHERE id = ?", (row,)).fetchone() == (1,)
        assert store.stats["chunks_read"] - before <= 3, store.stats  # its B-tree path only
    reader.close()
