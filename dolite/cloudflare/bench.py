"""dolite's page store over a Durable Object vs. the same SQL run natively in a SQLite-backed one.

Both sides run on one local ``workerd`` (started here, on loopback, data in a temporary
directory) and do the same work:

* **dolite**: ``dolite.connect(name, storage=do+http://..., exclusive=True)``. SQLite runs in
  this Python process; its pages are stored as chunks in a ``DoliteObject`` through the
  Worker's key-value routes, one HTTP request per storage call.
* **native**: the same statements sent to ``NativeSqlObject`` (``POST /v1/native/{name}/sql``
  of the Worker's benchmark build, ``config="bench"``, never deployed), which runs them with
  ``ctx.storage.sql.exec`` inside the Durable Object.

Workloads, on a table ``t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)`` of ``rows`` rows
(filled untimed), each timed on both sides in alternating rounds (``ROUNDS``) so both see
the same background load:

* ``commit``: single-row INSERTs, each its own durable transaction (native: one request).
* ``txn_100_rows``: 100 INSERTs in one transaction (native: one batch request).
* ``interactive_txn``: read a row, compute in Python, write two rows, commit atomically.
  dolite: ``BEGIN; SELECT; UPDATE; UPDATE; COMMIT`` on its connection. Native, in its
  fastest correct form: one request to read, then one batch that writes both rows, the
  first guarded by the value read (``UPDATE ... WHERE id = ? AND n = ? RETURNING id`` that
  must return one row, else the batch rolls back).
* ``point_read``: SELECT by primary key at random ids. dolite *cold*: a fresh connection on
  a fresh namespace object (an empty page cache), timed alone; *hot* (``point_read_hot``):
  after a full scan loaded every page, alternating with the native reads.
* ``full_scan``: ``SELECT count(*), sum(length(v)) FROM t``; dolite *cold* (a fresh cache,
  once) and *hot* (``full_scan_hot``, alternating with native scans).

Counted per transaction, for both sides (both send through the same HTTP client,
:class:`~dolite.storage.http_client.KeepAliveClient`): HTTP round trips and body bytes, and
the storage **rows read and written as counted in the Worker** (the storage Worker's
``x-dolite-rows`` answer header; the native cursors' ``rowsRead`` and ``rowsWritten``),
priced by :mod:`dolite.cloudflare.cost`.

``rtt_ms`` puts a :class:`~dolite.cloudflare.rtt_proxy.RttProxy` between both clients and
workerd, adding that round-trip delay to every request, as a client some distance from the
Durable Object would see; the timed counts are then smaller (``QUICK_RTT``, ``FULL_RTT``).

    result = run_do_bench(quick=True, rtt_ms=10)   # a dict; print_report(result) renders it

``dolite cloudflare bench [--quick] [--json] [--rtt-ms N]`` runs it from the command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from urllib.parse import quote

import dolite
from dolite.cloudflare import bench_workloads as kinds
from dolite.cloudflare.bench_clients import NativeSql, RequestCounter, Tally, counted_namespace
from dolite.cloudflare.bench_cache import cached_cold_open
from dolite.cloudflare.bench_report import goals, print_report
from dolite.cloudflare.cost import MIX, PRICE_PER_MILLION, Usage, cost_per_million, mixed
from dolite.cloudflare.dev import npm_dir, start_workerd
from dolite.cloudflare.bench_workloads import FULL, FULL_RTT, QUICK, QUICK_RTT, SCAN, SELECT, DoBenchSizes
from dolite.cloudflare.rtt_proxy import RttProxy
from dolite.sql.freshness import HOT_STATEMENTS

__all__ = ["DoBenchSizes", "run_do_bench", "print_report"]



ROUNDS = 4
"""The timed phases alternate between the two sides in this many rounds (which side goes
first alternates too), so both see the same background load on a shared machine."""


RETENTION = 0.0
"""The benchmark database keeps no superseded versions, so the garbage collection each
commit eventually causes (one delete per superseded chunk version and per log record, each
billed as a row written, and the requests that find them) runs inside the timed phases, as
it does in steady state. With the default retention it costs the same, only later: a phase
shorter than the retention window would never see it."""


def _rounds(count: int, rounds: int) -> list[range]:
    rounds = max(1, min(rounds, count))
    edges = [count * r // rounds for r in range(rounds + 1)]
    return [range(edges[r], edges[r + 1]) for r in range(rounds)]


def _figures(count: int, seconds: float, spent: Tally) -> dict:
    """Per-transaction figures of ``count`` transactions that took ``seconds`` and ``spent``."""
    usage = spent.usage.per(count)
    return {
        "per_s": count / seconds if seconds > 0 else float("inf"),
        "round_trips": usage.requests,
        "rows_read": usage.rows_read,
        "rows_written": usage.rows_written,
        "bytes_sent": spent.bytes_sent / count,
        "bytes_received": spent.bytes_received / count,
        "cost_per_million": cost_per_million(usage),
    }


def _usage(figures: dict) -> Usage:
    return Usage(figures["round_trips"], figures["rows_read"], figures["rows_written"])


def _timed(count: int, sides: dict[str, tuple[Callable[[range], None], RequestCounter]],
           after_part: dict[str, Callable[[bool], None]] | None = None) -> dict[str, dict]:
    """Run each side's ``work(part)`` over ``range(count)`` in alternating rounds; its figures.
    ``after_part[side](last)``, if given, runs untimed after each of that side's parts, and
    its requests and rows count in the side's figures."""
    after_part = after_part or {}
    seconds = dict.fromkeys(sides, 0.0)
    before = {name: counter.snapshot() for name, (_, counter) in sides.items()}
    names = list(sides)
    parts = _rounds(count, ROUNDS)
    for r, part in enumerate(parts):
        for name in names if r % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            sides[name][0](part)
            seconds[name] += time.perf_counter() - t0
            if name in after_part:
                after_part[name](r == len(parts) - 1)
    return {name: _figures(count, seconds[name], counter.snapshot() - before[name])
            for name, (_, counter) in sides.items()}


