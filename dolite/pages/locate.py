"""Finding the stored version of a chunk that a head needs, on a cache miss.

A reader of head ``h`` needs, for chunk ``c``, the newest version ``<= h.version``: the
last key before ``c/<c>/<h.version + 1>``. Listing the newest key of the chunk first costs
the same call and also shows a head that went back (pages/integrity.py).

Where every call is a network round trip (``Limits.prefetch_chunks``), a miss also lists
the chunks that follow it, when that pays: a miss just past the previous fetch (a scan)
doubles the window up to that limit; any other miss fetches the whole window while
prefetched chunks keep getting read (a small or hot database: a few calls warm it all),
and its own chunk only once most of them go unread (random lookups in a large one).
"""

from __future__ import annotations

import threading

from dolite.pages import integrity
from dolite.pages.format import Head, chunk_key, chunk_prefix, parse_chunk_key
from dolite.storage.base import Storage


class PrefetchWindow:
    """How many chunks a miss fetches, from where the previous misses fell and how many
    prefetched chunks were read since."""

    def __init__(self, most: int):
        self.most = most
        self._last = (-1 << 62, 1)  # (chunk, window) of the last miss
        self._unread: set[int] = set()  # prefetched chunks not read yet
        self._fetched = self._read = 0  # prefetched chunks, and how many were read (decaying)
        self._lock = threading.Lock()

    def next(self, chunk: int) -> int:
        """Chunks to fetch for a miss of ``chunk`` (0 or 1: just that chunk)."""
        if self.most <= 1:
            return 0
        with self._lock:
            last, window = self._last
            if 0 < chunk - last <= window:
                window = min(self.most, window * 2)
            else:
                window = self.most if self._paying() else 1
            self._last = (chunk, window)
        return window

    def fetched(self, chunks: list[int]) -> None:
        """A prefetch brought ``chunks`` (besides the one missed)."""
        with self._lock:
            if len(self._unread) > 8 * self.most:
                self._unread.clear()
            self._unread.update(chunks)
            self._fetched += len(chunks)

    def read(self, chunk: int) -> None:
        """A reader asked for ``chunk`` (cached or not)."""
        if chunk in self._unread:
            with self._lock:
                if chunk in self._unread:
                    self._unread.discard(chunk)
                    self._read += 1

    def _paying(self) -> bool:
        if not self._fetched:
            return True  # nothing learned yet: prefetch
        paying = self._read * 4 >= self._fetched
        self._fetched, self._read = self._fetched // 2, self._read // 2  # recent misses count most
        return paying


def newest_version(storage: Storage, name: str, head: Head, chunk: int) -> tuple[int, bytes] | None:
    """(version, stored value) of ``chunk`` as of ``head``, or None if none is stored."""
    found = storage.list(prefix=chunk_prefix(chunk), reverse=True, limit=1)
    if found and (newest := parse_chunk_key(next(iter(found)))[1]) > head.version:
        integrity.check_not_behind(storage, name, head, newest)  # else a commit landed since
        found = storage.list(start=chunk_prefix(chunk), end=chunk_key(chunk, head.version + 1),
                             reverse=True, limit=1)
    if not found:
        return None
    key, raw = next(iter(found.items()))
    return parse_chunk_key(key)[1], raw


def following_versions(storage: Storage, name: str, head: Head, chunk: int,
                       count: int) -> tuple[dict[int, tuple[int, bytes]], int]:
    """(chunk -> (version, stored value)) as of ``head`` for ``chunk`` and up to ``count - 1``
    chunks after it, in one call; and the chunk below which that map is complete (a chunk
    missing below it has no version as of ``head``)."""
    last = min(chunk + count, head.chunk_count)
    limit = count * 4
    listed = storage.list(start=chunk_prefix(chunk), end=chunk_prefix(last), limit=limit)
    newest: dict[int, tuple[int, bytes]] = {}
    last_seen, newest_version = chunk, 0
    for key, raw in listed.items():
        c, v = parse_chunk_key(key)
        last_seen, newest_version = c, max(newest_version, v)
        if v <= head.version:
            newest[c] = (v, raw)
    integrity.check_not_behind(storage, name, head, newest_version)
    return newest, (last if len(listed) < limit else last_seen)
