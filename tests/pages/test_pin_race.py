"""A reader's head is pinned before a GC pass can act on it: version 0 is pinned while the
head is read (``PageStore.pinned``), so a pass whose snapshot falls between the read and
the pin deletes nothing the head needs. With no retention window nothing else protects it."""

from __future__ import annotations

import time

from dolite.pages.file import PagedFile
from dolite.pages.store import PageStore
from dolite.storage import open_storage

# Superseded versions are dropped at once, as with retention 0, which would instead write
# in place (pages/in_place.py): these tests are about the version keys GC deletes.
NO_WINDOW = 1e-9

CHUNK = 4096


def test_a_gc_pass_between_reading_the_head_and_pinning_it_keeps_what_it_needs(monkeypatch):
    store = PageStore(open_storage("memory:pin-race").object("db"), "db")
    first = store.commit(store.create(retention=NO_WINDOW), {0: b"a" * CHUNK}, CHUNK)
    read_head = store.current_head
    deleted = []

    def head_then_a_commit_and_gc():
        head = read_head()  # the reader has its head, not yet its pin ...
        store.commit(head, {0: b"b" * CHUNK}, CHUNK)  # ... another commit supersedes chunk 0
        deleted.append(store.collect_garbage(now=time.time() + 3600))  # ... and GC runs
        return head

    monkeypatch.setattr(store, "current_head", head_then_a_commit_and_gc)
    reader = PagedFile(store)
    reader.begin()
    assert reader.head.version == first.version and deleted == [0]
    store.cache.clear()
    assert reader.read(CHUNK, 0) == b"a" * CHUNK
    reader.end()
    assert store.collect_garbage(now=time.time() + 3600) > 0  # unpinned: now it goes