def _alone(count: int, work: Callable[[], None], counter: RequestCounter) -> dict:
    """The figures of ``work()``, which does ``count`` transactions, timed on its own."""
    before = counter.snapshot()
    t0 = time.perf_counter()
    work()
    return _figures(count, time.perf_counter() - t0, counter.snapshot() - before)


def _write_phases(conn, namespace, counter: RequestCounter, native: NativeSql, sizes: DoBenchSizes,
                  pairs: list[tuple[int, int]], say: Callable[[str], None]) -> dict[str, dict]:
    """The timed write workloads on the filled database: ``{workload: {side: figures}}``.
    dolite's time covers its transactions (garbage collection runs on its own thread
    meanwhile); the collection's requests and rows count in full, what the phase's commits
    left being drained, untimed, after its last part (:class:`~.bench_workloads.GcMeter`)."""
    phases = {
        "commit": (sizes.commits, kinds.commit(conn, native)),
        "txn_100_rows": (sizes.batches, kinds.txn_100_rows(conn, native)),
        "interactive_txn": (sizes.txns, kinds.interactive_txn(conn, native, pairs)),
    }
    out = {}
    kinds.settle_gc(conn)  # untimed, uncounted: what the fill left to collect
    gc = kinds.GcMeter(conn, namespace, counter)
    for name, (count, (on_dolite, on_native)) in phases.items():
        ops_before = dict(counter.by_op)
        gc.reset()
        out[name] = _timed(count, {"dolite": (on_dolite, counter), "native": (on_native, native.counter)},
                           after_part={"dolite": gc.after_part})
        out[name]["dolite"]["gc"] = gc.figures(count, out[name]["dolite"]["per_s"])
        if name == "commit":  # besides one commit call each: the page store's reads and GC
            out[name]["dolite"]["requests_by_op"] = {
                op: n - ops_before.get(op, 0) for op, n in counter.by_op.items() if n > ops_before.get(op, 0)}
        say(_line(name, out[name]))
    return out


def _line(name: str, sides: dict[str, dict]) -> str:
    d, n = sides["dolite"], sides["native"]
    return (f"{name}: dolite {d['per_s']:,.0f}/s ({d['round_trips']:.2f} round trips, "
            f"{d['rows_written']:.2f} rows written), native {n['per_s']:,.0f}/s "
            f"({n['round_trips']:.2f}, {n['rows_written']:.2f})")


@contextlib.contextmanager
def _cold_connection(url: str, name: str):
    """A connection on a fresh namespace object (an empty page cache), and its counter."""
    ns, counter = counted_namespace(url)
    try:
        conn = dolite.connect(name, storage=ns, exclusive=True, isolation_level=None, create=False)
        try:
            yield conn, counter
        finally:
            conn.close()
    finally:
        ns.close()


