"""A small ring buffer of the service's own metrics, sampled every few seconds, so the
console can chart load over time without a Prometheus server (``GET /v1/stats``).

Each sample holds rates and mean latencies over the interval that ended at its time:
service-wide from the Prometheus registry (requests, commits, chunks written), and per
database from the heads of the loaded databases (commits: each commit is one version) and
from the requests that named the database (count and latency, recorded by
:meth:`Sampler.observe_request`, called by the app's request timer). A database's last seen version is remembered across evictions, so
commits made while it was not loaded are counted when it is next seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from dolite.server.objects.metrics import COMMIT_SECONDS, REQUEST_SECONDS, STORE_TOTALS

SAMPLE_EVERY = 2.0   # seconds between samples
KEEP = 450           # samples kept: 15 minutes at the default interval
MAX_TIMED = 256      # databases timed per interval (a bound on memory, whatever names are sent)
_REFUSED = (401, 403, 404, 405)  # requests refused before reaching a database: not timed


def _histogram(metric) -> tuple[float, float]:
    """(count, sum) of a histogram, over all its label sets."""
    count = total = 0.0
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return count, total


def _delta(now: float, before: float) -> float:
    return now - before if now >= before else now  # a drop means the counter restarted


class Sampler:
    """The ring buffer. ``sample()`` is called every ``interval`` seconds by ``run()``;
    ``stores()`` yields (database name, page store) of the loaded databases."""

    def __init__(self, stores: Callable[[], Iterable[tuple[str, object]]], interval: float = SAMPLE_EVERY,
                 keep: int = KEEP):
        self.stores, self.interval = stores, interval
        self.samples: deque[dict] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._timings: dict[str, list[float]] = {}   # name -> [requests, seconds, max seconds]
        self._last: dict | None = None
        self._versions: dict[str, int] = {}          # name -> version at the last sample

    def observe_request(self, scope, status: int, seconds: float) -> None:
        """A request timer's observer: record requests whose route names a database (not
        those refused before reaching it: unknown token, scope, name or route)."""
        name = scope.get("path_params", {}).get("name")
        if isinstance(name, str) and scope["path"].startswith("/v1/databases/") and status not in _REFUSED:
            self.observe(name, seconds)

    def observe(self, database: str, seconds: float) -> None:
        """Record one request that named ``database`` (called for every such request)."""
        with self._lock:
            if database not in self._timings and len(self._timings) >= MAX_TIMED:
                return
            entry = self._timings.setdefault(database, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += seconds
            entry[2] = max(entry[2], seconds)

    def _counters(self) -> dict:
        totals = STORE_TOTALS.totals()
        requests, request_seconds = _histogram(REQUEST_SECONDS)
        commits_timed, commit_seconds = _histogram(COMMIT_SECONDS)
        heads = ((name, store.known_newest()) for name, store in self.stores())
        versions = {name: head.version for name, head in heads if head is not None}
        return {"t": time.time(), "requests": requests, "request_seconds": request_seconds,
                "commits": totals["commits"], "chunks_written": totals["chunks_written"],
                "bytes_written": totals["bytes_written"], "commits_timed": commits_timed,
                "commit_seconds": commit_seconds, "versions": versions}

    def sample(self) -> dict | None:
        """Take one sample (None for the first call: it only sets the baseline)."""
        now = self._counters()
        with self._lock:
            timings, self._timings = self._timings, {}
        last, self._last = self._last, now
        if last is None:
            return None
        span = max(now["t"] - last["t"], 1e-6)
        rate = lambda key: round(_delta(now[key], last[key]) / span, 3)  # noqa: E731
        timed = _delta(now["commits_timed"], last["commits_timed"])
        entry = {"t": round(now["t"], 3), "requests_per_s": rate("requests"),
                 "request_ms": _mean_ms(_delta(now["request_seconds"], last["request_seconds"]),
                                        _delta(now["requests"], last["requests"])),
                 "commits_per_s": rate("commits"), "chunks_written_per_s": rate("chunks_written"),
                 "bytes_written_per_s": rate("bytes_written"),
                 "commit_ms": _mean_ms(_delta(now["commit_seconds"], last["commit_seconds"]), timed),
                 "databases": self._per_database(self._commits(now["versions"]), timings, span)}
        with self._lock:
            self.samples.append(entry)
        return entry

    def _commits(self, versions: dict[str, int]) -> dict[str, int]:
        """Commits per database since the last sample (the first sighting counts none)."""
        out = {name: max(0, v - self._versions[name]) for name, v in versions.items() if name in self._versions}
        self._versions.update(versions)
        return out

    @staticmethod
    def _per_database(commits: dict[str, int], timings: dict, span: float) -> dict:
        out = {}
        for name in set(commits) | set(timings):
            count, seconds, slowest = timings.get(name, (0, 0.0, 0.0))
            if not (commits.get(name) or count):
                continue  # idle: series() fills in zeros
            out[name] = {"commits_per_s": round(commits.get(name, 0) / span, 3),
                         "requests_per_s": round(count / span, 3), "request_ms": _mean_ms(seconds, count),
                         "request_ms_max": round(slowest * 1000, 3)}
        return out

    def series(self, database: str | None = None) -> list[dict]:
        """The samples, oldest first; with ``database``, its own figures in each sample
        (zeros where it had no activity) instead of every database's."""
        with self._lock:
            samples = list(self.samples)
        idle = {"commits_per_s": 0, "requests_per_s": 0, "request_ms": None,
                "request_ms_max": 0}
        if database is None:
            return [{k: v for k, v in s.items() if k != "databases"} for s in samples]
        return [{"t": s["t"], **s["databases"].get(database, idle)} for s in samples]

    async def run(self) -> None:
        """Sample forever (cancel to stop)."""
        while True:
            with contextlib.suppress(Exception):  # a failed sample is a gap in the chart, nothing more
                await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval)


def _mean_ms(seconds: float, count: float) -> float | None:
    return round(seconds / count * 1000, 3) if count else None

