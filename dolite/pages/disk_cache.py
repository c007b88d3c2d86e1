"""A persistent second level under :class:`~dolite.pages.cache.ChunkCache`: chunk versions
of remote databases kept in a local LMDB environment (``do+http://...?cache=lmdb:DIR``),
so that another process opening the same database reads them locally.

Never stale, never wrong bytes:

* A key names its content for ever: the scope (the storage namespace's identity, i.e. its
  URL without options, and the object's name), the database incarnation, the chunk and its
  version. Content of a committed (incarnation, chunk, version) never changes: commits only
  add new versions (restores included), a failed commit's debris is removed before that
  version number is used again and is never cached (the page store caches after the head
  moved, and reads only versions at or below a committed head), and a dropped and
  re-created database has a new incarnation.
* Every value carries a CRC-32 over its key and bytes. One that fails it (a torn write
  after a crash: the environment is written without fsync, it is only a cache) is a miss,
  and is deleted.

Besides chunks, each object has a *version index*: the chunk -> newest version map as of
one committed head (incarnation, version), saved when the page store closes. A process
that opens the database at that same head knows which entry each chunk needs without
listing storage (listing returns the values, so it would fetch the chunks anyway). Only
chunks whose entries are present are saved in it.

Bounded: the LMDB map is ``max_bytes``. A write that finds it full empties the whole cache
(indexes included) and the cache refills: an LRU on disk would cost a write per hit. LMDB
keeps a 4 KiB chunk in two 4 KiB pages, so the cache holds about ``max_bytes / 2`` of them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
import zlib
from typing import Protocol

import lmdb

from dolite.errors import StorageError

logger = logging.getLogger("dolite.pages")

_CHUNK = struct.Struct(">QIQ")  # incarnation, chunk, version
_INDEX_HEAD = struct.Struct(">QQ")  # incarnation, head version
_CRC = struct.Struct(">I")


class CacheSpec(Protocol):
    """What a Storage object's ``chunk_cache`` attribute says (the storage layer's
    description of where a local cache may live, see dolite/storage/durable_object.py)."""

    directory: str
    max_bytes: int
    scope: str


class _Environment:
    """One LMDB environment per directory per process (LMDB forbids opening one twice)."""

    def __init__(self, directory: str, max_bytes: int):
        self.directory = directory
        try:
            os.makedirs(directory, exist_ok=True)
            self.env = lmdb.open(directory, map_size=max_bytes, sync=False, metasync=False,
                                 readahead=False, max_spare_txns=8)
        except (OSError, lmdb.Error) as exc:
            raise StorageError(f"the local chunk cache in {directory!r} cannot be opened: {exc} "
                               "(it is only a cache: fix the path or delete the directory)") from exc
        self.clears = 0

    def write(self, key: bytes, value: bytes) -> None:
        """Store one entry; a full map empties the cache first (see the module docstring)."""
        try:
            with self.env.begin(write=True) as txn:
                txn.put(key, value)
        except lmdb.MapFullError:
            self.clear()
            try:
                with self.env.begin(write=True) as txn:
                    txn.put(key, value)
            except lmdb.MapFullError:
                pass  # larger than the whole cache: not kept

    def read(self, key: bytes) -> bytes | None:
        with self.env.begin(buffers=False) as txn:
            return txn.get(key)

    def present(self, keys: list[bytes]) -> list[bool]:
        with self.env.begin() as txn:
            return [txn.get(k) is not None for k in keys]

    def delete(self, key: bytes) -> None:
        with self.env.begin(write=True) as txn:
            txn.delete(key)

    def clear(self) -> None:
        with self.env.begin(write=True) as txn:
            txn.drop(self.env.open_db(), delete=False)
        self.clears += 1
        logger.info("local chunk cache %s was full: emptied", self.directory)


_environments: dict[str, _Environment] = {}
_environments_lock = threading.Lock()


def _environment(directory: str, max_bytes: int) -> _Environment:
    real = os.path.realpath(directory)
    with _environments_lock:
        if real not in _environments:
            _environments[real] = _Environment(real, max_bytes)
        return _environments[real]


def _crc(key: bytes, payload: bytes) -> bytes:
    return _CRC.pack(zlib.crc32(payload, zlib.crc32(key)))


def _sealed(key: bytes, payload: bytes) -> bytes:
    return _crc(key, payload) + payload


class DiskChunkCache:
    """The persistent cache of one object (one database) of one namespace."""

    def __init__(self, directory: str, max_bytes: int, scope: str):
        self._env = _environment(directory, max_bytes)
        self._tag = hashlib.blake2b(scope.encode(), digest_size=16).digest()
        self.hits = self.misses = self.corrupt = 0

    @classmethod
    def open(cls, spec: CacheSpec) -> DiskChunkCache:
        return cls(spec.directory, spec.max_bytes, spec.scope)

    @property
    def clears(self) -> int:
        """How many times the (shared) environment was emptied because it was full."""
        return self._env.clears

    def _chunk_key(self, key: tuple[int, int, int]) -> bytes:
        return b"c" + self._tag + _CHUNK.pack(*key)

    def _unsealed(self, key: bytes) -> bytes | None:
        """The payload stored under ``key`` if present and intact; a damaged one is deleted."""
        try:
            raw = self._env.read(key)
            if raw is None:
                return None
            payload = raw[_CRC.size:]
            if len(raw) >= _CRC.size and _crc(key, payload) == raw[:_CRC.size]:
                return payload
            self.corrupt += 1
            self._env.delete(key)
        except lmdb.Error as exc:
            logger.warning("local chunk cache %s: read failed, taken as a miss: %s", self._env.directory, exc)
        return None

    def get(self, key: tuple[int, int, int]) -> bytes | None:
        """The data of (incarnation, chunk, version), or None (absent or damaged)."""
        data = self._unsealed(self._chunk_key(key))
        if data is None:
            self.misses += 1
        else:
            self.hits += 1
        return data

    def put(self, key: tuple[int, int, int], data: bytes) -> None:
        k = self._chunk_key(key)
        try:
            self._env.write(k, _sealed(k, bytes(data)))
        except lmdb.Error as exc:  # a cache write failing must not fail the read or commit
            logger.warning("local chunk cache %s: write failed: %s", self._env.directory, exc)

    # -- the version index -------------------------------------------------------------

    def versions(self, identity: tuple[int, int]) -> dict[int, int]:
        """chunk -> newest version as of the head ``identity`` (incarnation, version), as
        saved by :meth:`save_versions` for exactly that head; else empty."""
        version, where = self.saved_versions(identity[0])
        return where if version == identity[1] else {}

    def saved_versions(self, incarnation: int) -> tuple[int | None, dict[int, int]]:
        """(head version, chunk -> newest version as of it) last saved for this
        incarnation of the database; (None, {}) if none."""
        payload = self._unsealed(b"v" + self._tag)
        if payload is None:
            return None, {}
        saved_incarnation, version = _INDEX_HEAD.unpack_from(payload)
        if saved_incarnation != incarnation:
            return None, {}
        flat = zlib.decompress(payload[_INDEX_HEAD.size:])
        numbers = struct.unpack(f">{len(flat) // 8}Q", flat)
        return version, dict(zip(numbers[::2], numbers[1::2]))

    def save_versions(self, identity: tuple[int, int], where: dict[int, int]) -> None:
        """Remember ``where`` (chunk -> newest version as of head ``identity``), keeping
        only chunks whose entries are here: a known version without its bytes would cost a
        lone round trip per chunk instead of a prefetched batch."""
        if identity[1] < 0:
            return  # no head observed
        pairs = sorted(where.items())
        present = self._env.present([self._chunk_key((identity[0], c, v)) for c, v in pairs])
        kept = [n for (c, v), here in zip(pairs, present) if here for n in (c, v)]
        flat = struct.pack(f">{len(kept)}Q", *kept)
        key = b"v" + self._tag
        try:
            self._env.write(key, _sealed(key, _INDEX_HEAD.pack(*identity) + zlib.compress(flat, 1)))
        except lmdb.Error as exc:
            logger.warning("local chunk cache %s: index write failed: %s", self._env.directory, exc)
