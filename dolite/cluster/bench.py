"""The ``cluster`` benchmark workload (for ``dolite bench``; see docs/CLUSTERS.md).

* Single-shard commit throughput with 1, 2, 4, 8 shards: ``threads`` writers each run
  one-row autocommit updates on random keys for ``seconds``; commits a second.
* Cross-shard commit latency: transfers between two keys on different shards, one at a
  time; the median and the storage calls a transfer makes in all (lease taken and given
  back on both shards, prepares, decision, applies, the decision forgotten), and the same
  with ``hold_leases`` (one writer process: no lease traffic).
* The same transfers done in one database (two updates, one commit), for comparison.

Everything is measured in this process over ``storage`` (a URL or Namespace).
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid

from dolite.bench.counting import CountingNamespace
from dolite.cluster import coordinator
from dolite.cluster.cluster import Cluster
from dolite.sql import dbapi
from dolite.storage import Namespace, open_storage

KEYS = 256


def _bank(namespace: Namespace, shards: int, hold_leases: bool = False) -> Cluster:
    c = Cluster(f"bench-{uuid.uuid4().hex[:8]}", namespace, shards=shards, timeout=10.0,
                hold_leases=hold_leases)
    c.execute_all("CREATE TABLE acct(id TEXT PRIMARY KEY, bal INTEGER)")
    with c.transaction() as tx:
        for k in range(KEYS):
            tx.execute("INSERT INTO acct VALUES (?, 0)", (f"k{k}",), key=f"k{k}")
    return c


def single_shard_throughput(namespace: Namespace, shards: int, seconds: float, threads: int) -> float:
    """One-row autocommit updates a second, ``threads`` writers, ``shards`` shards."""
    c = _bank(namespace, shards)
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def writer(i: int) -> None:
        rng = random.Random(i)
        while time.perf_counter() < stop:
            key = f"k{rng.randrange(KEYS)}"
            c.execute("UPDATE acct SET bal = bal + 1 WHERE id = ?", (key,), key=key)
            counts[i] += 1

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    c.close()
    return sum(counts) / elapsed


def cross_shard_latency(namespace: Namespace, transfers: int, hold_leases: bool = False) -> dict:
    """Median latency (ms) of a two-shard transfer, and storage calls per transfer."""
    counting = CountingNamespace(namespace)
    c = _bank(counting, 2, hold_leases)
    a = "k0"
    b = next(f"k{k}" for k in range(1, KEYS) if c.shard_for(f"k{k}") != c.shard_for(a))
    latencies = []
    coordinator.wait_for_applies()
    counting.counters.reset()
    for _ in range(transfers):
        started = time.perf_counter()
        with c.transaction() as tx:
            tx.execute("UPDATE acct SET bal = bal - 1 WHERE id = ?", (a,), key=a)
            tx.execute("UPDATE acct SET bal = bal + 1 WHERE id = ?", (b,), key=b)
        latencies.append(time.perf_counter() - started)
    coordinator.wait_for_applies()
    calls = counting.counters.calls / transfers
    c.close()
    return {"median_ms": statistics.median(latencies) * 1000, "storage_calls": calls,
            "round_trips_before_answer": 2}


def one_database_latency(namespace: Namespace, transfers: int) -> dict:
    """The same transfers in one database: median latency (ms)."""
    conn = dbapi.connect(f"bench-{uuid.uuid4().hex[:8]}", namespace, isolation_level=None)
    conn.execute("CREATE TABLE acct(id TEXT PRIMARY KEY, bal INTEGER)")
    conn.execute("INSERT INTO acct VALUES ('a', 0), ('b', 0)")
    latencies = []
    for _ in range(transfers):
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE acct SET bal = bal - 1 WHERE id = 'a'")
        conn.execute("UPDATE acct SET bal = bal + 1 WHERE id = 'b'")
        conn.execute("COMMIT")
        latencies.append(time.perf_counter() - started)
    conn.close()
    return {"median_ms": statistics.median(latencies) * 1000}


def run(storage: str | Namespace, *, shard_counts=(1, 2, 4, 8), seconds: float = 2.0,
        threads: int = 8, transfers: int = 100) -> dict:
    """Every figure of the workload, as a JSON-ready dict."""
    namespace = open_storage(storage)
    return {
        "single_shard_commits_per_s": {n: round(single_shard_throughput(namespace, n, seconds, threads), 1)
                                       for n in shard_counts},
        "cross_shard_transfer": cross_shard_latency(namespace, transfers),
        "cross_shard_transfer_holding_leases": cross_shard_latency(namespace, transfers, hold_leases=True),
        "one_database_transfer": one_database_latency(namespace, transfers),
        "threads": threads,
    }
