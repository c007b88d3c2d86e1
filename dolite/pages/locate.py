"""Finding the stored version of a chunk that a head needs, on a cache miss.

A reader of head ``h`` needs, for chunk ``c``, the newest version ``<= h.version``: the
last key before ``c/<c>/<h.version + 1>``. Listing the newest key of the chunk first costs
the same call and also shows a head that went back (pages/integrity.py).

A chunk may also have an in-place key (``c/<c>/~``, pages/format.py): one version, named
by its header, which a later version written in place overwrites, and which only a
single-call commit (the chunk with its head, atomically) ever writes. Version keys are
never overwritten. So if the in-place key holds a version not newer than the head, it is
the newest version written in place up to the head (any older one written in place was
overwritten by it), and the answer is the newer of it and the newest version key not
newer than the head. If it holds a version past the head, a version the head needs may
have been overwritten: the snapshot has expired (SnapshotExpired), never an older answer.

Where every call is a network round trip (``Limits.prefetch_chunks``), a miss also lists
the chunks that follow it, when that pays: a miss just past the previous fetch (a scan)
doubles the window up to that limit; any other miss fetches the whole window while
prefetched chunks keep getting read (a small or hot database: a few calls warm it all),
and its own chunk only once most of them go unread (random lookups in a large one).
"""

from __future__ import annotations

import threading

from dolite.pages import integrity
from dolite.pages.format import (IN_PLACE, Head, chunk_key, chunk_prefix, chunk_versions, in_place_key, listed_version,
                                 stored_version)
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


def stored_at(storage: Storage, name: str, head: Head, chunk: int, version: int) -> bytes:
    """The stored value of ``chunk`` at ``version``, known to be its newest as of ``head``:
    under its version key or its in-place key (asked for in the same call where a database
    can have in-place keys: retention 0)."""
    key, in_place = chunk_key(chunk, version), in_place_key(chunk)
    found = storage.get([key, in_place] if head.writes_in_place else [key])
    if key not in found and not head.writes_in_place:
        found = storage.get([in_place])
    if key in found:
        return found[key]
    if in_place in found and stored_version(found[in_place], chunk, name) == version:
        return found[in_place]
    raise integrity.missing_chunk(storage, name, head, chunk, version)


def newest_version(storage: Storage, name: str, head: Head, chunk: int) -> tuple[int, bytes] | None:
    """(version, stored value) of ``chunk`` as of ``head``, or None if none is stored.

    The newest version key not newer than the head, or the in-place key where it holds a
    newer version not newer than the head. An in-place key holding a version past the head
    was overwritten since (what the head needs may have been in it): SnapshotExpired. The
    in-place key sorts last, so the first listing shows it and the newest version key; it
    asks for both where a database can have in-place keys (retention 0)."""
    limit = 2 if head.writes_in_place else 1
    listed = storage.list(prefix=chunk_prefix(chunk), reverse=True, limit=limit)
    in_place, versions = _by_kind(listed, name)
    newest = max(v for v, _ in in_place + versions) if listed else 0
    if newest > head.version:
        integrity.check_not_behind(storage, name, head, newest)  # else a commit landed since
    if in_place and in_place[0][0] > head.version:
        raise integrity.overwritten(storage, name, head, chunk, in_place[0][0])
    below = [found for found in versions if found[0] <= head.version]
    if not below and len(listed) == limit:  # version keys not newer than the head may follow
        listed = storage.list(start=chunk_prefix(chunk), end=chunk_key(chunk, head.version + 1),
                              reverse=True, limit=1)
        below = _by_kind(listed, name)[1]
    return max(in_place + below[:1], key=lambda found: found[0], default=None)


def _by_kind(listed: dict[str, bytes], name: str) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
    """The listed values of one chunk as (in-place, version keys): (version, value) each,
    newest first."""
    in_place, versions = [], []
    for _chunk, version, key, raw in chunk_versions(listed, name):
        (in_place if key.endswith(IN_PLACE) else versions).append((version, raw))
    versions.sort(key=lambda found: -found[0])
    return in_place, versions


def following_versions(storage: Storage, name: str, head: Head, chunk: int,
                       count: int) -> tuple[dict[int, tuple[int, bytes]], int]:
    """(chunk -> (version, stored value)) as of ``head`` for ``chunk`` and up to ``count - 1``
    chunks after it, in one call; and the chunk below which that map is complete (a chunk
    missing below it has no version as of ``head``, or one only :func:`newest_version`
    can tell about: an in-place key overwritten since, or damaged)."""
    last = min(chunk + count, head.chunk_count)
    limit = count * 4
    listed = storage.list(start=chunk_prefix(chunk), end=chunk_prefix(last), limit=limit)
    newest: dict[int, tuple[int, bytes]] = {}
    last_seen, newest_version = chunk, 0
    unusable: set[int] = set()  # in-place key past the head, or unreadable
    for key, raw in listed.items():
        c, v = listed_version(key, raw, name)
        last_seen = c
        if v is None or (key.endswith(IN_PLACE) and v > head.version):
            unusable.add(c)
            if v is None:
                continue
        newest_version = max(newest_version, v)
        if v <= head.version and v > newest.get(c, (-1,))[0]:
            newest[c] = (v, raw)
    integrity.check_not_behind(storage, name, head, newest_version)
    for c in unusable:
        newest.pop(c, None)
    return newest, (last if len(listed) < limit else last_seen)
