"""``memory:`` — an in-process backend for tests and throwaway databases."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from sortedcontainers import SortedDict

from dolite.errors import Conflict, InvalidURL
from dolite.storage.base import (
    DURABLE_OBJECT_LIMITS,
    Limits,
    check_commit,
    check_entries,
    check_keys,
    key_range,
)


class MemoryStorage:
    """One object's keys in a sorted dict; a namespace-wide lock makes calls atomic."""

    def __init__(self, data: SortedDict, lock: threading.Lock, limits: Limits):
        self._data = data
        self._lock = lock
        self.limits = limits

    def get(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = check_keys(keys, self.limits, "get")
        with self._lock:
            return {k: self._data[k] for k in keys if k in self._data}

    def put(self, entries: Mapping[str, bytes]) -> None:
        check_entries(entries, self.limits, "put")
        with self._lock:
            for key, value in entries.items():
                self._data[key] = bytes(value)

    def delete(self, keys: Iterable[str]) -> int:
        keys = check_keys(keys, self.limits, "delete")
        with self._lock:
            return sum(1 for k in keys if self._data.pop(k, None) is not None)

    def list(self, *, start=None, end=None, prefix=None, limit=None, reverse=False) -> dict[str, bytes]:
        lo, hi = key_range(start, end, prefix)
        if hi is not None and hi <= lo:
            return {}
        with self._lock:
            keys = self._data.irange(lo, hi, inclusive=(True, False), reverse=reverse)
            out = {}
            for key in keys:
                if limit is not None and len(out) >= limit:
                    break
                out[key] = self._data[key]
            return out

    def commit(self, writes: Mapping[str, bytes], deletes: Iterable[str] = (), expect=None) -> None:
        deletes, expect = check_commit(writes, deletes, expect, self.limits)
        with self._lock:
            for key, value in expect.items():
                if self._data.get(key) != value:
                    raise Conflict(f"commit refused: {key!r} changed")
            for key in deletes:
                self._data.pop(key, None)
            for key, value in writes.items():
                self._data[key] = bytes(value)


class MemoryNamespace:
    """Objects kept in this process's memory; gone when the process exits."""

    def __init__(self, url: str = "memory:", limits: Limits = DURABLE_OBJECT_LIMITS):
        self.url = url
        self.limits = limits
        self._lock = threading.Lock()
        self._objects: dict[str, SortedDict] = {}

    def object(self, name: str) -> MemoryStorage:
        with self._lock:
            data = self._objects.setdefault(name, SortedDict())
        return MemoryStorage(data, self._lock, self.limits)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(name for name, data in self._objects.items() if data)

    def drop(self, name: str) -> None:
        with self._lock:
            if name in self._objects:
                self._objects[name].clear()

    def close(self) -> None:
        pass


def open_url(url: str) -> MemoryNamespace:
    """``memory:`` is private to the caller; ``memory:NAME`` is shared in this process."""
    from dolite.storage import shared, url_options

    name, options = url_options(url)
    if options:
        raise InvalidURL(f"{url!r}: memory: takes no options (got {', '.join(sorted(options))})")
    if not name:
        return MemoryNamespace(url)
    return shared(url, lambda: MemoryNamespace(url))
