"""Exclusive and normal connections mixed, in one process and in several (issue #8): random
commits, reads, drops and re-creates, and transient storage errors after a commit landed.
Every read must match the model of acknowledged commits: nothing acknowledged is lost, no
connection keeps serving a version older than one acknowledged before its read began."""

from __future__ import annotations

import multiprocessing
import os
import random
import time
import uuid
from pathlib import Path

import pytest

import dolite
from dolite.errors import StorageError
from dolite.ops import admin
from dolite.storage import open_storage
from tests.torture.conftest import scale
from tests.torture.faulty import FaultyNamespace

SCHEMA = "CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v INTEGER)"


class Client:
    """One connection, in its own VFS (as another process would have) or a shared one."""

    def __init__(self, namespace: FaultyNamespace, exclusive: bool, retention: float | None = None):
        self.ns, self.exclusive, self.retention = namespace, exclusive, retention
        self.conn = None

    def open(self):
        if self.conn is None:
            self.conn = dolite.connect("m", storage=self.ns, exclusive=self.exclusive,
                                       isolation_level=None, timeout=0.05, retention=self.retention)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _read(conn) -> dict[int, int]:
    return dict(conn.execute("SELECT k, v FROM kv").fetchall())


def _run_model(url: str, seed: int, steps: int, retention: float | None = None) -> dict:
    rng = random.Random(seed)
    inner = open_storage(url)
    shared = FaultyNamespace(inner)
    clients = [Client(shared if i < 2 else FaultyNamespace(inner), bool(i % 2), retention) for i in range(5)]
    model: dict[int, int] = {}
    uncertain: dict[int, set[int | None]] = {}  # k -> values it may hold after unheard commits
    boot = Client(FaultyNamespace(inner), False, retention).open()
    boot.execute(SCHEMA)
    boot.close()
    counts = {"writes": 0, "reads": 0, "drops": 0, "lost_replies": 0, "refused": 0}
    for _ in range(steps):
        client = rng.choice(clients)
        op = rng.random()
        try:
            conn = client.open()
            if op < 0.45:
                k, v = rng.randrange(20), rng.randrange(1_000_000)
                lose = rng.random() < 0.1
                if lose:  # the commit lands, but its reply is lost (or GC after it fails)
                    client.ns.faults.arm(at=_head_write_op(client), mode="lost_reply")
                try:
                    conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (k, v))
                    model[k] = v
                    uncertain.pop(k, None)
                    counts["writes"] += 1
                except StorageError:
                    counts["lost_replies"] += 1
                    uncertain.setdefault(k, {model.get(k)}).add(v)
                finally:
                    client.ns.faults.arm(None)
            elif op < 0.93:
                seen = _read(conn)
                for k, candidates in list(uncertain.items()):
                    assert seen.get(k) in candidates, (k, seen.get(k), candidates)
                    if seen.get(k) is None:
                        model.pop(k, None)
                    else:
                        model[k] = seen[k]
                    uncertain.pop(k)
                assert seen == model, f"a read does not match the acknowledged commits: {seen} != {model}"
                counts["reads"] += 1
            elif op < 0.97:
                client.close()  # an exclusive client gives its lease back
            else:
                for c in clients:
                    c.close()
                admin.drop(inner, "m")
                boot = Client(FaultyNamespace(inner), False, retention).open()
                boot.execute(SCHEMA)
                boot.close()
                model.clear()
                uncertain.clear()
                counts["drops"] += 1
        except dolite.OperationalError as exc:  # busy, or another process holds the lease
            if not isinstance(exc, (dolite.LeaseHeld,)) and "locked" not in str(exc) and "lease" not in str(exc):
                raise
            counts["refused"] += 1
            client.close()
    for c in clients:
        c.close()
    return counts


def _head_write_op(client: Client) -> int:
    """The storage operation of the next commit that carries the head (warm: the first)."""
    return 1 if client.conn is not None and client.exclusive else 2


