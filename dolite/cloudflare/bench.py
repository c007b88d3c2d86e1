"""dolite's page store over a Durable Object vs. the same SQL run natively in a SQLite-backed one.

Both sides run on one local ``workerd`` (started here, on loopback, data in a temporary
directory) and do the same work:

* **dolite**: ``dolite.connect(name, storage=do+http://..., exclusive=True)``. SQLite runs in
  this Python process; its pages are stored as chunks in a ``DoliteObject`` through the
  Worker's key-value routes, one HTTP request per storage call.
* **native**: the same statements sent to ``NativeSqlObject`` (``POST /v1/native/{name}/sql``
  of the Worker's benchmark build, ``config="bench"``, never deployed), which runs them with
  ``ctx.storage.sql.exec`` inside the Durable Object: one HTTP request per commit and per
  point read, by construction.

Workload: a table ``t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)`` filled with ``rows`` rows
(untimed), then ``commits`` single-row INSERT commits, then ``reads`` point SELECTs by
primary key at random ids. dolite's reads are measured twice: *cold* (a fresh connection on
a fresh namespace object, so an empty page cache: the first pass fetches chunks) and *hot*
(after a full scan has loaded every page into the cache). The commit phase and the hot-read
phase alternate between the two sides in rounds (``ROUNDS``), so both see the same
background load; the native side's reads are timed alongside dolite's hot reads (it keeps
no cache in the client, so it has no cold/hot distinction). Round trips are counted at the
HTTP layer (an httpx event hook on the backend's client), so they include everything the
page store does for a commit: chunk writes, the head compare-and-set, lease checks.

    result = run_do_bench(quick=True)     # a dict; print_report(result) renders a table

``dolite cloudflare bench [--quick] [--json]`` runs it from the command line.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from urllib.parse import quote

import httpx

import dolite
from dolite.cloudflare.dev import WorkerdHandle, npm_dir, start_workerd
from dolite.storage import open_storage

ROW = "x" * 60
INSERT = "INSERT INTO t(v, n) VALUES (?, ?)"
SELECT = "SELECT v, n FROM t WHERE id = ?"


@dataclass(frozen=True)
class DoBenchSizes:
    rows: int  # rows in the table the point reads hit
    commits: int  # single-row INSERT commits timed
    reads: int  # point SELECTs timed per phase
    fill_batch: int = 1000  # statements per native fill request (untimed setup)


QUICK = DoBenchSizes(rows=10_000, commits=1_000, reads=2_000)
FULL = DoBenchSizes(rows=50_000, commits=2_000, reads=5_000)


class RequestCounter:
    """Counts HTTP requests and body bytes on an ``httpx.Client`` through its event hooks."""

    def __init__(self, client: httpx.Client):
        self.requests = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.by_op: dict[str, int] = {}  # "POST commit" -> requests (method, last path segment)
        hooks = client.event_hooks
        hooks.setdefault("request", []).append(self._on_request)
        hooks.setdefault("response", []).append(self._on_response)
        client.event_hooks = hooks

    def _on_request(self, request: httpx.Request) -> None:
        self.requests += 1
        self.bytes_sent += len(request.content)
        op = f"{request.method} {request.url.path.rsplit('/', 1)[-1]}"
        self.by_op[op] = self.by_op.get(op, 0) + 1

    def _on_response(self, response: httpx.Response) -> None:
        response.read()  # the client reads it anyway; reading here lets us count it
        self.bytes_received += len(response.content)

    def snapshot(self) -> tuple[int, int, int]:
        return self.requests, self.bytes_sent, self.bytes_received

    def since(self, before: tuple[int, int, int]) -> tuple[int, int, int]:
        now = self.snapshot()
        return now[0] - before[0], now[1] - before[1], now[2] - before[2]


def _counted_namespace(url: str):
    """A ``do+http`` namespace whose HTTP requests are counted."""
    namespace = open_storage(url)
    # The backend sends every storage call through this one client (see durable_object.py).
    return namespace, RequestCounter(namespace._client)


class NativeSql:
    """The benchmark baseline client: SQL sent to the Worker's ``NativeSqlObject``."""

    def __init__(self, handle: WorkerdHandle, name: str):
        self.client = httpx.Client(
            base_url=handle.url,
            headers={"authorization": f"Bearer {handle.secret}"},
            timeout=60,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )
        self.counter = RequestCounter(self.client)
        self.path = f"/v1/native/{quote(name, safe='')}/sql"

    def _send(self, body: dict) -> dict:
        reply = self.client.post(self.path, content=json.dumps(body, separators=(",", ":")),
                                 headers={"content-type": "application/json"})
        if reply.status_code != 200:
            raise RuntimeError(f"native SQL refused: {reply.status_code} {reply.text[:300]}")
        return reply.json()

    def execute(self, sql: str, params: list | tuple = ()) -> list[list]:
        return self._send({"sql": sql, "params": list(params)})["rows"]

    def batch(self, statements: list[tuple[str, list]]) -> None:
        self._send({"batch": [{"sql": s, "params": p} for s, p in statements]})

    def close(self) -> None:
        self.client.close()


