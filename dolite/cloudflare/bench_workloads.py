"""The Durable Object benchmark's sizes and workloads, each as a (dolite, native) pair.

A workload here is two functions over a ``range`` of transaction indices: one runs those
transactions through a dolite connection, the other sends the same ones to the native SQL
baseline (:class:`~dolite.cloudflare.bench_clients.NativeSql`). Both sides start from the
same table, filled by :func:`fill_dolite` and :func:`fill_native`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from dolite.cloudflare.bench_clients import NativeSql, RequestCounter
from dolite.pages import gc

ROW = "x" * 60
CREATE = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)"
INSERT = "INSERT INTO t(v, n) VALUES (?, ?)"
SELECT = "SELECT v, n FROM t WHERE id = ?"
SCAN = "SELECT count(*), sum(length(v)) FROM t"
READ_N = "SELECT n FROM t WHERE id = ?"
TXN_ROWS = 100


@dataclass(frozen=True)
class DoBenchSizes:
    rows: int  # rows in the table the reads and interactive transactions hit
    commits: int  # single-row INSERT commits timed
    reads: int  # point SELECTs timed per phase
    txns: int = 100  # interactive transactions timed
    batches: int = 20  # 100-row transactions timed
    scans: int = 5  # hot full scans timed (the cold one is a single scan)
    fill_batch: int = 1000  # statements per native fill request (untimed setup)


QUICK = DoBenchSizes(rows=10_000, commits=1_000, reads=2_000, txns=500, batches=50, scans=10)
FULL = DoBenchSizes(rows=50_000, commits=2_000, reads=5_000, txns=1_000, batches=100, scans=20)
QUICK_RTT = DoBenchSizes(rows=10_000, commits=150, reads=200, txns=100, batches=20, scans=5)
FULL_RTT = DoBenchSizes(rows=50_000, commits=400, reads=500, txns=300, batches=40, scans=10)
"""With an injected delay every request costs at least ``rtt_ms``: fewer of them are timed."""


def commit(conn, native: NativeSql):
    def on_dolite(part: range) -> None:
        for i in part:
            conn.execute(INSERT, (ROW, i))

    def on_native(part: range) -> None:
        for i in part:
            native.execute(INSERT, (ROW, i))

    return on_dolite, on_native


def txn_100_rows(conn, native: NativeSql):
    def on_dolite(part: range) -> None:
        for i in part:
            conn.execute("BEGIN")
            conn.executemany(INSERT, [(ROW, i)] * TXN_ROWS)
            conn.execute("COMMIT")

    def on_native(part: range) -> None:
        for i in part:
            native.batch([(INSERT, [ROW, i])] * TXN_ROWS)

    return on_dolite, on_native


def _moved(n: int) -> int:
    """The interactive transaction's computation: how much of row a's ``n`` moves to row b."""
    return n % 7 + 1


def interactive_txn(conn, native: NativeSql, pairs: list[tuple[int, int]]):
    def on_dolite(part: range) -> None:
        for i in part:
            a, b = pairs[i]
            conn.execute("BEGIN")
            (n,) = conn.execute(READ_N, (a,)).fetchone()
            moved = _moved(n)
            conn.execute("UPDATE t SET n = ? WHERE id = ?", (n - moved, a))
            conn.execute("UPDATE t SET n = n + ? WHERE id = ?", (moved, b))
            conn.execute("COMMIT")

    def on_native(part: range) -> None:
        for i in part:
            a, b = pairs[i]
            ((n,),) = native.execute(READ_N, (a,))
            moved = _moved(n)
            native.batch([  # the first write holds only if row a still has the n read above
                ("UPDATE t SET n = ? WHERE id = ? AND n = ? RETURNING id", [n - moved, a, n], 1),
                ("UPDATE t SET n = n + ? WHERE id = ? RETURNING id", [moved, b], 1),
            ])

    return on_dolite, on_native


def settle_gc(conn) -> int:
    """Wait for a background GC pass in flight, then run passes until one finds nothing
    more to delete (all of it, with the benchmark's zero retention); the keys deleted."""
    store = conn.database.store
    store.wait_for_gc()
    deleted = 0
    while done := store.collect_garbage():
        deleted += done
    return deleted


class GcMeter:
    """Counts what the page store's garbage collection spends in a write phase, so the
    phase can say which share of its figures was collection. Over ``do+http`` a pass runs
    on its own thread while commits go on (``Limits.remote``): its requests are told apart
    by that thread's name. :meth:`after_part` is run, untimed, after each timed part of the
    phase: it waits for a pass still running (so it does not run into the other side's
    timed part) and, after the last part, drains what the phase's commits left; the drain's
    requests and rows count in the phase's figures, its time is reported apart."""

    def __init__(self, conn, namespace, counter: RequestCounter):
        self.conn, self.store, self.counter = conn, conn.database.store, counter
        self.gc_requests = RequestCounter()
        self._draining = False
        namespace.observers.append(self._saw)
        self.reset()

    def _saw(self, method, path, sent, reply) -> None:
        if self._draining or threading.current_thread().name.startswith(gc.THREAD_PREFIX):
            self.gc_requests.saw(method, path, sent, reply)

    def reset(self) -> None:
        self.drain_seconds, self.background_passes = 0.0, 0
        self._start = (self.gc_requests.snapshot(), self.store.stats["gc_passes"], self.store.stats["gc_seconds"])

    def after_part(self, last: bool) -> None:
        """Untimed: wait for the background pass; after the ``last`` part, drain."""
        t0, self._draining = time.perf_counter(), True
        try:
            self.store.wait_for_gc()
            self.background_passes = self.store.stats["gc_passes"] - self._start[1]
            if last:
                settle_gc(self.conn)
        finally:
            self.drain_seconds += time.perf_counter() - t0
            self._draining = False

    def figures(self, count: int, per_s: float) -> dict:
        """Per transaction: the collection's requests and rows (background passes and the
        drain), its time, the passes that ran while the phase was timed, and the rate if
        the untimed waits and drain had been timed too."""
        usage = (self.gc_requests.snapshot() - self._start[0]).usage.per(count)
        seconds = self.store.stats["gc_seconds"] - self._start[2]
        return {"round_trips": usage.requests, "rows_read": usage.rows_read, "rows_written": usage.rows_written,
                "ms": seconds / count * 1000, "drain_ms": self.drain_seconds / count * 1000,
                "background_passes": self.background_passes,
                "per_s_with_drain": count / (count / per_s + self.drain_seconds)}


def fill_native(native: NativeSql, sizes: DoBenchSizes) -> None:
    native.execute(CREATE)
    for start in range(1, sizes.rows + 1, sizes.fill_batch):
        stop = min(start + sizes.fill_batch, sizes.rows + 1)
        native.batch([("INSERT INTO t(id, v, n) VALUES (?, ?, ?)", [i, ROW, i * 7 % 1000])
                      for i in range(start, stop)])
    native.execute(INSERT, (ROW, -1))


def fill_dolite(conn, sizes: DoBenchSizes) -> None:
    conn.execute(CREATE)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t(id, v, n) VALUES (?, ?, ?)",
                     ((i, ROW, i * 7 % 1000) for i in range(1, sizes.rows + 1)))
    conn.execute("COMMIT")
    conn.execute(INSERT, (ROW, -1)).fetchall()  # one commit untimed: the write lease is held
