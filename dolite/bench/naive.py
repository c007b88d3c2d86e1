"""The seed's naive baseline: the whole database re-encoded as base64 on every commit.

The database lives in an in-memory stdlib sqlite3 connection; after every statement that
leaves a transaction committed with changes, ``serialize()`` produces the full file,
which is base64-encoded, cut into values at the backend's value limit and written to
the same storage backend dolite uses (in batches of the backend's keys-per-call limit).
Its commit cost grows with the size of the database, which is what dolite avoids.
"""

from __future__ import annotations

import base64
import sqlite3
from itertools import islice

from dolite.storage.base import Namespace


class NaiveConnection:
    """Enough of a DB-API connection for the benchmark workloads."""

    def __init__(self, namespace: Namespace, name: str):
        self.storage = namespace.object(f"naive-{name}")
        self.limits = namespace.limits
        self.conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._changes = 0
        self.bytes_written = 0
        self.commits = 0

    def execute(self, sql: str, params=()):
        cursor = self.conn.execute(sql, params)
        self._maybe_persist()
        return cursor

    def executemany(self, sql: str, rows):
        cursor = self.conn.executemany(sql, rows)
        self._maybe_persist()
        return cursor

    def _maybe_persist(self) -> None:
        if self.conn.in_transaction or self.conn.total_changes == self._changes:
            return
        self._changes = self.conn.total_changes
        self.persist()

    def persist(self) -> None:
        encoded = base64.b64encode(self.conn.serialize())
        step = self.limits.max_value_bytes
        parts = {f"db/{n:08x}": encoded[i:i + step] for n, i in enumerate(range(0, len(encoded), step))}
        parts["meta"] = str(len(parts)).encode()
        items = iter(parts.items())
        while batch := dict(islice(items, self.limits.max_keys_per_call)):
            self.storage.commit(batch)
        self.bytes_written += sum(len(v) for v in parts.values())
        self.commits += 1

    def close(self) -> None:
        self.conn.close()