def _per_s(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


ROUNDS = 4
"""The timed phases alternate between the two sides in this many rounds (which side goes
first alternates too), so both see the same background load on a shared machine."""


def _rounds(count: int, rounds: int) -> list[range]:
    rounds = max(1, min(rounds, count))
    edges = [count * r // rounds for r in range(rounds + 1)]
    return [range(edges[r], edges[r + 1]) for r in range(rounds)]


def _interleaved(count: int, sides: dict[str, Callable[[range], None]]) -> dict[str, float]:
    """Run ``sides[name](part)`` over ``range(count)`` in alternating rounds; seconds per side."""
    seconds = dict.fromkeys(sides, 0.0)
    names = list(sides)
    for r, part in enumerate(_rounds(count, ROUNDS)):
        for name in names if r % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            sides[name](part)
            seconds[name] += time.perf_counter() - t0
    return seconds


def _fill_native(native: NativeSql, sizes: DoBenchSizes) -> None:
    native.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
    for start in range(1, sizes.rows + 1, sizes.fill_batch):
        stop = min(start + sizes.fill_batch, sizes.rows + 1)
        native.batch([("INSERT INTO t(id, v, n) VALUES (?, ?, ?)", [i, ROW, i * 7 % 1000])
                      for i in range(start, stop)])
    native.execute(INSERT, (ROW, -1))


def _fill_dolite(conn, sizes: DoBenchSizes) -> None:
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t(id, v, n) VALUES (?, ?, ?)",
                     ((i, ROW, i * 7 % 1000) for i in range(1, sizes.rows + 1)))
    conn.execute("COMMIT")
    conn.execute(INSERT, (ROW, -1)).fetchall()  # one commit untimed: the write lease is held


def _measure(handle: WorkerdHandle, prefix: str, sizes: DoBenchSizes, ids_cold: list[int],
             ids_hot: list[int], progress: Callable[[str], None]) -> tuple[dict, dict]:
    url = f"{handle.storage_url}&prefix={prefix}"
    name = "bench"
    native = NativeSql(handle, f"{prefix}{name}")
    try:
        _fill_native(native, sizes)
        ns, counter = _counted_namespace(url)
        try:
            conn = dolite.connect(name, storage=ns, exclusive=True, isolation_level=None)
            _fill_dolite(conn, sizes)
            progress(f"filled {sizes.rows:,} rows on each side")

            # -- commits: one single-row INSERT each, alternating sides in rounds --------
            def dolite_commits(part: range) -> None:
                for i in part:
                    conn.execute(INSERT, (ROW, i))

            def native_commits(part: range) -> None:
                for i in part:
                    native.execute(INSERT, (ROW, i))

            before_d, ops_before = counter.snapshot(), dict(counter.by_op)
            before_n = native.counter.snapshot()
            seconds = _interleaved(sizes.commits, {"dolite": dolite_commits, "native": native_commits})
            requests, sent, received = counter.since(before_d)
            n_requests, n_sent, n_received = native.counter.since(before_n)
            by_op = {op: n - ops_before.get(op, 0) for op, n in counter.by_op.items()
                     if n > ops_before.get(op, 0)}
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            db_bytes = conn.execute("PRAGMA page_count").fetchone()[0] * page_size
            conn.close()
        finally:
            ns.close()
        d = {
            "commits_per_s": _per_s(sizes.commits, seconds["dolite"]),
            "round_trips_per_commit": requests / sizes.commits,
            "bytes_sent_per_commit": sent / sizes.commits,
            "bytes_received_per_commit": received / sizes.commits,
            # besides one commit call each: the page store's occasional reads and old-version GC
            "commit_phase_requests_by_op": by_op,
            "database_bytes": db_bytes,
        }
        n = {
            "commits_per_s": _per_s(sizes.commits, seconds["native"]),
            "round_trips_per_commit": n_requests / sizes.commits,
            "bytes_sent_per_commit": n_sent / sizes.commits,
            "bytes_received_per_commit": n_received / sizes.commits,
        }
        progress(f"commits/s: dolite {d['commits_per_s']:,.0f} ({d['round_trips_per_commit']:.2f} "
                 f"round trips each), native {n['commits_per_s']:,.0f}")

        # -- dolite cold reads: a fresh namespace object gets a fresh VFS, an empty cache --
        ns, counter = _counted_namespace(url)
        try:
            before = counter.snapshot()
            conn = dolite.connect(name, storage=ns, exclusive=True, isolation_level=None, create=False)
            conn.execute("SELECT 1").fetchall()
            d["open_round_trips"] = counter.since(before)[0]
            before = counter.snapshot()
            t0 = time.perf_counter()
            conn.execute(SELECT, (ids_cold[0],)).fetchone()
            d["first_read_ms"] = (time.perf_counter() - t0) * 1000
            for i in ids_cold[1:]:
                conn.execute(SELECT, (i,)).fetchone()
            cold_seconds = time.perf_counter() - t0
            cold_requests, _, cold_received = counter.since(before)
            d["cold_reads_per_s"] = _per_s(len(ids_cold), cold_seconds)
            d["round_trips_per_cold_read"] = cold_requests / len(ids_cold)
            d["bytes_received_per_cold_read"] = cold_received / len(ids_cold)

            # -- hot reads (every page cached) alternating with native reads --------------
            conn.execute("SELECT count(*), sum(length(v)) FROM t").fetchone()  # load every page

            def dolite_reads(part: range) -> None:
                for j in part:
                    conn.execute(SELECT, (ids_hot[j],)).fetchone()

            def native_reads(part: range) -> None:
                for j in part:
                    if not native.execute(SELECT, (ids_hot[j],)):
                        raise RuntimeError(f"native point read of id {ids_hot[j]} found nothing")

            before_d, before_n = counter.snapshot(), native.counter.snapshot()
            seconds = _interleaved(len(ids_hot), {"dolite": dolite_reads, "native": native_reads})
            hot_requests = counter.since(before_d)[0]
            n_requests, _, n_received = native.counter.since(before_n)
            conn.close()
        finally:
            ns.close()
    finally:
        native.close()
    d["hot_reads_per_s"] = _per_s(len(ids_hot), seconds["dolite"])
    d["round_trips_per_hot_read"] = hot_requests / len(ids_hot)
    n["reads_per_s"] = _per_s(len(ids_hot), seconds["native"])
    n["round_trips_per_read"] = n_requests / len(ids_hot)
    n["bytes_received_per_read"] = n_received / len(ids_hot)
    progress(f"point reads/s: dolite cold {d['cold_reads_per_s']:,.0f}, hot {d['hot_reads_per_s']:,.0f}; "
             f"native {n['reads_per_s']:,.0f}")
    return d, n


def _workerd_version() -> str:
    try:
        package = json.loads((npm_dir() / "node_modules" / "workerd" / "package.json").read_text())
        return str(package.get("version", "?"))
    except (OSError, ValueError):
        return "?"


def run_do_bench(
    quick: bool = False,
    *,
    sizes: DoBenchSizes | None = None,
    progress: Callable[[str], None] | None = None,
    seed: int = 4,
) -> dict:
    """Start a local workerd, run the workload through dolite and natively, return the figures.

    ``sizes`` overrides the ``quick``/full sizes (the tests use tiny ones). ``progress``
    receives one line per finished phase.
    """
    sizes = sizes or (QUICK if quick else FULL)
    say = progress or (lambda message: None)
    rng = random.Random(seed)
    ids_cold = [rng.randrange(1, sizes.rows + 1) for _ in range(sizes.reads)]
    ids_hot = [rng.randrange(1, sizes.rows + 1) for _ in range(sizes.reads)]
    data = tempfile.mkdtemp(prefix="dolite-do-bench-")
    started = time.perf_counter()
    try:
        with start_workerd(port=0, data_dir=data, secret=uuid.uuid4().hex, config="bench") as handle:
            say(f"workerd on {handle.url}")
            prefix = f"do-bench-{uuid.uuid4().hex[:8]}/"
            dolite_figures, native_figures = _measure(handle, prefix, sizes, ids_cold, ids_hot, say)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    d, n = dolite_figures, native_figures
    return {
        "benchmark": "durable_object",
        "quick": quick,
        "sizes": asdict(sizes),
        "environment": {
            "runtime": f"local workerd {_workerd_version()} on loopback (127.0.0.1)",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "dolite": d,
        "native": n,
        "ratios": {  # dolite / native: above 1 means dolite is faster
            "commits_per_s": d["commits_per_s"] / n["commits_per_s"],
            "cold_reads_per_s": d["cold_reads_per_s"] / n["reads_per_s"],
            "hot_reads_per_s": d["hot_reads_per_s"] / n["reads_per_s"],
        },
        "notes": [
            (f"commits and hot reads alternate between the sides in {ROUNDS} rounds; the cold pass "
             "runs alone (its cache warms as it goes)"),
            ("cold reads: the first pass over an empty page cache; each miss fetches the chunk "
             "and the following ones (prefetch), so the cache warms during the pass"),
            ("native round trips are 1 per commit and per read by construction: one HTTP request "
             "carries one statement; they are counted anyway"),
            ("dolite reads run SQLite in the client: hot reads come from its page cache "
             "(an exclusive connection needs no round trip); the native DO answers every read "
             "with a request"),
            ("dolite commits run SQLite in the client and ship changed chunks plus a head "
             "compare-and-set; the native DO ships only the statement"),
        ],
        "seconds": time.perf_counter() - started,
    }


def print_report(result: dict, console=None) -> None:
    """Render ``result`` (from :func:`run_do_bench`) as a rich table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    d, n, r, s = result["dolite"], result["native"], result["ratios"], result["sizes"]
    table = Table(title=f"dolite page store vs native SQLite Durable Object "
                        f"({result['environment']['runtime']}, {result['environment']['cpus']} CPUs)")
    table.add_column("metric")
    table.add_column("dolite (do+http)", justify="right")
    table.add_column("native (ctx.storage.sql)", justify="right")
    table.add_column("dolite / native", justify="right")
    table.add_row("commits/s (1-row INSERT)", f"{d['commits_per_s']:,.0f}", f"{n['commits_per_s']:,.0f}",
                  f"{r['commits_per_s']:.2f}x")
    table.add_row("round trips per commit", f"{d['round_trips_per_commit']:.2f}",
                  f"{n['round_trips_per_commit']:.2f} (by construction)", "")
    table.add_row("bytes sent per commit", f"{d['bytes_sent_per_commit']:,.0f}",
                  f"{n['bytes_sent_per_commit']:,.0f}", "")
    table.add_row("point reads/s, cold cache", f"{d['cold_reads_per_s']:,.0f}", f"{n['reads_per_s']:,.0f}",
                  f"{r['cold_reads_per_s']:.2f}x")
    table.add_row("point reads/s, hot cache", f"{d['hot_reads_per_s']:,.0f}", f"{n['reads_per_s']:,.0f}",
                  f"{r['hot_reads_per_s']:.2f}x")
    table.add_row("round trips per read (cold / hot)",
                  f"{d['round_trips_per_cold_read']:.3f} / {d['round_trips_per_hot_read']:.3f}",
                  f"{n['round_trips_per_read']:.2f}", "")
    console.print(table)
    ops = ", ".join(f"{op} {count}" for op, count in sorted(d["commit_phase_requests_by_op"].items()))
    console.print(f"{s['rows']:,} rows, {s['commits']:,} commits, {s['reads']:,} reads per phase; "
                  f"dolite database {d['database_bytes'] / 1e6:.1f} MB; opening it cold took "
                  f"{d['open_round_trips']} round trips, its first point read {d['first_read_ms']:.1f} ms; "
                  f"dolite requests in the commit phase: {ops}; {result['seconds']:.1f} s in all")
    for note in result["notes"]:
        console.print(f"- {note}")
