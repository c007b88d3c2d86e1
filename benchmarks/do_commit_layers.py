#!/usr/bin/env python
"""``python benchmarks/do_commit_layers.py [--commits N]``: where a single-row commit over
``do+http`` spends its time, by layer, on local workerd with no injected delay (the
breakdown in benchmarks/durable_object.md).

Four loops, interleaved for several rounds, best round kept, in ms per call:

- ``native``: native SQL in a SQLite-backed Durable Object, one INSERT request (the
  benchmark's baseline);
- ``put``: a bare storage ``put`` of what a commit writes (a 4,124-byte chunk and a head);
- ``commit``: the same writes as a ``commit`` with a commit's expectations (the head, the
  lease, the new chunk key absent): adds the Worker's compare;
- ``dolite``: a whole dolite commit (``BEGIN``; one INSERT; ``COMMIT``) on an exclusive
  connection: adds SQLite, the VFS and the page store in Python.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dolite  # noqa: E402
from dolite.cloudflare.bench_clients import NativeSql  # noqa: E402
from dolite.cloudflare.dev import start_workerd  # noqa: E402
from dolite.storage import open_storage  # noqa: E402

ROW = "x" * 40
HEAD = b"h" * 1200  # a head carrying some records (0.3-1.9 KB in the bench)
LEASE = b"l" * 77


def loops(url: str, base_url: str, secret: str) -> dict:
    """name -> a function running one call of that layer, numbered ``i``."""
    conn = dolite.connect("layers", storage=url, exclusive=True, isolation_level=None, retention=0)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    native = NativeSql(base_url, secret, "layers-native")
    native.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    raw = open_storage(url).object("layers-raw")
    raw.commit({"head": HEAD, "lease": LEASE})

    def dolite_commit(i):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t(v) VALUES (?)", (ROW,))
        conn.execute("COMMIT")

    def storage_commit(i):
        key = f"c/{i:08x}"
        raw.commit({key: os.urandom(4124), "head": HEAD}, expect={"head": HEAD, "lease": LEASE, key: None})

    return {
        "native": lambda i: native.execute("INSERT INTO t(v) VALUES (?)", [ROW]),
        "put": lambda i: raw.put({f"p/{i:08x}": os.urandom(4124), "head": HEAD}),
        "commit": storage_commit,
        "dolite": dolite_commit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=400, help="calls per loop per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, start_workerd(port=0, data_dir=data, config="bench") as worker:
        runs = loops(worker.storage_url, worker.url, worker.secret)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(args.rounds):
            for name, run in runs.items():
                started = time.perf_counter()
                for i in range(args.commits):
                    run(r * args.commits + i)
                times[name].append((time.perf_counter() - started) / args.commits * 1e3)
    for name, ms in times.items():
        print(f"{name:>7}: best {min(ms):.3f} ms, median {statistics.median(ms):.3f} ms per call")


if __name__ == "__main__":
    main()
