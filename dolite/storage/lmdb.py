"""``lmdb:PATH`` — an embedded store in one durable LMDB environment (a directory); the
default is ``sqlite:`` (dolite/storage/sqlite_wal.py: one sync per commit, not two).

Objects share one environment. Each object name gets a fixed 8-byte id (sub-database
``objects``); its keys live in sub-database ``data`` as ``id + utf8(key)``. LMDB's
compile-time key limit (511 bytes) therefore caps keys at 503 bytes here.

Group commit (the queue in dolite/storage/lmdb_group.py): every write (``commit``, ``put``,
``delete``) is a request to the namespace.
The first writer to find no group in progress leads: it takes the requests queued so far
(at most ``MAX_GROUP`` requests, ``MAX_GROUP_BYTES`` of values), applies each in its own
nested transaction inside one LMDB write transaction (a refused ``expect`` or an error
aborts only that request's nested transaction; later requests see earlier ones: serial
order), commits it with sync once, then wakes the writers of the group with their result.
Writers arriving meanwhile queue for the next group; the first of them is promoted to lead
it. A lone writer goes straight through in a plain write transaction. So each commit is
still atomic and, with ``sync`` on, durable once it returns, but concurrent commits (many
objects served by one process) share LMDB's two syncs. Processes sharing a directory are
serialized by LMDB's own write lock, as before.

A full store (the file system out of space, or the LMDB map at its ``map_size``) raises
:class:`StorageFull` and changes nothing: reads keep working. Deletes need a few free pages
for their copy-on-write: they usually find them among the pages earlier commits freed. For
a full file system, the directory keeps a 1 MiB ballast file (``reserve.dolite``) that a
``drop`` gives up if it needs the room; a map filled to its last page needs a larger
``map_size`` first (see docs/OPERATIONS.md).
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Mapping

import lmdb

from dolite.errors import Conflict, StorageError
from dolite.storage.lmdb_group import GroupCommit, Request
from dolite.storage.lmdb_space import Ballast, full_error, parse_size
from dolite.storage.base import (
    Limits,
    check_commit,
    check_entries,
    check_keys,
    key_range,
)

LMDB_LIMITS = Limits(max_key_bytes=511 - 8)
_ID = struct.Struct(">Q")
_NEXT_ID = b"\x00next-id"
DEFAULT_MAP_SIZE = 1 << 40


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
        return self._ns._submit(Request(self, {}, keys, {}))

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
                within = lambda k: k >= lo_b
            else:
                if not cursor.set_range(lo_b):
                    return out
                items = cursor.iternext(keys=True, values=True)
                within = lambda k: k < hi_b
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
        self._ns._submit(Request(self, writes, deletes, expect))


class LmdbNamespace(GroupCommit):
    """An LMDB environment directory holding any number of objects."""

    def __init__(self, path: str, *, url: str | None = None, sync: bool = True,
                 map_size: int = DEFAULT_MAP_SIZE):
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
        # Free reader slots left by processes that were killed inside a read transaction.
        self._env.reader_check()
        self._ballast = Ballast(self.path)
        self._ballast.ensure()
        self._objects = self._env.open_db(b"objects")
        self._data = self._env.open_db(b"data")
        self._ids: dict[str, bytes] = {}
        self._ids_lock = threading.Lock()
        GroupCommit.__init__(self)

    def _run_group(self, group: list[Request]) -> None:
        """Apply ``group`` in one write transaction committed once. Sets every request's
        ``result`` or ``error``; one request's failure never fails the others."""
        try:
            txn = self._env.begin(write=True)
        except lmdb.Error as exc:
            for request in group:
                request.error = self._translate(exc)
            return
        allocated: dict[str, bytes] = {}  # ids of new objects, cached once committed
        applied: list[Request] = []
        try:
            if len(group) == 1:  # a lone writer: no nested transaction needed
                try:
                    self._apply(group[0], txn, allocated)
                    applied.append(group[0])
                except Exception as exc:  # noqa: BLE001 (the request's own error)
                    group[0].error = self._translate(exc)
            else:
                for request in group:
                    mine: dict[str, bytes] = {}
                    child = self._env.begin(write=True, parent=txn)
                    try:
                        self._apply(request, child, mine)
                    except Exception as exc:  # noqa: BLE001 (the request's own error)
                        child.abort()
                        request.error = self._translate(exc)
                        continue
                    child.commit()
                    allocated.update(mine)
                    applied.append(request)
            if not applied:
                txn.abort()
                return
            txn.commit()
        except BaseException as exc:
            txn.abort()
            for request in group:
                if request.error is None:
                    request.result = None
                    request.error = self._translate(exc) if isinstance(exc, Exception) else \
                        StorageError("lmdb: group commit interrupted")
            if not isinstance(exc, Exception):
                raise
            return
        if allocated:
            with self._ids_lock:
                self._ids.update(allocated)

    def _apply(self, request: Request, txn: lmdb.Transaction, allocated: dict[str, bytes]) -> None:
        """Check ``request``'s expectations and apply it in ``txn`` (raises ``Conflict``)."""
        storage, writes, expect = request.storage, request.writes, request.expect
        data = self._data
        name = storage._name
        prefix = self._ids.get(name)
        if prefix is None:
            prefix = txn.get(name.encode(), db=self._objects)
        if prefix is None:
            if any(v is not None for v in expect.values()):
                raise Conflict(f"commit refused: object {name!r} is empty")
            if not writes:
                request.result = 0
                return
            prefix = self._allocate_id(name, txn)
            allocated[name] = prefix
        for key, value in expect.items():
            if txn.get(prefix + key.encode(), db=data) != value:
                raise Conflict(f"commit refused: {key!r} changed")
        deleted = 0
        for key in request.deletes:
            deleted += txn.delete(prefix + key.encode(), db=data)
        for key, value in writes.items():
            txn.put(prefix + key.encode(), bytes(value), db=data)
        request.result = deleted

    # -- objects --------------------------------------------------------------------

    def _write(self) -> lmdb.Transaction:
        try:
            return self._env.begin(write=True)
        except lmdb.Error as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> Exception:
        """A backend error as dolite's: StorageFull when the store is out of room."""
        if not isinstance(exc, lmdb.Error):
            return exc
        return full_error(exc, self.path, self._env.info()["map_size"]) or StorageError(f"lmdb: {exc}")

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
        """Delete every key of ``name``. On a full file system the delete may itself need
        room (LMDB copies pages on write): the ballast file is given up for it."""
        self._ballast.retry_with_room(lambda: self._drop(name))

    def _drop(self, name: str) -> None:
        try:
            with self._write() as txn:
                prefix = txn.get(name.encode(), db=self._objects)
                if prefix is None:
                    return
                cursor = txn.cursor(db=self._data)
                if cursor.set_range(prefix):
                    while cursor.key().startswith(prefix):
                        if not cursor.delete():
                            break
        except lmdb.Error as exc:
            raise self._translate(exc) from exc

    def close(self) -> None:
        from dolite.storage import forget_shared

        forget_shared(f"lmdb:{os.path.realpath(self.path)}")
        self._env.close()


def open_url(url: str) -> LmdbNamespace:
    """``lmdb:PATH[?sync=off][&map_size=64m]``; one environment per directory per process.
    ``map_size`` (bytes, or with a k/m/g/t suffix) caps the store's size (default 1 TiB)."""
    from dolite.errors import InvalidURL
    from dolite.storage import parse_bool, shared, url_options

    path, options = url_options(url)
    path = path.removeprefix("//")
    if not path:
        raise InvalidURL(f"{url!r}: lmdb URLs need a directory, e.g. lmdb:./data")
    unknown = set(options) - {"sync", "map_size"}
    if unknown:
        raise InvalidURL(f"{url!r}: unknown lmdb option(s) {', '.join(sorted(unknown))}")
    sync = parse_bool(options.get("sync", "on"), "sync")
    map_size = parse_size(options.get("map_size", str(DEFAULT_MAP_SIZE)), "map_size")
    real = os.path.realpath(path)
    return shared(f"lmdb:{real}", lambda: LmdbNamespace(path, url=url, sync=sync, map_size=map_size),
                  {"sync": sync, "map_size": map_size})
