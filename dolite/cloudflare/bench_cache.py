"""The ``cached_cold_open`` figure of ``dolite cloudflare bench`` (issue #15): what the
persistent local chunk cache (``do+http://...?cache=lmdb:DIR``) saves a process that opens
a database cold.

A database of about ``database_bytes`` (100 MB; 10 MB with ``--quick``) is written once,
without a cache. Then, each on a fresh namespace object (an empty in-memory cache, as in
a new process), a cold open and a full scan (``SELECT count(*), sum(length(b)) FROM t``):

* ``uncached``: no cache option: every chunk comes from the Durable Object;
* ``filling``: with an empty local cache, which the scan fills;
* ``cached``: with that now warm cache, as the next process would find it.

Each reports seconds, chunks and bytes fetched from the Durable Object, chunks served by
the local cache, and the fraction served locally.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from urllib.parse import quote

import dolite
from dolite.cloudflare.bench_workloads import FULL, FULL_RTT, QUICK, QUICK_RTT, DoBenchSizes
from dolite.storage import open_storage

ROW_BYTES = 4000  # one row a 4 KiB page
FILL_ROWS_PER_TXN = 2500
SCAN = "SELECT count(*), sum(length(b)) FROM t"


def database_bytes(sizes: DoBenchSizes) -> int:
    """100 MB for the full benchmark, 10 MB for ``--quick``, 1 MB for other (test) sizes."""
    if sizes in (FULL, FULL_RTT):
        return 100 << 20
    return 10 << 20 if sizes in (QUICK, QUICK_RTT) else 1 << 20


@contextlib.contextmanager
def _connection(url: str, name: str, **options):
    """A connection on a fresh namespace object (an empty in-memory cache, as in a new process)."""
    namespace = open_storage(url)
    try:
        conn = dolite.connect(name, storage=namespace, isolation_level=None, **options)
        try:
            yield conn
        finally:
            conn.close()
    finally:
        namespace.close()


def _fill(url: str, name: str, rows: int) -> None:
    with _connection(url, name, exclusive=True) as conn:
        conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)")
        for start in range(0, rows, FILL_ROWS_PER_TXN):
            count = min(FILL_ROWS_PER_TXN, rows - start)
            conn.execute("BEGIN")
            conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                         "INSERT INTO t(b) SELECT randomblob(?) FROM n", (count, ROW_BYTES))
            conn.execute("COMMIT")


def _cold_scan(url: str, name: str, rows: int) -> dict:
    """Open ``name`` on a fresh namespace object and scan it: the figures of one side."""
    t0 = time.perf_counter()
    with _connection(url, name, create=False) as conn:
        counted, _ = conn.execute(SCAN).fetchone()
        seconds = time.perf_counter() - t0
        if counted != rows:
            raise RuntimeError(f"cold scan counted {counted} rows, expected {rows}")
        store = conn.database.store
        remote, local = store.stats["chunks_read"], store.cache.disk_hits
        return {"seconds": seconds, "chunks_fetched": remote, "bytes_fetched": store.stats["bytes_read"],
                "chunks_local": local, "fraction_local": local / max(1, local + remote)}


def cached_cold_open(base_url: str, secret: str, sizes: DoBenchSizes, say: Callable[[str], None]) -> dict:
    """The figure, measured on the Worker at ``base_url`` (``http://HOST:PORT``)."""
    rows = database_bytes(sizes) // ROW_BYTES
    url = (f"do+http://{base_url.removeprefix('http://')}?secret={quote(secret, safe='')}"
           f"&prefix=cache-bench-{uuid.uuid4().hex[:8]}/")
    directory = tempfile.mkdtemp(prefix="dolite-chunk-cache-")
    try:
        _fill(url, "cached", rows)
        cached_url = f"{url}&cache=lmdb:{directory}"
        out = {"database_bytes": rows * ROW_BYTES, "rows": rows}
        for side, side_url in (("uncached", url), ("filling", cached_url), ("cached", cached_url)):
            out[side] = _cold_scan(side_url, "cached", rows)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    out["speedup"] = out["uncached"]["seconds"] / max(out["cached"]["seconds"], 1e-9)
    say(summary(out))
    return out


def summary(figure: dict) -> str:
    """One line for the report."""
    u, c = figure["uncached"], figure["cached"]
    return (f"cached_cold_open ({figure['database_bytes'] / 1e6:.0f} MB, cold open + full scan): "
            f"no cache {u['seconds']:.2f} s, {u['chunks_fetched']:,} chunks / {u['bytes_fetched'] / 1e6:.1f} MB "
            f"fetched; warm local cache {c['seconds']:.2f} s, {c['chunks_fetched']:,} chunks / "
            f"{c['bytes_fetched'] / 1e6:.1f} MB fetched, {c['fraction_local']:.1%} served locally "
            f"({figure['speedup']:.1f}x)")
