"""Prometheus metrics of the object host and the HTTP service (all named ``dolite_*``).

Page-store counters (commits, chunks and bytes written/read, conflicts, cache hits) are
read at scrape time from the live stores plus the totals of stores already evicted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUEST_SECONDS = Histogram("dolite_request_seconds", "HTTP request latency",
                            ["route", "method", "status"], buckets=_BUCKETS, registry=REGISTRY)
COMMIT_SECONDS = Histogram("dolite_commit_seconds", "Latency of durable commits of write transactions",
                           buckets=_BUCKETS, registry=REGISTRY)
OBJECT_LOADS = Counter("dolite_object_loads", "Objects (databases) loaded into the host", registry=REGISTRY)
OBJECT_EVICTIONS = Counter("dolite_object_evictions", "Objects evicted (idle, over capacity, or fenced)",
                           ["reason"], registry=REGISTRY)
OBJECTS_LOADED = Gauge("dolite_objects_loaded", "Objects currently loaded", registry=REGISTRY)
LEASE_REFUSALS = Counter("dolite_lease_refusals", "Requests refused because another process holds "
                         "the object's write lease", registry=REGISTRY)
SESSIONS_OPEN = Gauge("dolite_sessions_open", "Interactive sessions currently open", registry=REGISTRY)

STORE_STATS = ("commits", "chunks_written", "bytes_written", "chunks_read", "bytes_read", "conflicts")
_HELP = {
    "commits": "Commits made by the page store", "chunks_written": "Chunk versions written",
    "bytes_written": "Bytes of chunks written", "chunks_read": "Chunks read from storage",
    "bytes_read": "Bytes of chunks read from storage", "conflicts": "Commits refused by the compare-and-set",
    "cache_hits": "Page cache hits", "cache_misses": "Page cache misses",
}


class StoreTotals:
    """Sums page-store stats over live stores and the ones already retired."""

    def __init__(self):
        self._lock = threading.Lock()
        self._retired = dict.fromkeys((*STORE_STATS, "cache_hits", "cache_misses"), 0)
        self.live: Callable[[], list] = list

    @staticmethod
    def _of(store) -> dict[str, int]:
        out = {k: store.stats.get(k, 0) for k in STORE_STATS}
        out["cache_hits"], out["cache_misses"] = store.cache.hits, store.cache.misses
        return out

    def retire(self, store, drop: Callable[[], None]) -> None:
        """Add ``store``'s counts to the retired totals and ``drop()`` it, atomically."""
        with self._lock:
            for key, value in self._of(store).items():
                self._retired[key] += value
            drop()

    def totals(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._retired)
            for store in self.live():
                for key, value in self._of(store).items():
                    out[key] += value
            return out

    def collect(self):
        for key, value in self.totals().items():
            family = CounterMetricFamily(f"dolite_{key}", _HELP[key])
            family.add_metric([], value)
            yield family

    def describe(self):
        return []


STORE_TOTALS = StoreTotals()
REGISTRY.register(STORE_TOTALS)
