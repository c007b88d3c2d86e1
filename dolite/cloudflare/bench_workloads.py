"""The Durable Object benchmark's sizes and workloads, each as a (dolite, native) pair.

A workload here is two functions over a ``range`` of transaction indices: one runs those
transactions through a dolite connection, the other sends the same ones to the native SQL
baseline (:class:`~dolite.cloudflare.bench_clients.NativeSql`). Both sides start from the
same table, filled by :func:`fill_dolite` and :func:`fill_native`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dolite.cloudflare.bench_clients import NativeSql, RequestCounter, Tally
from dolite.cloudflare.cost import Usage

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
    """Run the page store's garbage collection until it finds nothing more to delete (all
    of it, with the benchmark's zero retention); the number of keys it deleted."""
    store = conn.database.store
    deleted = 0
    while done := store.collect_garbage():
        deleted += done
    return deleted


def then_settle_gc(conn, on_dolite, count: int):
    """``on_dolite`` that, after the part ending the phase's ``count`` transactions, also
    collects the garbage they left: the phase pays, in time, requests and rows, for all
    the collection its commits cause (the rest ran inline, every few commits)."""

    def work(part: range) -> None:
        on_dolite(part)
        if part.stop == count:
            settle_gc(conn)

    return work


class GcMeter:
    """Within ``with``, times the page store's garbage collection (inline after commits, or
    settling) and counts the requests and rows it spends, so a phase can say which share
    of its figures was collection."""

    def __init__(self, store, counter: RequestCounter):
        self.store = store
        self.counter = counter
        self.reset()

    def reset(self) -> None:
        self.seconds = 0.0
        self.spent = Tally(Usage(), 0, 0)

    def __enter__(self) -> GcMeter:
        collect = self.store.collect_garbage

        def metered(*args, **kwargs):
            before, t0 = self.counter.snapshot(), time.perf_counter()
            try:
                return collect(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
                self.spent = self.spent + (self.counter.snapshot() - before)

        self.store.collect_garbage = metered  # the store calls it through self: this one
        return self

    def __exit__(self, *exc) -> None:
        del self.store.collect_garbage

    def figures(self, count: int, per_s: float) -> dict:
        """The collection's share of ``count`` transactions done at ``per_s`` (with it), per
        transaction, and the rate without it."""
        usage = self.spent.usage.per(count)
        rest = count / per_s - self.seconds
        return {"per_s_without_gc": count / rest if rest > 0 else float("inf"),
                "ms": self.seconds / count * 1000, "round_trips": usage.requests,
                "rows_read": usage.rows_read, "rows_written": usage.rows_written}


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