@pytest.mark.parametrize("backend", ["memory", "lmdb", "sqlite"])
@pytest.mark.parametrize("retention", [None, 0.0], ids=["versions", "in_place"])
def test_mixed_connections_in_one_process(backend, tmp_path, record, retention):
    steps, seeds = scale(300, 3000), scale(2, 10)
    totals: dict[str, int] = {}
    for seed in range(seeds):
        url = f"memory:{uuid.uuid4().hex}" if backend == "memory" else f"{backend}:{tmp_path}/s{seed}"
        for k, v in _run_model(url, seed, steps, retention).items():
            totals[k] = totals.get(k, 0) + v
    assert totals["reads"] > 0 and totals["writes"] > 0
    record(f"mixed_{backend}" + ("_in_place" if retention == 0 else ""), seeds=seeds, steps=steps * seeds, mismatches=0, **totals)


# -- several processes -------------------------------------------------------------------

def _worker(url: str, me: int, exclusive: bool, acked, seconds: float, out: str) -> None:
    """Append rows (me, seq); after each acknowledged commit publish seq + 1 in acked[me].
    Each read must hold every row acknowledged by anyone before the read began."""
    rng = random.Random(me)
    conn, seq, reads, deadline = None, 0, 0, time.time() + seconds
    while time.time() < deadline:
        try:
            if conn is None:
                conn = dolite.connect("p", storage=url, exclusive=exclusive, isolation_level=None,
                                      timeout=0.05, lease_ttl=2.0)
            if rng.random() < 0.5:
                conn.execute("INSERT INTO rows VALUES (?, ?)", (me, seq))
                seq += 1
                acked[me] = seq
            else:
                before = list(acked)
                have: dict[int, int] = {}
                for p, s in conn.execute("SELECT p, max(s) + 1 FROM rows GROUP BY p"):
                    have[p] = s
                for p, n in enumerate(before):
                    assert have.get(p, 0) >= n, f"process {me} missed acknowledged rows of {p}"
                reads += 1
            if exclusive and rng.random() < 0.1:
                conn.close()  # give the lease back now and then
                conn = None
        except dolite.OperationalError:
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(rng.uniform(0, 0.02))
    if conn is not None:
        conn.close()
    Path(out).write_text(f"{seq} {reads}")


@pytest.mark.parametrize("backend", ["lmdb", "sqlite"])
@pytest.mark.parametrize("retention", [None, 0.0], ids=["versions", "in_place"])
def test_mixed_connections_in_several_processes(backend, tmp_path, record, retention):
    url = f"{backend}:{tmp_path}/{backend}"
    conn = dolite.connect("p", storage=url, isolation_level=None, retention=retention)
    conn.execute("CREATE TABLE rows(p INTEGER, s INTEGER, PRIMARY KEY (p, s))")
    conn.close()
    ctx = multiprocessing.get_context("spawn")
    workers = 4
    acked = ctx.Array("q", workers, lock=False)
    seconds = scale(4, 60)
    procs = [ctx.Process(target=_worker, args=(url, i, bool(i % 2), acked, seconds, str(tmp_path / f"w{i}")))
             for i in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(seconds + 60)
        assert p.exitcode == 0, f"worker {p.pid} failed (exit code {p.exitcode})"
    done = [tuple(map(int, (tmp_path / f"w{i}").read_text().split())) for i in range(workers)]
    check = dolite.connect("p", storage=url, isolation_level=None)
    stored = dict(check.execute("SELECT p, count(*) FROM rows GROUP BY p").fetchall())
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()
    for i, (seq, _) in enumerate(done):
        assert stored.get(i, 0) == seq, f"worker {i}: {seq} acknowledged, {stored.get(i, 0)} stored"
    assert sum(seq for seq, _ in done) > 0 and sum(r for _, r in done) > 0
    name = "mixed_processes" if backend == "lmdb" else f"mixed_processes_{backend}"
    record(name + ("_in_place" if retention == 0 else ""), workers=workers,
           seconds=seconds, commits=sum(s for s, _ in done), reads=sum(r for _, r in done),
           lost_acknowledged=0, stale_reads=0)
