"""The benchmark workloads. Each runs the same SQL on any DB-API-like connection
(stdlib sqlite3, dolite, or the naive baseline) opened with ``isolation_level=None``, so
transactions are explicit and identical on every side."""

from __future__ import annotations

import random
import threading
import time

ROW = "x" * 60


def create_table(conn) -> None:
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")


def fill(conn, rows: int, start: int = 1, payload: str = ROW, batch: int = 50_000) -> None:
    """Insert ``rows`` rows (ids from ``start``) in transactions of ``batch`` rows."""
    done = 0
    while done < rows:
        take = min(batch, rows - done)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO t(id, v, n) VALUES (?, ?, ?)",
            ((start + done + i, payload, (start + done + i) * 7 % 1000) for i in range(take)),
        )
        conn.execute("COMMIT")
        done += take


def bulk_insert(conn, rows: int) -> float:
    """Rows/s inserting ``rows`` rows in one transaction (table created beforehand)."""
    data = [(i, ROW, i % 1000) for i in range(1, rows + 1)]
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t(id, v, n) VALUES (?, ?, ?)", data)
    conn.execute("COMMIT")
    return rows / (time.perf_counter() - t0)


def durable_commit(conn, commits: int) -> float:
    """Single-row autocommit INSERTs/s."""
    t0 = time.perf_counter()
    for i in range(commits):
        conn.execute("INSERT INTO t(v, n) VALUES (?, ?)", (ROW, i))
    return commits / (time.perf_counter() - t0)


def concurrent_commit(conns, commits: int) -> float:
    """Total single-row autocommit INSERTs/s of one thread per connection (each its own
    database), ``commits`` each, all started together."""
    start = threading.Barrier(len(conns) + 1)
    errors: list[BaseException] = []

    def worker(conn):
        start.wait()
        try:
            durable_commit(conn, commits)
        except BaseException as exc:  # noqa: BLE001 (re-raised in the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(conn,)) for conn in conns]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return len(conns) * commits / elapsed


def point_select(conn, table_rows: int, lookups: int, seed: int = 1) -> float:
    """Primary-key lookups/s on a warm table of ``table_rows`` rows."""
    rng = random.Random(seed)
    ids = [rng.randrange(1, table_rows + 1) for _ in range(lookups)]
    sql = "SELECT v, n FROM t WHERE id = ?"
    for i in ids[: min(len(ids), 2000)]:  # warm up
        conn.execute(sql, (i,)).fetchone()
    t0 = time.perf_counter()
    for i in ids:
        conn.execute(sql, (i,)).fetchone()
    return lookups / (time.perf_counter() - t0)


def mixed_updates(conn, table_rows: int, transactions: int, seed: int = 2) -> None:
    """Small OLTP transactions: updates, an insert or a delete, sometimes a rollback."""
    rng = random.Random(seed)
    next_id = table_rows + 1
    for _ in range(transactions):
        conn.execute("BEGIN")
        for _ in range(rng.randint(1, 4)):
            conn.execute("UPDATE t SET v = ?, n = n + 1 WHERE id = ?",
                         ("u" * rng.randint(10, 120), rng.randrange(1, next_id)))
        roll = rng.random()
        if roll < 0.3:
            conn.execute("INSERT INTO t(id, v, n) VALUES (?, ?, ?)", (next_id, ROW, 0))
            next_id += 1
        elif roll < 0.4:
            conn.execute("DELETE FROM t WHERE id = ?", (rng.randrange(1, next_id),))
        conn.execute("ROLLBACK" if roll > 0.97 else "COMMIT")


def timed_commits(conn, table_rows: int, commits: int, seed: int = 3) -> float:
    """Seconds per single-row UPDATE commit at the table's current size."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    for _ in range(commits):
        conn.execute("UPDATE t SET n = n + 1 WHERE id = ?", (rng.randrange(1, table_rows + 1),))
    return (time.perf_counter() - t0) / commits


class CountingTarget:
    """A backup target that counts what is uploaded to it (objects and bytes; chunks and
    manifests apart), for the backup workload."""

    def __init__(self, inner):
        self.inner, self.url = inner, inner.url
        self.reset()

    def reset(self) -> None:
        self.puts = self.chunk_bytes = self.manifest_bytes = 0

    def put_object(self, key: str, data: bytes) -> None:
        self.inner.put_object(key, data)
        self.puts += 1
        if "/manifests/" in key:
            self.manifest_bytes += len(data)
        else:
            self.chunk_bytes += len(data)

    def __getattr__(self, attr):  # get_object, exists, list, delete: as the inner target
        return getattr(self.inner, attr)


def backup_push(push, target: CountingTarget) -> dict:
    """One push (``push(target)`` returns a PushResult): seconds, versions, uploads."""
    target.reset()
    t0 = time.perf_counter()
    result = push(target)
    return {"seconds": time.perf_counter() - t0, "versions": len(result.versions), "objects": target.puts,
            "chunk_bytes": target.chunk_bytes, "manifest_bytes": target.manifest_bytes}
