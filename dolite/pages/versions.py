"""The version map: which version of each chunk is the newest as of one head, so a read
goes straight to its chunk key (or the cache) without listing versions (pages/locate.py).

An index: a chunk missing from it is found by listing, and it is cleared when it grows
past ``MAX_ENTRIES``. Its entries hold as of one head (``Head.identity``, ``at``); a read
of an older head of the same incarnation may still use an entry that is not newer than
that head (the chunk has not changed since). Thread-safe.

A listing checks what it finds against :func:`carried` (the versions the head's own
records say the newest commits wrote): a version storage lost is then an error, never
the older version the listing would find. (The listing still runs for those chunks: it
is also what catches an older head put back, pages/integrity.py.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from dolite.pages import inline
from dolite.pages.format import Head, from_ranges

MAX_ENTRIES = 1 << 18  # chunks remembered (~25 MB at most)


def newest_written(commits: Iterable[tuple[int, int, int, list[int]]], chunk_size: int) -> dict[int, int]:
    """chunk -> the newest version that wrote it, from ``(version, size, old size, chunks
    written)`` of consecutive commits, oldest first (a commit stores each chunk it writes
    as a key of that version: what these name must exist, unless a later one replaced it)."""
    newest: dict[int, int] = {}
    for version, size, old_size, chunks in commits:
        newest.update(dict.fromkeys(chunks, version))
        if size < old_size:  # a truncation cut the chunks past the new end
            last = -(-size // chunk_size)
            newest = {c: v for c, v in newest.items() if c < last}
    return newest


def carried(head: Head) -> dict[int, int]:
    """chunk -> newest version as of ``head``, for each chunk written by a commit whose
    record the head carries (``Head.recent``, pages/log.py), and the chunk it holds inline
    (pages/inline.py)."""
    newest = newest_written(((version, size, old_size, from_ranges(ranges))
                             for version, _time, size, old_size, ranges, *_ in head.recent), head.chunk_size)
    return {**newest, **inline.newest(head)}


class Carried:
    """:func:`carried` of the last head asked about (computed once per head)."""

    def __init__(self) -> None:
        self._last: tuple[tuple[int, int], dict[int, int]] = ((-1, -1), {})

    def of(self, head: Head) -> dict[int, int]:
        identity, newest = self._last
        if identity != head.identity:
            newest = carried(head)
            self._last = (head.identity, newest)  # one assignment: safe across threads
        return newest


class VersionMap:
    """chunk -> newest version as of the head ``at``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._newest: dict[int, int] = {}
        self._in_place: set[int] = set()  # chunks whose newest version we wrote in place
        self.at: tuple[int, int] = (-1, -1)  # the Head.identity the entries hold for

    def version_for(self, head: Head, chunk: int) -> int | None:
        """The version of ``chunk`` to read as of ``head``, if known without I/O."""
        with self._lock:
            version = self._newest.get(chunk)
            if version is not None and head.identity != self.at and (
                    version > head.version or head.id != self.at[0]):
                return None
            return version

    def found(self, head: Head, chunk: int, version: int) -> None:
        """A read as of ``head`` found ``version`` the newest of ``chunk``."""
        with self._lock:
            if head.identity == self.at:
                if len(self._newest) >= MAX_ENTRIES:
                    self._newest.clear()
                self._newest.setdefault(chunk, version)

    def known(self, head: Head, chunk_ids: list[int]) -> dict[int, int]:
        """chunk -> newest version as of ``head``, for those of ``chunk_ids`` known."""
        with self._lock:
            if self.at != head.identity:
                return {}
            return {c: self._newest[c] for c in chunk_ids if c in self._newest}

    def superseded(self, head: Head, chunk_ids: list[int]) -> dict[int, int]:
        """chunk -> the version a commit on ``head`` writing ``chunk_ids`` supersedes, for
        those known without I/O, so GC deletes just that key (-1: none, past the end of file
        or written in place by us: pages/in_place.py). (Versions of chunks a truncation cut
        are found by listing.)"""
        known = {c: -1 for c in chunk_ids if c >= head.chunk_count}
        with self._lock:
            if self.at == head.identity:
                known.update((c, -1 if c in self._in_place else self._newest[c])
                             for c in chunk_ids if c in self._newest)
        return known

    def replace(self, head: Head, newest: dict[int, int]) -> None:
        """Start over as of ``head`` with ``newest`` (e.g. a map saved by the disk cache)."""
        with self._lock:
            self._newest, self._in_place, self.at = newest, set(), head.identity

    def committed(self, base: Head, new: Head, chunk_ids: list[int], in_place: Iterable[int] = ()) -> None:
        """``new`` was committed on ``base``, writing ``chunk_ids`` (``in_place``: those
        written in place)."""
        with self._lock:
            if self.at != base.identity:
                self._newest, self._in_place = {}, set()
            self._newest.update(dict.fromkeys(chunk_ids, new.version))
            self._in_place.difference_update(chunk_ids)
            self._in_place.update(in_place)
            if new.size < base.size:
                last = new.chunk_count
                self._newest = {c: v for c, v in self._newest.items() if c < last}
                self._in_place = {c for c in self._in_place if c < last}
            self.at = new.identity

    def snapshot(self) -> tuple[tuple[int, int], dict[int, int]]:
        """(head identity, a copy of the entries), e.g. to save for the next process."""
        with self._lock:
            return self.at, dict(self._newest)
