"""Runs every workload on dolite, on stdlib sqlite3 (a WAL file) and on the naive
baseline, in one process, and returns the figures as one JSON-ready dict."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import tempfile
import time
from dataclasses import asdict

import apsw

import dolite
from dolite.bench import backup_cost, memory
from dolite.bench import workloads as w
from dolite.bench.counting import CountingNamespace
from dolite.bench.naive import NaiveConnection
from dolite.bench.sizes import FULL, GOALS, IDLE_GOAL_DATABASES, QUICK, Sizes, goals

__all__ = ["FULL", "GOALS", "QUICK", "Bench", "Sizes", "goals", "run"]
from dolite.storage import open_storage

class Bench:
    def __init__(self, sizes: Sizes, storage: str | None, progress=None):
        self.sizes = sizes
        self.tmp = tempfile.mkdtemp(prefix="dolite-bench-")
        self.url = storage or f"sqlite:{self.tmp}/sqlite"
        self.owns_storage = storage is None  # opened here, closed here
        self.ns = open_storage(self.url)
        self.progress = progress or (lambda message: None)
        self._serial = 0
        self.settled: dict[str, list[float]] = {}  # workload -> ms waited for background checkpoints, per run

    def close(self) -> None:
        if self.owns_storage:
            self.ns.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def new_name(self, what: str) -> str:
        """A database name not used before in this run."""
        self._serial += 1
        return f"bench-{what}-{os.getpid()}-{self._serial}"

    # -- connections -------------------------------------------------------------------

    def native(self, what: str) -> sqlite3.Connection:
        conn = sqlite3.connect(os.path.join(self.tmp, self.new_name(what) + ".db"), isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def dolite(self, what: str, namespace=None, name: str | None = None):
        return dolite.connect(name or self.new_name(what), storage=namespace or self.ns,
                              exclusive=True, isolation_level=None)

    def naive(self, what: str) -> NaiveConnection:
        return NaiveConnection(self.ns, self.new_name(what))

    # -- workloads -----------------------------------------------------------------

    def _best(self, label: str, sides: dict, run) -> dict[str, float]:
        """Run ``run(connect)`` for each side, ``rounds`` times interleaved; keep the best."""
        best: dict[str, float] = {}
        for r in range(self.sizes.rounds):
            for side, connect in sides.items():
                conn = connect(label)
                try:
                    value = run(conn)
                finally:
                    conn.close()
                self._settle(label, side)
                best[side] = max(best.get(side, 0.0), value)
                self.progress(f"{label} round {r + 1}: {side} {value:,.0f}/s")
        return best

    def _settle(self, label: str, side: str) -> None:
        """Let the store's background checkpoints (``sqlite:``) finish, untimed, so they
        never run into the next side's timed run; their time is reported, not hidden."""
        checkpointer = getattr(self.ns, "checkpointer", None)
        if checkpointer is None or side == "native":
            return
        t0 = time.perf_counter()
        checkpointer.wait_idle(120)
        waits = self.settled.setdefault(label, [])
        waits.append(round((time.perf_counter() - t0) * 1000, 1))

    def _sides(self, naive: bool = False) -> dict:
        sides = {"native": self.native, "dolite": self.dolite}
        if naive:
            sides["naive"] = self.naive
        return sides

    def bulk_insert(self) -> dict[str, float]:
        def run(conn):
            w.create_table(conn)
            return w.bulk_insert(conn, self.sizes.bulk_rows)
        return self._best("bulk_insert", self._sides(naive=True), run)

    def durable_commit(self) -> dict[str, float]:
        s = self.sizes

        def run(conn):
            w.create_table(conn)
            w.fill(conn, s.durable_preload)
            n = s.naive_durable_commits if isinstance(conn, NaiveConnection) else s.durable_commits
            return w.durable_commit(conn, n)
        return self._best("durable_commit", self._sides(naive=True), run)

    def concurrent_commit(self) -> dict[str, float]:
        """Total durable commits/s of ``concurrent_threads`` threads, each committing
        single-row INSERTs to its own database: on dolite the databases share one storage
        namespace (group commit can share syncs); natively, one WAL file each."""
        s = self.sizes

        def connect_all(connect):
            def many(label):
                conns = [connect(label) for _ in range(s.concurrent_threads)]
                for conn in conns:
                    w.create_table(conn)
                return _Group(conns)
            return many
        sides = {side: connect_all(connect) for side, connect in self._sides().items()}
        return self._best("concurrent_commit", sides,
                          lambda group: w.concurrent_commit(group.conns, s.concurrent_commits))

    def point_select(self) -> dict[str, float]:
        s = self.sizes

        def run(conn):
            w.create_table(conn)
            w.fill(conn, s.select_rows)
            return w.point_select(conn, s.select_rows, s.select_lookups)
        return self._best("point_select", self._sides(), run)

    def point_select_layers(self) -> dict[str, float]:
        """Where dolite's point-select time goes: the same lookups through the DB-API
        wrapper, through APSW directly (``conn.raw``), and through APSW with SQLite's
        page cache large enough to hold the table (no VFS reads at all)."""
        s = self.sizes
        conn = self.dolite("layers")
        try:
            w.create_table(conn)
            w.fill(conn, s.select_rows)
            out = {"dbapi": w.point_select(conn, s.select_rows, s.select_lookups),
                   "apsw": w.point_select(conn.raw, s.select_rows, s.select_lookups)}
            conn.raw.execute("PRAGMA cache_size = -262144")
            out["apsw_large_page_cache"] = w.point_select(conn.raw, s.select_rows, s.select_lookups)
        finally:
            conn.close()
        self.progress("point_select layers: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in out.items()))
        return out

    def write_amplification(self) -> dict:
        """Bytes written to storage per byte of dirty pages over small mixed transactions."""
        s = self.sizes
        name = self.new_name("wa")
        conn = self.dolite("wa", name=name)
        w.create_table(conn)
        conn.execute("CREATE INDEX t_n ON t(n)")
        w.fill(conn, s.select_rows)
        conn.close()
        counting = CountingNamespace(self.ns)
        conn = self.dolite("wa", namespace=counting, name=name)
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        counting.counters.reset()
        w.mixed_updates(conn, s.select_rows, s.mixed_transactions)
        c = counting.counters
        conn.close()
        commits = c.by_op.get("commit", 0)
        self.progress(f"write_amplification: {c.bytes_written / c.chunk_payload_written:.3f}")
        return {
            "write_amplification": c.bytes_written / c.chunk_payload_written,
            "transactions": s.mixed_transactions,
            "storage_commit_calls": commits,
            "bytes_written": c.bytes_written,
            "dirty_page_bytes": c.chunk_payload_written,
            "dirty_pages_per_transaction": c.chunk_payload_written / page_size / s.mixed_transactions,
            "page_size": page_size,
        }

    def backup(self) -> dict:
        """Backup cost against a file:// target (dolite/bench/backup_cost.py)."""
        return backup_cost.measure(self)

    def cluster(self) -> dict:
        """The ``cluster`` workload (dolite/cluster/bench.py, docs/CLUSTERS.md)."""
        from dolite.cluster import bench as cluster_bench

        s = self.sizes
        out = cluster_bench.run(self.ns, shard_counts=s.cluster_shards, seconds=s.cluster_seconds,
                                threads=s.concurrent_threads, transfers=s.cluster_transfers)
        self.progress(f"cluster: {out['cross_shard_transfer']['median_ms']:.2f} ms a cross-shard transfer")
        return out

    def _child_storage(self, what: str) -> str:
        """Where a memory measure's child process stores: the bench's storage, except a
        fresh directory of the default backend for ``memory:`` (whose data would sit in
        the measured heap)."""
        return f"sqlite:{self.tmp}/{what}" if self.url.startswith("memory:") else self.url

    def idle_databases(self) -> dict:
        """Memory per idle database held by the object host (dolite/bench/memory.py)."""
        out = memory.idle_databases(self._child_storage("idle"), self.sizes.idle_databases)
        if out["databases"] < IDLE_GOAL_DATABASES:
            out["note"] = (f"{out['databases']:,} databases, not the goal's {IDLE_GOAL_DATABASES:,}: creating "
                           f"them took {out['touch_seconds']:.1f} s, and {IDLE_GOAL_DATABASES:,} would take "
                           f"~{IDLE_GOAL_DATABASES // out['databases']}x that, too long for --quick; the full "
                           f"bench measures {IDLE_GOAL_DATABASES:,}")
        self.progress(f"idle databases: {out['idle_db_kib']:.1f} KiB each of {out['databases']:,} "
                      f"(at most {out['open_at_most']} open at once)")
        return out

    def big_transaction(self) -> dict:
        """Peak memory of one big transaction (dolite/bench/memory.py)."""
        out = memory.big_transaction(self._child_storage("big"), self.sizes.big_txn_mb)
        self.progress(f"big transaction: {out['big_txn_peak_mib']:.0f} MiB peak for {out['megabytes']} MB")
        return out

    def commit_vs_size(self) -> tuple[list[dict], str]:
        """Seconds per single-row commit as the database grows; returns the dolite
        database's name too (the cold-read figure reuses it)."""
        s = self.sizes
        name = self.new_name("growth")
        counting = CountingNamespace(self.ns)
        sides = {"native": self.native("growth"), "dolite": self.dolite("growth", counting, name),
                 "naive": self.naive("growth")}
        for conn in sides.values():
            w.create_table(conn)
        rows = 0
        out = []
        try:
            for target in s.growth_rows:
                point: dict = {"rows": target}
                for side, conn in sides.items():
                    if side == "naive" and target > s.naive_growth_max_rows:
                        continue
                    # the naive side persists the whole file per transaction: fill in one
                    w.fill(conn, target - rows, start=rows + 1,
                           batch=target if side == "naive" else 50_000)
                    commits = s.naive_growth_commits if side == "naive" else s.growth_commits
                    if side == "dolite":
                        counting.counters.reset()
                    point[f"{side}_ms"] = w.timed_commits(conn, target, commits) * 1000
                    if side == "dolite":
                        point["dolite_bytes_per_commit"] = counting.counters.bytes_written / commits
                        point["size_bytes"] = conn.execute("PRAGMA page_count").fetchone()[0] * \
                            conn.execute("PRAGMA page_size").fetchone()[0]
                rows = target
                self.progress(f"commit_vs_size {target:,} rows: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in point.items() if k.endswith("_ms")))
                out.append(point)
        finally:
            for conn in sides.values():
                conn.close()
        return out, name

    def cold_read(self, name: str) -> dict:
        """Bytes read from storage to open a large database and run its first query."""
        counting = CountingNamespace(self.ns)  # a fresh namespace object: fresh VFS, empty cache
        conn = self.dolite("cold", counting, name)
        opened = counting.counters.snapshot()
        counting.counters.reset()
        rows = self.sizes.growth_rows[-1]
        row = conn.execute("SELECT v, n FROM t WHERE id = ?", (rows // 2 + 7,)).fetchone()
        assert row is not None
        query = counting.counters.snapshot()
        size = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
        conn.close()
        total = opened["bytes_read"] + query["bytes_read"]
        self.progress(f"cold_read: {total:,} bytes of a {size:,}-byte database")
        return {"cold_read_bytes": total, "database_bytes": size,
                "open_bytes": opened["bytes_read"], "query_bytes": query["bytes_read"],
                "chunks_read": opened["chunks_read"] + query["chunks_read"],
                "storage_calls": opened["calls"] + query["calls"]}


class _Group:
    """Several connections closed together (one side of the concurrent workload)."""

    def __init__(self, conns):
        self.conns = conns

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def run(quick: bool = False, storage: str | None = None, progress=None, sizes: Sizes | None = None) -> dict:
    """Run the whole benchmark; return the result dict (see docs/PERFORMANCE.md)."""
    started = time.perf_counter()
    sizes = sizes or (QUICK if quick else FULL)
    bench = Bench(sizes, storage, progress)
    try:
        bulk = bench.bulk_insert()
        durable = bench.durable_commit()
        concurrent = bench.concurrent_commit()
        select = bench.point_select()
        layers = bench.point_select_layers()
        wa = bench.write_amplification()
        growth, growth_db = bench.commit_vs_size()
        cold = bench.cold_read(growth_db)
        backup_cost = bench.backup()
        cluster_cost = bench.cluster()
        idle = bench.idle_databases()
        big = bench.big_transaction()
    finally:
        bench.close()
    sides = {side: {"bulk_insert": bulk.get(side), "durable_commit": durable.get(side),
                    "point_select": select.get(side)} for side in ("native", "dolite", "naive")}
    sides["naive"].pop("point_select")
    ratios = {k: sides["dolite"][k] / sides["native"][k] for k in sides["native"]}
    naive_ratios = {k: sides["dolite"][k] / sides["naive"][k] for k in sides["naive"]}
    first, last = growth[0], growth[-1]
    result = {
        "ratios": ratios,
        "write_amplification": wa["write_amplification"],
        "cold_read_bytes": cold["cold_read_bytes"],
        "naive_ratios": naive_ratios,
        "throughput": sides,
        "units": {"bulk_insert": "rows/s", "durable_commit": "commits/s", "point_select": "lookups/s"},
        "concurrent_commit": {"threads": sizes.concurrent_threads, "unit": "commits/s (all threads)",
                              "native": concurrent["native"], "dolite": concurrent["dolite"],
                              "ratio": concurrent["dolite"] / concurrent["native"],
                              "dolite_vs_single_thread": concurrent["dolite"] / durable["dolite"]},
        "point_select_layers": {k: {"lookups_per_s": v, "ratio_to_native": v / select["native"]}
                                for k, v in layers.items()},
        "write_amplification_detail": wa,
        "cold_read": cold,
        "backup": backup_cost,
        "cluster": cluster_cost,
        "commit_vs_size": growth,
        "commit_growth": {side: last[f"{side}_ms"] / first[f"{side}_ms"]
                          for side in ("dolite", "native", "naive") if f"{side}_ms" in last},
        "idle_db_kib": idle["idle_db_kib"],
        "big_txn_peak_mib": big["big_txn_peak_mib"],
        "idle_databases": idle,
        "big_transaction": big,
        "background_checkpoint_ms": bench.settled,
        "goals": goals({**ratios, "durable_commit_stretch": ratios["durable_commit"],
                        "write_amplification": wa["write_amplification"], "idle_db_kib": idle["idle_db_kib"],
                        "big_txn_peak_mib": big["big_txn_peak_mib"]}),
        "quick": quick,
        "storage": bench.url if storage else "sqlite:<temporary directory> (WAL, synchronous=FULL)",
        "sizes": asdict(sizes),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "native_sqlite": sqlite3.sqlite_version, "apsw_sqlite": apsw.sqlite_lib_version(),
                    "platform": platform.platform()},
        "seconds": time.perf_counter() - started,
    }
    return result
