"""Memory figures of ``dolite bench`` (issue #15), each measured in a child process of its
own (running :func:`main`), so that the bench's own heap, grown and freed by
the other workloads, neither hides nor inflates them.

``idle_databases``: the growth of the process's memory per database after ``count``
databases were created and touched once through an :class:`ObjectHost` configured as
``dolite serve`` configures it (but a short idle timeout), and then left idle until the
host closed them all. ``big_transaction``: the growth of the process's anonymous memory
while one transaction of ``megabytes`` 1 MB rows runs and commits through
:func:`dolite.connect`.

Memory is read from ``/proc/self/status``: ``VmRSS`` (every resident page) and ``RssAnon``
(anonymous pages: the heap, not file-backed pages such as LMDB's map, which the kernel
can drop at will), in KiB.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import subprocess
import sys
import time

CHILD_TIMEOUT = 900.0  # seconds; a child past this is a failure, not a figure
IDLE_TIMEOUT = 1.0     # the host's idle timeout in the idle-databases measure, seconds


def resident_kib() -> dict[str, int]:
    """This process's resident memory now: ``{"rss": VmRSS, "anon": RssAnon}`` in KiB."""
    with open("/proc/self/status") as status:
        text = status.read()
    return {key: int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1))
            for key, field in (("rss", "VmRSS"), ("anon", "RssAnon"))}


def _child(*args: str) -> dict:
    """Run this module's ``main`` with ``args`` in a fresh interpreter; its JSON answer."""
    code = f"from dolite.bench.memory import main; main({list(args)!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"memory measure {args[0]} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def idle_databases(url: str, count: int) -> dict:
    """Memory per idle database (see the module docstring), measured in a child."""
    return _child("idle", url, str(count))


def big_transaction(url: str, megabytes: int) -> dict:
    """Peak memory growth of one ``megabytes`` MB transaction, measured in a child."""
    return _child("big-txn", url, str(megabytes))


# -- in the child ------------------------------------------------------------------------


async def _touch(host, name: str) -> None:
    from dolite.remote.wire import Statement

    await host.call(name, "create")
    await host.call(name, "query", [Statement("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ()),
                                    Statement("INSERT INTO t(v) VALUES ('touched')", ())], False, True)


def _open_objects(host) -> int:
    return sum(1 for obj in host.objects.values() if obj.conn is not None)


async def _all_idle(host) -> None:
    """Wait until the host's sweeper has closed and forgotten every object, then one more
    sweep (the one that closed the last gives the memory back) and a full collection."""
    give_up = time.monotonic() + IDLE_TIMEOUT + 60
    while host.objects and time.monotonic() < give_up:
        await asyncio.sleep(host.config.sweep_every / 2)
    if host.objects:
        raise RuntimeError(f"{len(host.objects)} objects still open after {IDLE_TIMEOUT + 60:.0f} s")
    await asyncio.sleep(host.config.sweep_every * 2)
    gc.collect()


async def _measure_idle(url: str, count: int) -> dict:
    import apsw

    from dolite.server.objects import HostConfig, ObjectHost

    host = ObjectHost(url, HostConfig(idle_timeout=IDLE_TIMEOUT))
    await host.start()
    try:
        await _touch(host, "bench-idle-warm-up")  # imports, the VFS, first allocations
        await _all_idle(host)
        base, heap_base = resident_kib(), apsw.memory_used()
        started, most_open = time.perf_counter(), 0
        for i in range(count):
            await _touch(host, f"bench-idle-{i}")
            most_open = max(most_open, _open_objects(host))
        touched, touched_seconds = resident_kib(), time.perf_counter() - started
        await _all_idle(host)
        idle = resident_kib()
        heap_idle = apsw.memory_used()
    finally:
        await host.close()
    return {
        "databases": count,
        "idle_db_kib": (idle["rss"] - base["rss"]) / count,
        "idle_db_anon_kib": (idle["anon"] - base["anon"]) / count,
        "idle_db_sqlite_heap_kib": (heap_idle - heap_base) / 1024 / count,
        "touched_rss_growth_mib": (touched["rss"] - base["rss"]) / 1024,
        "open_at_most": most_open,
        "max_objects": host.config.max_objects,
        "idle_timeout": IDLE_TIMEOUT,
        "touch_seconds": touched_seconds,
        "measure": "VmRSS growth per database after gc, once the host closed them all (RssAnon and "
                   "SQLite's heap alongside); each database created and sent one write batch",
    }


def _measure_big_transaction(url: str, megabytes: int) -> dict:
    import dolite

    conn = dolite.connect("bench-big-txn", storage=url, isolation_level=None)
    try:
        conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)")
        base = peak = resident_kib()["anon"]
        started = time.perf_counter()
        conn.execute("BEGIN")
        for i in range(megabytes):
            conn.execute("INSERT INTO t VALUES (?, randomblob(1000000))", (i,))
            peak = max(peak, resident_kib()["anon"])
        conn.execute("COMMIT")
        peak = max(peak, resident_kib()["anon"])
        seconds = time.perf_counter() - started
        stored = conn.execute("SELECT count(*), sum(length(b)) FROM t").fetchone()
    finally:
        conn.close()
    if tuple(stored) != (megabytes, megabytes * 1_000_000):
        raise RuntimeError(f"the big transaction stored {stored}, not {megabytes} rows of 1 MB")
    return {"megabytes": megabytes, "big_txn_peak_mib": (peak - base) / 1024, "base_mib": base / 1024,
            "seconds": seconds,
            "measure": "RssAnon growth over the process's memory before BEGIN, sampled after each 1 MB row "
                       "and after COMMIT"}


def main(argv: list[str]) -> None:
    """``idle URL COUNT`` or ``big-txn URL MEGABYTES``: print the figures as JSON."""
    what, url, number = argv
    if what == "idle":
        out = asyncio.run(_measure_idle(url, int(number)))
    elif what == "big-txn":
        out = _measure_big_transaction(url, int(number))
    else:
        raise SystemExit(f"unknown measure {what!r}")
    print(json.dumps(out))

