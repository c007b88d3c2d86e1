"""``do+http://...?cache=lmdb:DIR`` against a real workerd: a second process's cold open
reads the database from the local cache; a re-created database is never served old bytes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import dolite
from dolite.errors import InvalidURL
from dolite.pages import open_store
from dolite.storage import open_storage
from tests.backends import session_workerd

ROOT = Path(__file__).resolve().parents[2]
ROWS = 250  # about 1 MB: one 4 KiB blob a row


@pytest.fixture
def url(tmp_path):
    """A fresh prefix on the session's workerd, without a cache option."""
    return f"{session_workerd().storage_url}&prefix={uuid.uuid4().hex[:12]}/"


def fill(storage, seed: int) -> None:
    conn = dolite.connect("db", storage=storage, create=True)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)")
    conn.executemany("INSERT INTO t(b) VALUES (?)", [(bytes([seed]) * 4000,) for _ in range(ROWS)])
    conn.commit()
    conn.close()


def read_everything(url: str) -> tuple[dict[int, bytes], dict, int]:
    """Every chunk of "db" through a fresh namespace object (empty memory cache): (chunks,
    page store stats, chunks served by the local cache)."""
    namespace = open_storage(url)
    try:
        store = open_store(namespace, "db")
        head = store.read_head()
        chunks = {c: store.read_chunk(head, c) for c in range(head.chunk_count)}
        store.close()
        return chunks, store.stats, store.cache.disk_hits
    finally:
        namespace.close()


def test_a_second_process_cold_open_reads_at_least_90_percent_locally(url, tmp_path):
    cached = f"{url}&cache=lmdb:{tmp_path}/cache"
    fill(open_storage(url), seed=1)  # written without the cache
    _, first, _ = read_everything(cached)  # this process warms it
    scan = textwrap.dedent(f"""
        import json, dolite
        conn = dolite.connect("db", storage={cached!r}, create=False)
        rows, size = conn.execute("SELECT count(*), sum(length(b)) FROM t").fetchone()
        store = conn.database.store
        print(json.dumps({{"rows": rows, "size": size, "local": store.cache.disk_hits, **store.stats}}))
        conn.close()
    """)
    done = subprocess.run([sys.executable, "-c", scan], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout.strip().splitlines()[-1])
    assert (second["rows"], second["size"]) == (ROWS, ROWS * 4000)
    assert second["local"] >= 0.9 * first["chunks_read"]
    assert second["bytes_read"] <= 0.1 * first["bytes_read"]


def test_a_fresh_namespace_reads_every_chunk_from_the_cache(url, tmp_path):
    cached = f"{url}&cache=lmdb:{tmp_path}/cache"
    fill(open_storage(cached), seed=2)  # the writer's commits fill it
    chunks, stats, disk_hits = read_everything(cached)
    assert stats["chunks_read"] == 0 and disk_hits == len(chunks)
    assert chunks == read_everything(url)[0]


def test_a_dropped_and_recreated_database_is_never_served_old_bytes(url, tmp_path):
    cached = f"{url}&cache=lmdb:{tmp_path}/cache"
    fill(open_storage(cached), seed=3)
    old, _, _ = read_everything(cached)
    namespace = open_storage(url)
    namespace.drop("db")
    fill(namespace, seed=4)  # same shape, same chunk numbers and versions, new bytes
    new, stats, _ = read_everything(cached)
    assert new == read_everything(url)[0] != old
    assert stats["chunks_read"] == len(new)


@pytest.mark.parametrize("option", ["cache=redis:/tmp/x", "cache=lmdb:", "cache=/tmp/x", "cache_size=1g",
                                    "cache=lmdb:/tmp/x&cache_size=lots", "cache=lmdb:/tmp/x&cache_sise=1g"])
def test_bad_cache_options_are_refused(url, option):
    with pytest.raises(InvalidURL):
        open_storage(f"{url}&{option}")


@pytest.mark.parametrize("local", ["lmdb:{tmp}/store?cache=lmdb:{tmp}/cache", "sqlite:{tmp}/store?cache=lmdb:{tmp}/c"])
def test_local_backends_refuse_a_cache(local, tmp_path):
    """A local store gains nothing from a second local copy."""
    with pytest.raises(InvalidURL):
        open_storage(local.format(tmp=tmp_path))
