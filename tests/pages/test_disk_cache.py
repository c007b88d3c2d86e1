"""The persistent chunk cache (dolite/pages/disk_cache.py) under ChunkCache and the page
store: a fresh page store (as in a new process) reads what an earlier one saw from local
disk, never a dropped database's bytes, never a damaged entry."""

from __future__ import annotations

import os
import uuid

import pytest

from dolite.pages import PageStore
from dolite.pages.disk_cache import DiskChunkCache
from dolite.storage import open_storage
from dolite.storage.durable_object import DO_LIMITS, LocalCache

CHUNK = 4096


class RemoteObject:
    """A memory object posing as a remote one: Durable Object limits (so reads prefetch),
    a ``chunk_cache`` like a do+http object's, and every call counted."""

    def __init__(self, inner, cache: LocalCache | None):
        self.inner, self.chunk_cache, self.limits = inner, cache, DO_LIMITS
        self.calls = 0

    def __getattr__(self, op):
        method = getattr(self.inner, op)

        def counted(*args, **kwargs):
            self.calls += 1
            return method(*args, **kwargs)
        return counted


@pytest.fixture
def namespace():
    ns = open_storage(f"memory:{uuid.uuid4().hex}")
    yield ns
    ns.close()


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "cache")


def fresh_store(namespace, cache_dir, name="db", scope="ns-a", cache_bytes=64 << 20) -> PageStore:
    """A page store as a new process would have it: empty memory cache, nothing known."""
    spec = LocalCache(cache_dir, 64 << 20, f"{scope}\0{name}") if cache_dir else None
    return PageStore(RemoteObject(namespace.object(name), spec), name, cache_bytes=cache_bytes)


