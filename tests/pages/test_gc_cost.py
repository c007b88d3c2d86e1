"""What a GC pass costs: nothing while no record can have aged out (even with a reader's
pin, which every committing connection holds), and a bounded read of the log when records
have aged (``gc.MAX_ROWS_PER_PASS`` rows), passes following one another while GC is behind."""

from __future__ import annotations

import time

from dolite.pages import gc
from dolite.pages.format import CHUNK_PREFIX, LOG_PREFIX
from dolite.pages.store import GC_EVERY, PageStore
from dolite.storage import open_storage

CHUNK = 4096


class _Counting:
    """Pass-through storage counting ``list`` calls."""

    def __init__(self, inner):
        self.inner, self.lists = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def list(self, *args, **kwargs):
        self.lists += 1
        return self.inner.list(*args, **kwargs)


def _commit(store, head, n, value=b"x"):
    for i in range(n):
        head = store.commit(head, {0: value * CHUNK}, CHUNK)
    return head


def test_a_pass_with_nothing_aged_out_is_skipped_next_time_even_under_a_pin(monkeypatch):
    counting = _Counting(open_storage("memory:gc-cost-pin").object("db"))
    store = PageStore(counting, "db")
    head = _commit(store, store.create(retention=600.0), 10)
    store.pin(head)  # a reader (or the committing connection itself) holds a version
    head = _commit(store, head, GC_EVERY)  # the first pass reads the log: nothing aged
    lists = counting.lists
    head = _commit(store, head, 3 * GC_EVERY)  # three more passes fall due
    assert counting.lists == lists  # known without I/O: nothing can age before its time
    assert store.stats["gc_passes"] >= 4


def test_gc_behind_catches_up_in_bounded_passes(monkeypatch):
    monkeypatch.setattr(gc, "MAX_ROWS_PER_PASS", 2)
    storage = open_storage("memory:gc-cost-behind").object("db")
    store = PageStore(storage, "db")
    head = store.create(retention=0.0)
    for i in range(300):  # folded records: a batch row every 32 commits
        head = store.commit(head, {i % 3: bytes([i % 256]) * CHUNK}, 3 * CHUNK)
    assert store.stats["gc_passes"] > 1  # one fell due (256 commits); being behind ran more
    store.collect_garbage(now=time.time() + 1)
    assert len(storage.list(prefix=CHUNK_PREFIX)) == 3  # only each chunk's current version is left
    assert len(storage.list(prefix=LOG_PREFIX)) <= 1
