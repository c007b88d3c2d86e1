"""The replica's journal: pending local transactions and the sync state, stored durably.

One object ``<name>.replica`` in the local storage, beside the local copy of the database:

- ``pending/<seq>`` (and ``pending/<seq>#<part>`` when a changeset is larger than a value):
  one local transaction not yet pushed, as a changeset. A transaction's parts are written
  in one atomic call, before the local commit, so a transaction acknowledged locally is
  always in the journal (a kill -9 between the two leaves a pending transaction the local
  copy does not show yet: it is pushed at the next sync, like a commit whose reply was
  lost).
- ``state``: which remote version the local copy equals, at which local version, and this
  replica's id (its pushes are recorded in the remote database under that id, so a push
  whose reply was lost is never applied twice).
"""

from __future__ import annotations

import json
import struct
import threading
import time
import uuid
from dataclasses import dataclass

from dolite.errors import Conflict, LimitExceeded
from dolite.storage.base import Storage

PENDING = "pending/"
STATE = "state"
_HEADER = struct.Struct(">I")


@dataclass(frozen=True)
class Pending:
    """A local transaction waiting to be pushed: ``seq`` (increasing), ``time`` it was
    committed locally, the ``tables`` it changed and its ``changeset``."""

    seq: int
    time: float
    tables: tuple[str, ...]
    changeset: bytes


class Journal:
    """The pending transactions and sync state of one replica (thread-safe)."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.limits = storage.limits
        self._lock = threading.Lock()

    # -- sync state -----------------------------------------------------------------------

    def state(self) -> dict:
        """``replica`` (id), ``remote_id`` and ``remote_version`` (the remote head the local
        copy last equalled), ``local_version`` (the local head it equalled it at)."""
        raw = self.storage.get([STATE]).get(STATE)
        if raw is None:
            fresh = {"replica": uuid.uuid4().hex, "remote_id": None, "remote_version": -1,
                     "local_version": -1, "synced": None}
            try:
                self.storage.commit({STATE: json.dumps(fresh).encode()}, expect={STATE: None})
            except Conflict:
                pass  # another process made it first
            raw = self.storage.get([STATE])[STATE]
        return json.loads(raw)

    def set_state(self, **fields) -> None:
        state = {**self.state(), **fields}
        self.storage.commit({STATE: json.dumps(state).encode()})

    # -- pending transactions -------------------------------------------------------------

    def add(self, changeset: bytes, tables: list[str]) -> int:
        """Store one transaction durably; returns its sequence number."""
        header = json.dumps({"time": time.time(), "tables": tables}).encode()
        body = _HEADER.pack(len(header)) + header + changeset
        step = self.limits.max_value_bytes
        parts = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
        if len(parts) > self.limits.max_keys_per_call:
            raise LimitExceeded(f"a replica transaction's changeset of {len(changeset)} bytes is "
                                f"over the {step * self.limits.max_keys_per_call} bytes one "
                                "atomic write can hold; split the transaction")
        with self._lock:
            while True:
                seq = self._last_seq() + 1
                keys = [_key(seq, n) for n in range(len(parts))]
                try:
                    self.storage.commit(dict(zip(keys, parts)), expect={keys[0]: None})
                    return seq
                except Conflict:
                    continue  # another process took that number

    def remove(self, seq: int) -> None:
        """Drop a pushed (or discarded) transaction. Sequence numbers are never reused:
        the remote remembers the last one applied (see dolite/replica/sync.py)."""
        keys = list(self.storage.list(start=_key(seq, 0), end=_key(seq + 1, 0)))
        state = self.state()
        state["last_seq"] = max(state.get("last_seq", 0), seq)
        self.storage.commit({STATE: json.dumps(state).encode()}, deletes=keys)

    def pending(self) -> list[Pending]:
        """Every pending transaction, oldest first."""
        parts: dict[int, list[bytes]] = {}
        for key, value in self.storage.list(prefix=PENDING).items():
            parts.setdefault(int(key[len(PENDING):].partition("#")[0]), []).append(value)
        out = []
        for seq, chunks in sorted(parts.items()):
            body = b"".join(chunks)
            (size,) = _HEADER.unpack_from(body)
            header = json.loads(body[_HEADER.size:_HEADER.size + size])
            out.append(Pending(seq, header["time"], tuple(header["tables"]),
                               body[_HEADER.size + size:]))
        return out

    def _last_seq(self) -> int:
        last = self.storage.list(prefix=PENDING, reverse=True, limit=1)
        if not last:
            return self.state().get("last_seq", 0)
        return int(next(iter(last))[len(PENDING):].partition("#")[0])


def _key(seq: int, part: int) -> str:
    # Zero-padded so key order is number order; parts sort after their first key.
    return f"{PENDING}{seq:016d}" + (f"#{part:04d}" if part else "")