def content(seed: int, chunks: int) -> dict[int, bytes]:
    return {c: bytes([seed, c % 251]) * (CHUNK // 2) for c in range(chunks)}


def write_db(namespace, cache_dir, chunks: dict[int, bytes], name="db"):
    store = fresh_store(namespace, cache_dir, name)
    head = store.create(chunk_size=CHUNK)
    head = store.commit(head, chunks, len(chunks) * CHUNK)
    store.close()
    return head


def read_all(store: PageStore) -> dict[int, bytes]:
    head = store.read_head()
    return {c: store.read_chunk(head, c) for c in range(head.chunk_count)}


def test_a_fresh_store_reads_what_another_wrote_from_disk(namespace, cache_dir):
    data = content(1, 200)
    write_db(namespace, cache_dir, data)
    store = fresh_store(namespace, cache_dir)
    assert read_all(store) == data
    assert store.stats["chunks_read"] == 0  # nothing came from storage
    assert store.cache.disk_hits == 200
    store.close()


def test_a_cold_open_after_a_reader_warmed_the_cache_reads_at_least_90_percent_locally(namespace, cache_dir):
    data = content(2, 300)
    write_db(namespace, None, data)  # a writer without a cache
    warm = fresh_store(namespace, cache_dir)
    assert read_all(warm) == data
    assert warm.stats["chunks_read"] == 300
    warm.close()
    cold = fresh_store(namespace, cache_dir)
    assert read_all(cold) == data
    local = cold.cache.disk_hits / (cold.cache.disk_hits + cold.stats["chunks_read"])
    assert local >= 0.9 and cold.stats["chunks_read"] == 0
    assert cold.storage.calls <= 3  # the head and its checks, no chunk listing


def test_without_a_cache_option_nothing_is_kept(namespace, cache_dir):
    write_db(namespace, None, content(3, 10))
    store = fresh_store(namespace, None)
    read_all(store)
    assert store.cache.disk is None and not os.path.exists(cache_dir)


def test_a_dropped_and_recreated_database_never_gets_the_old_bytes(namespace, cache_dir):
    old, new = content(4, 50), content(5, 50)
    write_db(namespace, cache_dir, old)
    assert read_all(fresh_store(namespace, cache_dir)) == old
    namespace.drop("db")
    head = write_db(namespace, cache_dir, new)  # same chunk numbers, same versions
    assert head.version == 1
    assert read_all(fresh_store(namespace, cache_dir)) == new
    store = fresh_store(namespace, cache_dir)
    namespace.drop("db")
    write_db(namespace, None, old)  # recreated by a process without the cache
    assert read_all(store) == old and read_all(fresh_store(namespace, cache_dir)) == old


def test_a_new_head_from_elsewhere_is_read_correctly(namespace, cache_dir):
    first = content(6, 40)
    head = write_db(namespace, cache_dir, first)
    other = fresh_store(namespace, None)  # another writer, no cache
    other.commit(other.read_head(), {3: b"\x07" * CHUNK}, head.size)
    other.close()
    assert read_all(fresh_store(namespace, cache_dir)) == {**first, 3: b"\x07" * CHUNK}


def test_a_damaged_entry_is_a_miss_not_wrong_data(namespace, cache_dir):
    data = content(8, 20)
    head = write_db(namespace, cache_dir, data)
    disk = DiskChunkCache(cache_dir, 64 << 20, "ns-a\0db")
    key = disk._chunk_key((head.id, 5, head.version))
    with disk._env.env.begin(write=True) as txn:
        raw = bytearray(txn.get(key))
        raw[100] ^= 0xFF
        txn.put(key, bytes(raw))
    store = fresh_store(namespace, cache_dir)
    assert read_all(store) == data
    assert store.cache.disk.corrupt == 1 and store.stats["chunks_read"] == 1
    assert disk.get((head.id, 5, head.version)) == data[5]  # replaced by the bytes read again
    with disk._env.env.begin(write=True) as txn:
        txn.put(key, txn.get(key)[:-1])  # torn: a byte short
    assert disk.get((head.id, 5, head.version)) is None and disk.corrupt == 1


def test_scopes_never_share_entries(cache_dir):
    a = DiskChunkCache(cache_dir, 1 << 20, "do+http://h:1\0db")
    b = DiskChunkCache(cache_dir, 1 << 20, "do+http://h:2\0db")
    a.put((1, 0, 1), b"a")
    assert a.get((1, 0, 1)) == b"a" and b.get((1, 0, 1)) is None


def test_a_full_cache_empties_and_refills(cache_dir):
    disk = DiskChunkCache(cache_dir, 1 << 20, "s")
    for version in range(400):  # about 3 MB of chunks into a 1 MB map
        disk.put((1, 0, version), bytes(CHUNK))
    assert disk.clears >= 1
    assert disk.get((1, 0, 399)) == bytes(CHUNK) and disk.get((1, 0, 0)) is None


def test_the_version_index_is_only_for_its_exact_head(cache_dir):
    disk = DiskChunkCache(cache_dir, 1 << 20, "s")
    disk.put((7, 0, 3), b"x")
    disk.save_versions((7, 3), {0: 3, 1: 2})  # chunk 1's bytes are not here: left out
    assert disk.versions((7, 3)) == {0: 3}
    assert disk.versions((7, 4)) == {} and disk.versions((8, 3)) == {}


@pytest.mark.parametrize("later_commits", [1, 5])
def test_a_cold_open_after_other_commits_catches_up_from_the_head_records(namespace, cache_dir, later_commits):
    data = content(6, 300)
    write_db(namespace, None, data)
    warm = fresh_store(namespace, cache_dir)
    read_all(warm)
    warm.close()
    writer = fresh_store(namespace, None)  # commits elsewhere, without this cache
    head = writer.read_head()
    for n in range(later_commits):
        changed = {7 * n % 300: bytes([99, n]) * (CHUNK // 2)}
        head = writer.commit(head, changed, head.size)
        data.update(changed)
    head = writer.commit(head, {}, head.size - CHUNK)  # and a truncation
    del data[299]
    writer.close()
    cold = fresh_store(namespace, cache_dir)
    assert read_all(cold) == data
    assert cold.stats["chunks_read"] <= later_commits + 1  # only what changed (and prefetch)
    assert cold.cache.disk_hits >= 0.9 * 299
