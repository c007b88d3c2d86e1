"""A byte-bounded LRU of immutable chunk contents, keyed by (incarnation, chunk, version),
over an optional persistent level on local disk (:mod:`dolite.pages.disk_cache`)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from dolite.pages.disk_cache import CacheSpec, DiskChunkCache
from dolite.pages.format import Head, from_ranges

Key = tuple[int, int, int]  # (Head.id, chunk, version)


class ChunkCache:
    """Chunk versions never change once committed, so entries never go stale: a key names
    the content. Only the newest-known version map decides which key a reader wants.

    ``disk``: a :class:`DiskChunkCache`, or a Storage object's ``chunk_cache`` description
    of one, or None. Reads consult memory, then disk (a disk hit is kept in memory too);
    puts write through to disk."""

    def __init__(self, max_bytes: int, disk: DiskChunkCache | CacheSpec | None = None):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0  # in memory
        self.misses = 0  # in memory and on disk
        self.disk = disk if disk is None or isinstance(disk, DiskChunkCache) else DiskChunkCache.open(disk)
        self._entries: OrderedDict[Key, bytes] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def disk_hits(self) -> int:
        return self.disk.hits if self.disk is not None else 0

    def get(self, key: Key) -> bytes | None:
        with self._lock:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return data
        data = self.disk.get(key) if self.disk is not None else None
        if data is None:
            self.misses += 1
        else:
            self._remember(key, data)
        return data

    def put(self, key: Key, data: bytes) -> None:
        self._remember(key, data)
        if self.disk is not None:
            self.disk.put(key, data)

    def _remember(self, key: Key, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= len(old)
            self._entries[key] = data
            self.bytes += len(data)
            while self.bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= len(evicted)

    def clear(self) -> None:
        """Forget the entries in memory. Disk entries stay: their keys carry the
        incarnation, so those of a dropped database are never asked for again."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def versions(self, head: Head) -> dict[int, int]:
        """chunk -> newest version as of ``head``, from the map saved on disk by
        :meth:`save_versions` for that head, or for an older one of the same incarnation
        whose later commits ``head`` carries the records of (pages/log.py): the chunks
        they wrote are left out (found in storage), the others are unchanged. Empty if
        unknown."""
        if self.disk is None:
            return {}
        version, where = self.disk.saved_versions(head.id)
        if version is None or version > head.version:
            return {}
        later = [record for record in head.recent if record[0] > version]
        if len(later) != head.version - version:
            return {}  # the head's records do not reach back that far
        for record in later:
            for chunk in from_ranges(record[4]):
                where.pop(chunk, None)
        return {c: v for c, v in where.items() if c < head.chunk_count}

    def save_versions(self, identity: tuple[int, int], where: dict[int, int]) -> None:
        """Persist the page store's version map (newest version of each chunk as of the
        head ``identity``) for the next process that opens the database at that head."""
        if self.disk is not None:
            self.disk.save_versions(identity, where)
