#!/usr/bin/env python
"""``python benchmarks/layers.py [--storage URL]``: where a durable commit and a bulk
insert spend their time, by layer (the breakdowns in docs/PERFORMANCE.md).

- bulk insert: 100,000 rows in one transaction, the insert phase and ``COMMIT`` timed
  apart, on stdlib sqlite3 (WAL, ``synchronous=FULL``), APSW on a plain file (the SQLite
  dolite runs) and dolite;
- durable commit: 2,000 single-row autocommit INSERTs through dolite under cProfile, the
  storage calls' share printed first.
"""

import argparse
import cProfile
import os
import pstats
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import apsw  # noqa: E402

import dolite  # noqa: E402
from dolite.bench import workloads  # noqa: E402

ROWS = [(i, workloads.ROW, i % 1000) for i in range(1, 100_001)]


def phases(conn) -> tuple[float, float]:
    workloads.create_table(conn)
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t(id, v, n) VALUES (?, ?, ?)", ROWS)
    t1 = time.perf_counter()
    conn.execute("COMMIT")
    return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000


class Apsw:
    def __init__(self, path):
        self.raw = apsw.Connection(path)
        self.raw.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL")

    def execute(self, sql, params=()):
        return self.raw.execute(sql, params)

    def executemany(self, sql, rows):
        return self.raw.executemany(sql, rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", default="sqlite:", help="dolite's storage scheme (a temporary directory is added)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="dolite-layers-")
    storage = args.storage + tmp + "/store"
    for r in range(3):
        native = sqlite3.connect(os.path.join(tmp, f"n{r}.db"), isolation_level=None)
        native.execute("PRAGMA journal_mode=WAL")
        native.execute("PRAGMA synchronous=FULL")
        sides = {"native": native, "apsw": Apsw(os.path.join(tmp, f"a{r}.db")),
                 "dolite": dolite.connect(f"bulk{r}", storage=storage, isolation_level=None, exclusive=True)}
        for name, conn in sides.items():
            insert, commit = phases(conn)
            print(f"bulk insert  {name:7s} insert {insert:6.1f} ms   COMMIT {commit:6.1f} ms")
    conn = dolite.connect("commits", storage=storage, isolation_level=None, exclusive=True)
    workloads.create_table(conn)
    workloads.fill(conn, 10_000)
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.runcall(workloads.durable_commit, conn, 2_000)
    print(f"durable commit: {(time.perf_counter() - t0) / 2_000 * 1e6:.0f} us per commit under cProfile")
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