def _read_phases(url: str, name: str, native: NativeSql, sizes: DoBenchSizes, ids_cold: list[int],
                 ids_hot: list[int], say: Callable[[str], None]) -> tuple[dict[str, dict], dict]:
    """Point reads and full scans, cold and hot: ``({workload: {side: figures}}, details)``."""
    details: dict = {}
    with _cold_connection(url, name) as (conn, counter):
        before = counter.snapshot()
        conn.execute("SELECT 1").fetchall()
        opened = (counter.snapshot() - before).usage
        details["open_round_trips"], details["open_rows_read"] = opened.requests, opened.rows_read
        t0 = time.perf_counter()
        conn.execute(SELECT, (ids_cold[0],)).fetchone()
        details["first_read_ms"] = (time.perf_counter() - t0) * 1000
        cold_reads = _alone(len(ids_cold) - 1, lambda: [conn.execute(SELECT, (i,)).fetchone()
                                                      for i in ids_cold[1:]], counter)
    with _cold_connection(url, name) as (conn, counter):
        conn.execute("SELECT 1").fetchall()
        cold_scan = _alone(1, lambda: conn.execute(SCAN).fetchone(), counter)
        for _ in range(HOT_STATEMENTS):  # a reader that keeps reading holds the lease
            conn.execute("SELECT 1").fetchall()  # (sql/freshness.py): hot reads need no I/O

        def dolite_scans(part: range) -> None:
            for _ in part:
                conn.execute(SCAN).fetchone()

        def native_scans(part: range) -> None:
            for _ in part:
                native.execute(SCAN)

        scans = _timed(sizes.scans, {"dolite": (dolite_scans, counter), "native": (native_scans, native.counter)})

        def dolite_reads(part: range) -> None:
            for j in part:
                conn.execute(SELECT, (ids_hot[j],)).fetchone()

        def native_reads(part: range) -> None:
            for j in part:
                if not native.execute(SELECT, (ids_hot[j],)):
                    raise RuntimeError(f"native point read of id {ids_hot[j]} found nothing")

        reads = _timed(len(ids_hot), {"dolite": (dolite_reads, counter), "native": (native_reads, native.counter)})
    out = {
        "point_read": {"dolite": cold_reads, "native": reads["native"]},
        "point_read_hot": reads,
        "full_scan": {"dolite": cold_scan, "native": scans["native"]},
        "full_scan_hot": scans,
    }
    for workload in out:
        say(_line(workload, out[workload]))
    return out, details


def _measure(base_url: str, secret: str, sizes: DoBenchSizes, rng: random.Random,
             say: Callable[[str], None]) -> tuple[dict[str, dict], dict]:
    """Fill both sides, run every workload: ``({workload: {side: figures}}, dolite details)``."""
    prefix = f"do-bench-{uuid.uuid4().hex[:8]}/"
    host_port = base_url.removeprefix("http://")
    url = f"do+http://{host_port}?secret={quote(secret, safe='')}&prefix={prefix}"
    name = "bench"
    ids_cold = [rng.randrange(1, sizes.rows + 1) for _ in range(sizes.reads + 1)]
    ids_hot = [rng.randrange(1, sizes.rows + 1) for _ in range(sizes.reads)]
    pairs = [tuple(rng.sample(range(1, sizes.rows + 1), 2)) for _ in range(sizes.txns)]
    native = NativeSql(base_url, secret, f"{prefix}{name}")
    try:
        kinds.fill_native(native, sizes)
        ns, counter = counted_namespace(url)
        try:
            conn = dolite.connect(name, storage=ns, exclusive=True, isolation_level=None, retention=RETENTION)
            try:
                kinds.fill_dolite(conn, sizes)
                say(f"filled {sizes.rows:,} rows on each side")
                workloads = _write_phases(conn, ns, counter, native, sizes, pairs, say)
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                details = {"database_bytes": conn.execute("PRAGMA page_count").fetchone()[0] * page_size}
            finally:
                conn.close()
        finally:
            ns.close()
        reads, read_details = _read_phases(url, name, native, sizes, ids_cold, ids_hot, say)
    finally:
        native.close()
    details |= read_details
    details["responses_without_row_counts"] = counter.uncounted
    return workloads | reads, details


def _workerd_version() -> str:
    try:
        package = json.loads((npm_dir() / "node_modules" / "workerd" / "package.json").read_text())
        return str(package.get("version", "?"))
    except (OSError, ValueError):
        return "?"


def _costs(workloads: dict[str, dict]) -> dict:
    """The ``cost_per_million`` table: dollars per million transactions of each kind, and of
    the mix (``MIX``; its reads and scans at dolite's cold figures, the conservative ones)."""
    table: dict = {"prices_usd_per_million": PRICE_PER_MILLION, "mix": MIX}
    for workload, sides in workloads.items():
        table[workload] = {side: figures["cost_per_million"] for side, figures in sides.items()}
    table["mixed"] = {side: cost_per_million(mixed({w: _usage(workloads[w][side]) for w in MIX}))
                      for side in ("dolite", "native")}
    return table


