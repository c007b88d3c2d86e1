"""Command line (``python -m dolite.testing.sqllogictest``): run sqllogictest files against
stdlib sqlite3 in memory, or through dolite on any storage (``--storage URL``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dolite.errors import DoliteError
from dolite.testing.sqllogictest.runner import Result, run_file


def _sqlite3_memory():
    import sqlite3

    return sqlite3.connect(":memory:", isolation_level=None)


def _expand(args: list[str]) -> list[Path]:
    out: list[Path] = []
    for a in args:
        p = Path(a)
        out.extend(sorted(p.rglob("*.test")) if p.is_dir() else [p])
    return out


@contextmanager
def _engine(storage: str | None) -> Iterator[Callable[[Path], Callable]]:
    """Yields ``for_file(path) -> connect()``: stdlib sqlite3, or a fresh dolite database.

    With ``storage``, each file runs on its own database in that storage (opened once),
    dropped after the run, so nothing is left behind.
    """
    if storage is None:
        yield lambda path: _sqlite3_memory
        return
    import dolite
    from dolite.storage import open_storage

    namespace = open_storage(storage)
    names: list[str] = []

    def for_file(path: Path) -> Callable:
        names.append(f"slt-{path.stem}-{uuid.uuid4().hex[:12]}")
        name = names[-1]
        return lambda: dolite.connect(name, storage=namespace)

    try:
        yield for_file
    finally:
        for name in names:
            namespace.drop(name)
        namespace.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m dolite.testing.sqllogictest",
        description="Run sqllogictest files against stdlib sqlite3 (:memory:), or through "
                    "dolite with --storage.")
    ap.add_argument("paths", nargs="+", help=".test files or folders (searched recursively)")
    ap.add_argument("--storage", metavar="URL", default=None,
                    help="run through dolite.connect on this storage (memory:, lmdb:PATH, "
                         "do+http://HOST:PORT, ...): each file gets its own database, dropped "
                         "afterwards. Default: stdlib sqlite3 in memory")
    ap.add_argument("--show", type=int, default=5, help="failures shown per file (default 5)")
    ap.add_argument("--ht", type=int, default=None, help="hash threshold override")
    args = ap.parse_args(argv)
    files = _expand(args.paths)
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        ap.error(f"no such file: {', '.join(missing)}")
    t0 = time.perf_counter()
    results: list[Result] = []
    try:
        with _engine(args.storage) as for_file:
            for path in files:
                results.append(run_file(path, for_file(path), hash_threshold=args.ht))
                res = results[-1]
                print(res.report(args.show) if res.failures else res.summary(), flush=True)
    except DoliteError as exc:  # the storage cannot be opened or used: say so, not a traceback
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    nfail = sum(bool(r.failures) for r in results)
    # The query string may hold a secret (do+http://...?secret=S): never print it.
    engine = f"dolite on {args.storage.split('?')[0]}" if args.storage else "stdlib sqlite3"
    print(f"{len(results)} files, {nfail} with failures, {time.perf_counter() - t0:.2f}s ({engine})")
    return 1 if nfail else 0
