"""Command line: run sqllogictest files against stdlib sqlite3 in memory (python -m ...)."""

from __future__ import annotations

import time
from pathlib import Path

from dolite.testing.sqllogictest.runner import run_file

# --------------------------------------------------------------------------------------
# Command line: run files against stdlib sqlite3 in memory
# --------------------------------------------------------------------------------------


def _sqlite3_memory():
    import sqlite3

    return sqlite3.connect(":memory:", isolation_level=None)


def _expand(args: list[str]) -> list[Path]:
    out: list[Path] = []
    for a in args:
        p = Path(a)
        out.extend(sorted(p.rglob("*.test")) if p.is_dir() else [p])
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m dolite.testing.sqllogictest",
        description="Run sqllogictest files against stdlib sqlite3 (:memory:).")
    ap.add_argument("paths", nargs="+", help=".test files or folders (searched recursively)")
    ap.add_argument("--show", type=int, default=5, help="failures shown per file (default 5)")
    ap.add_argument("--ht", type=int, default=None, help="hash threshold override")
    args = ap.parse_args(argv)
    total = nfail = 0
    t0 = time.perf_counter()
    for path in _expand(args.paths):
        res = run_file(path, _sqlite3_memory, hash_threshold=args.ht)
        total += 1
        nfail += bool(res.failures)
        print(res.report(args.show) if res.failures else res.summary(), flush=True)
    print(f"{total} files, {nfail} with failures, {time.perf_counter() - t0:.2f}s")
    return 1 if nfail else 0