def run_do_bench(
    quick: bool = False,
    *,
    rtt_ms: float = 0,
    sizes: DoBenchSizes | None = None,
    progress: Callable[[str], None] | None = None,
    seed: int = 4,
) -> dict:
    """Start a local workerd, run every workload through dolite and natively, return the figures.

    ``rtt_ms`` > 0 sends both sides through a loopback proxy adding that round-trip delay.
    ``sizes`` overrides the sizes ``quick`` and ``rtt_ms`` pick (the tests use tiny ones).
    ``progress`` receives one line per finished phase.
    """
    if rtt_ms < 0:
        raise ValueError(f"rtt_ms must be >= 0, not {rtt_ms}")
    sizes = sizes or ((QUICK_RTT if quick else FULL_RTT) if rtt_ms else (QUICK if quick else FULL))
    say = progress or (lambda message: None)
    data = tempfile.mkdtemp(prefix="dolite-do-bench-")
    started = time.perf_counter()
    try:
        with start_workerd(port=0, data_dir=data, secret=uuid.uuid4().hex, config="bench") as handle, \
                contextlib.ExitStack() as stack:
            base_url = handle.url
            if rtt_ms:
                proxy = stack.enter_context(RttProxy(handle.host, handle.port, rtt_ms))
                base_url = f"http://127.0.0.1:{proxy.port}"
            say(f"workerd on {handle.url}" + (f", through a {rtt_ms:g} ms RTT proxy at {base_url}" if rtt_ms else ""))
            workloads, details = _measure(base_url, handle.secret, sizes, random.Random(seed), say)
            cached = cached_cold_open(base_url, handle.secret, sizes, say)  # issue #15: the local chunk cache
    finally:
        shutil.rmtree(data, ignore_errors=True)
    result = {
        "benchmark": "durable_object",
        "quick": quick,
        "rtt_ms": rtt_ms,
        "sizes": asdict(sizes),
        "environment": {
            "runtime": f"local workerd {_workerd_version()} on loopback (127.0.0.1)"
                       + (f", {rtt_ms:g} ms round trip injected" if rtt_ms else ""),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "workloads": workloads,
        # dolite / native transactions per second: above 1 means dolite is faster
        "ratios": {w: sides["dolite"]["per_s"] / sides["native"]["per_s"] for w, sides in workloads.items()},
        "round_trips_per_commit": {s: f["round_trips"] for s, f in workloads["commit"].items()},
        "rows_written_per_commit": {s: f["rows_written"] for s, f in workloads["commit"].items()},
        "cost_per_million": _costs(workloads),
        "dolite_details": details,
        "cached_cold_open": cached,
        "notes": NOTES,
        "seconds": time.perf_counter() - started,
    }
    result["goals"] = goals(result)
    return result


NOTES = [
    (f"writes, hot reads and hot scans alternate between the sides in {ROUNDS} rounds; dolite's "
     "cold reads and cold scan run alone, on fresh connections (empty page caches)"),
    ("figures are per transaction; rows are counted in the Worker: the storage Worker's "
     "x-dolite-rows header for dolite, the native cursors' rowsRead/rowsWritten"),
    ("cost_per_million: rows_written x $1.00 + rows_read x $0.001 + requests x ($0.15 a Durable "
     "Object request + $0.30 a Worker request), in dollars per million transactions (duration, "
     "CPU time and stored bytes not modelled); deletes are rows written; the mix prices dolite's "
     "reads and scans at their cold figures (hot ones need no request)"),
    (f"dolite's database keeps {RETENTION:g} s of old versions, so the garbage collection its "
     "commits cause (deletes of superseded chunk versions and log records, and the requests "
     "that find them) is counted inside each write phase, as in steady state: over do+http it "
     "runs on a thread of its own while commits go on, so the timed part covers the "
     "transactions; a pass still running when a timed part ends is waited for, and what the "
     "phase's commits left is collected after its last part, both untimed but counted in "
     "requests and rows (gc.drain_ms; gc.per_s_with_drain is the rate had they been timed)"),
    ("native interactive_txn: one request to read, then one batch with both writes, the first "
     "guarded by the value read (UPDATE ... AND n = ? RETURNING id, which must return one row)"),
    ("dolite runs SQLite in the client: an exclusive connection answers hot reads from its page "
     "cache with no round trip, and ships changed chunks plus a head compare-and-set per commit"),
]
