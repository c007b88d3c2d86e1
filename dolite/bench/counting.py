"""A storage wrapper that counts what crosses the storage boundary.

Wraps any :class:`~dolite.storage.Namespace`; every object it hands out forwards each
call and adds the bytes of keys and values written and read to shared counters. The
benchmarks use it for write amplification and cold-read figures; it changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dolite.pages.format import CHUNK_HEADER_BYTES, CHUNK_PREFIX


@dataclass
class Counters:
    calls: int = 0
    bytes_written: int = 0  # keys + values of writes, keys of deletes
    chunk_payload_written: int = 0  # page bytes inside the chunks written
    chunks_written: int = 0
    bytes_read: int = 0  # keys + values returned by get/list
    chunks_read: int = 0
    by_op: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        fresh = Counters()
        self.__dict__.update(fresh.__dict__)

    def snapshot(self) -> dict:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


def _key_bytes(key: str) -> int:
    return len(key.encode())


class CountingStorage:
    def __init__(self, inner, counters: Counters):
        self._inner = inner
        self._c = counters
        self.limits = inner.limits

    def _op(self, name: str) -> None:
        self._c.calls += 1
        self._c.by_op[name] = self._c.by_op.get(name, 0) + 1

    def _read(self, out: Mapping[str, bytes]) -> None:
        for key, value in out.items():
            self._c.bytes_read += _key_bytes(key) + len(value)
            if key.startswith(CHUNK_PREFIX):
                self._c.chunks_read += 1

    def _wrote(self, writes: Mapping[str, bytes], deletes: Iterable[str]) -> None:
        for key, value in writes.items():
            self._c.bytes_written += _key_bytes(key) + len(value)
            if key.startswith(CHUNK_PREFIX):
                self._c.chunks_written += 1
                self._c.chunk_payload_written += len(value) - CHUNK_HEADER_BYTES
        for key in deletes:
            self._c.bytes_written += _key_bytes(key)

    def get(self, keys):
        self._op("get")
        out = self._inner.get(keys)
        self._read(out)
        return out

    def put(self, entries):
        self._op("put")
        self._inner.put(entries)
        self._wrote(entries, ())

    def delete(self, keys):
        keys = list(keys)
        self._op("delete")
        n = self._inner.delete(keys)
        self._wrote({}, keys)
        return n

    def list(self, **kwargs):
        self._op("list")
        out = self._inner.list(**kwargs)
        self._read(out)
        return out

    def commit(self, writes, deletes=(), expect=None):
        deletes = list(deletes)
        self._op("commit")
        self._inner.commit(writes, deletes, expect)
        self._wrote(writes, deletes)


class CountingNamespace:
    """``CountingNamespace(inner)``: like ``inner``, with :attr:`counters`."""

    def __init__(self, inner):
        self._inner = inner
        self.url = inner.url
        self.limits = inner.limits
        self.counters = Counters()

    def object(self, name: str) -> CountingStorage:
        return CountingStorage(self._inner.object(name), self.counters)

    def names(self) -> list[str]:
        return self._inner.names()

    def drop(self, name: str) -> None:
        self._inner.drop(name)

    def close(self) -> None:
        pass  # the inner namespace is the caller's to close
