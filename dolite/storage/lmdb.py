"""``lmdb:PATH`` — the embedded default: a durable LMDB environment in a directory.

Objects share one environment. Each object name gets a fixed 8-byte id (sub-database
``objects``); its keys live in sub-database ``data`` as ``id + utf8(key)``. LMDB's
compile-time key limit (511 bytes) therefore caps keys at 503 bytes here. A commit is one
LMDB write transaction, so it is atomic and, with ``sync`` on, durable once it returns.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Mapping

import lmdb

from dolite.errors import Conflict, StorageError
from dolite.storage.base import Limits, check_commit, check_entries, check_keys, key_range

LMDB_LIMITS = Limits(max_key_bytes=511 - 8)
_ID = struct.Struct(">Q")
_NEXT_ID = b"\x00next-id"


class LmdbStorage:
    """One object's keys inside the shared LMDB environment."""

    def __init__(self, namespace: LmdbNamespace, name: str):
        self._ns = namespace
        self._name = name
        self._prefix: bytes | None = namespace._lookup_id(name)
        self.limits = namespace.limits

    def _key_prefix(self, txn: lmdb.Transaction | None = None) -> bytes | None:
        if self._prefix is None:
            self._prefix = self._ns._lookup_id(self._name, txn)
        return self._prefix

    def get(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = check_keys(keys, self.limits, "get")
        with self._ns._env.begin(db=self._ns._data, buffers=False) as txn:
            prefix = self._key_prefix(txn)
            if prefix is None:
                return {}
            out = {}
            for key in keys:
                value = txn.get(prefix + key.encode())
                if value is not None:
                    out[key] = value
            return out

    def put(self, entries: Mapping[str, bytes]) -> None:
        self.commit(entries)

    def delete(self, keys: Iterable[str]) -> int:
        keys = check_keys(keys, self.limits, "delete")
        with self._ns._write() as txn:
            prefix = self._key_prefix(txn)
            if prefix is None:
                return 0
            return sum(1 for k in keys if txn.delete(prefix + k.encode(), db=self._ns._data))

    def list(self, *, start=None, end=None, prefix=None, limit=None, reverse=False) -> dict[str, bytes]:
        lo, hi = key_range(start, end, prefix)
        out: dict[str, bytes] = {}
        if (hi is not None and hi <= lo) or limit == 0:
            return out
        with self._ns._env.begin(db=self._ns._data) as txn:
            id_prefix = self._key_prefix(txn)
            if id_prefix is None:
                return out
            lo_b = id_prefix + lo.encode()
            hi_b = id_prefix + hi.encode() if hi is not None else _ID.pack(_ID.unpack(id_prefix)[0] + 1)
            cursor = txn.cursor()
            if reverse:
                positioned = cursor.prev() if cursor.set_range(hi_b) else cursor.last()
                if not positioned:
                    return out
                items = cursor.iterprev(keys=True, values=True)
                within = lambda k: k >= lo_b  # noqa: E731
            else:
                if not cursor.set_range(lo_b):
                    return out
                items = cursor.iternext(keys=True, values=True)
                within = lambda k: k < hi_b  # noqa: E731
            for key, value in items:
                if not within(key) or not key.startswith(id_prefix):
                    break
                out[key[8:].decode()] = value
                if limit is not None and len(out) >= limit:
                    break
            return out

    def commit(self, writes: Mapping[str, bytes], deletes: Iterable[str] = (), expect=None) -> None:
        if not isinstance(writes, Mapping):
            raise TypeError("writes must be a mapping of key to bytes")
        deletes, expect = check_commit(writes, deletes, expect, self.limits)
        if not deletes and not expect:
            check_entries(writes, self.limits, "put")
        data = self._ns._data
        with self._ns._write() as txn:
            prefix = self._key_prefix(txn)
            if prefix is None:
                if any(v is not None for v in expect.values()):
                    raise Conflict(f"commit refused: object {self._name!r} is empty")
                if not writes:
                    return
                # The id is cached only once this transaction has committed.
                prefix = self._ns._allocate_id(self._name, txn)
            for key, value in expect.items():
                if txn.get(prefix + key.encode(), db=data) != value:
                    raise Conflict(f"commit refused: {key!r} changed")
            for key in deletes:
                txn.delete(prefix + key.encode(), db=data)
            for key, value in writes.items():
                txn.put(prefix + key.encode(), bytes(value), db=data)


class LmdbNamespace:
    """An LMDB environment directory holding any number of objects."""

    def __init__(self, path: str, *, url: str | None = None, sync: bool = True, map_size: int = 1 << 40):
        self.path = os.path.abspath(path)
        self.url = url or f"lmdb:{path}"
        self.limits = LMDB_LIMITS
        try:
            os.makedirs(self.path, exist_ok=True)
            self._env = lmdb.open(
                self.path, map_size=map_size, max_dbs=4, sync=sync, metasync=sync,
                readahead=False, max_readers=1024,
            )
        except (OSError, lmdb.Error) as exc:
            raise StorageError(f"lmdb: cannot open {self.path}: {exc}") from exc
        self._objects = self._env.open_db(b"objects")
        self._data = self._env.open_db(b"data")
        self._ids: dict[str, bytes] = {}
        self._ids_lock = threading.Lock()

    def _write(self) -> lmdb.Transaction:
        try:
            return self._env.begin(write=True)
        except lmdb.Error as exc:
            raise StorageError(f"lmdb: {exc}") from exc

    def _lookup_id(self, name: str, txn: lmdb.Transaction | None = None) -> bytes | None:
        if name in self._ids:
            return self._ids[name]
        if txn is None:
            with self._env.begin(db=self._objects) as own:
                found = own.get(name.encode(), db=self._objects)
        else:
            found = txn.get(name.encode(), db=self._objects)
        if found is not None:
            with self._ids_lock:
                self._ids[name] = found
        return found

    def _allocate_id(self, name: str, txn: lmdb.Transaction) -> bytes:
        found = txn.get(name.encode(), db=self._objects)
        if found is None:
            last = txn.get(_NEXT_ID, db=self._objects)
            number = _ID.unpack(last)[0] if last else 1
            found = _ID.pack(number)
            txn.put(_NEXT_ID, _ID.pack(number + 1), db=self._objects)
            txn.put(name.encode(), found, db=self._objects)
        return found  # cached by _lookup_id only after the transaction commits

    def object(self, name: str) -> LmdbStorage:
        return LmdbStorage(self, name)

    def names(self) -> list[str]:
        names = []
        with self._env.begin(db=self._objects) as txn:
            for key, id_prefix in txn.cursor(db=self._objects):
                if key == _NEXT_ID:
                    continue
                cursor = txn.cursor(db=self._data)
                if cursor.set_range(id_prefix) and cursor.key().startswith(id_prefix):
                    names.append(key.decode())
        return sorted(names)

    def drop(self, name: str) -> None:
        with self._write() as txn:
            prefix = txn.get(name.encode(), db=self._objects)
            if prefix is None:
                return
            cursor = txn.cursor(db=self._data)
            if cursor.set_range(prefix):
                while cursor.key().startswith(prefix):
                    if not cursor.delete():
                        break

    def close(self) -> None:
        from dolite.storage import forget_shared

        forget_shared(f"lmdb:{os.path.realpath(self.path)}")
        self._env.close()


def open_url(url: str) -> LmdbNamespace:
    """``lmdb:PATH[?sync=off]``; one environment per directory per process."""
    from dolite.errors import InvalidURL
    from dolite.storage import parse_bool, shared, url_options

    path, options = url_options(url)
    if path.startswith("//"):
        path = path[2:]
    if not path:
        raise InvalidURL(f"{url!r}: lmdb URLs need a directory, e.g. lmdb:./data")
    unknown = set(options) - {"sync"}
    if unknown:
        raise InvalidURL(f"{url!r}: unknown lmdb option(s) {', '.join(sorted(unknown))}")
    sync = parse_bool(options.get("sync", "on"), "sync")
    real = os.path.realpath(path)
    return shared(f"lmdb:{real}", lambda: LmdbNamespace(path, url=url, sync=sync))
