"""The write lease: at most one live writer per database, fenced by an epoch.

The lease is a key in the database's own object. Every write a holder makes carries the
lease's exact bytes in its compare (``expect``), so once another writer has taken the lease
over, a stale holder's writes are refused by the storage itself, wherever it runs.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, replace

from dolite.errors import Conflict, CorruptChunk, LeaseHeld
from dolite.pages.format import LEASE, seal, unseal
from dolite.pages.integrity import resettable
from dolite.storage.base import Storage

HOST = socket.gethostname()


@dataclass(frozen=True)
class Lease:
    epoch: int
    owner: str  # host:pid:token
    expires: float

    def encode(self) -> bytes:
        return seal(LEASE, json.dumps(asdict(self), separators=(",", ":")).encode())

    @classmethod
    def decode(cls, raw: bytes, where: str = "database") -> Lease:
        payload = unseal(LEASE, raw, where)
        try:
            return cls(**json.loads(payload))
        except (ValueError, TypeError) as exc:
            raise CorruptChunk(f"{where}: lease record is unreadable: {exc}") from exc

    def holder_is_gone(self, now: float) -> bool:
        """True when the lease ran out or its holder was a process on this host that died
        (a zombie, dead but not yet reaped by its parent, counts as dead)."""
        if self.expires <= now:
            return True
        host, _, rest = self.owner.partition(":")
        pid = rest.partition(":")[0]
        return host == HOST and pid.isdigit() and not process_alive(int(pid))


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host is running (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass  # no /proc here: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LeaseKeeper:
    """Acquires, renews and releases one process's lease on one database."""

    def __init__(self, storage: Storage, name: str, ttl: float):
        self.storage = storage
        self.name = name
        self.ttl = ttl
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: Lease | None = None
        self.raw: bytes | None = None
        self._pending: Lease | None = None
        self._tried = False  # an acquire reached storage: the lease may be ours unheard

    @property
    def held(self) -> Lease | None:
        return self._held

    @held.setter
    def held(self, lease: Lease | None) -> None:
        self._held = lease
        # valid() without margin arithmetic, for hot paths: compare with time.time().
        self.valid_until = lease.expires - 1.0 if lease is not None else 0.0

    def valid(self, margin: float = 1.0) -> bool:
        """Whether we hold the lease with at least ``margin`` seconds left on our clock."""
        return self._held is not None and self._held.expires - margin > time.time()

    def acquire(self) -> bool:
        """Take the lease if it is free or stale. Return True if it was newly taken
        (the caller then cleans up a previous holder's debris). Raise LeaseHeld if a live
        writer holds it."""
        now = time.time()
        current_raw, current = self._stored()
        if current_raw is not None and current_raw == self.raw and current.expires - 1.0 > now:
            return False
        self._refuse_live_holder(current, now)
        new = Lease(epoch=(current.epoch + 1) if current else 1, owner=self.owner, expires=now + self.ttl)
        self._tried = True
        try:
            self.storage.commit({LEASE: new.encode()}, expect={LEASE: current_raw})
        except Conflict as exc:
            raise LeaseHeld(f"database {self.name!r}: another writer took the lease first") from exc
        self.held, self.raw = new, new.encode()
        return True

    def refuse_if_held(self) -> None:
        """Raise LeaseHeld if a live writer (anyone but us) holds the lease."""
        self._refuse_live_holder(self._stored()[1], time.time())

    def _stored(self) -> tuple[bytes | None, Lease | None]:
        raw = self.storage.get([LEASE]).get(LEASE)
        try:
            return raw, Lease.decode(raw, self.name) if raw else None
        except CorruptChunk as exc:
            raise resettable(exc, self.name) from exc

    def _refuse_live_holder(self, current: Lease | None, now: float) -> None:
        if current is not None and current.owner != self.owner and not current.holder_is_gone(now):
            raise LeaseHeld(f"database {self.name!r} is being written by {current.owner} "
                            f"(lease expires in {current.expires - now:.1f}s)")

    def renewal(self) -> dict[str, bytes]:
        """Writes to add to a commit so the lease is extended when half its time is used.
        Call :meth:`renewed` after that commit succeeds (a failed commit's renewal is
        forgotten by the next call)."""
        assert self.held is not None
        self._pending = None
        if self.held.expires - time.time() > self.ttl / 2:
            return {}
        self._pending = replace(self.held, expires=time.time() + self.ttl)
        return {LEASE: self._pending.encode()}

    def renewed(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self.held, self.raw = pending, pending.encode()

    def renew(self) -> None:
        """Extend the lease now if half its time is used (a write of its own; commits
        carry the renewal instead). Raise Conflict, forgetting the lease, if it was lost."""
        writes = self.renewal()
        if not writes:
            return
        try:
            self.storage.commit(writes, expect={LEASE: self.raw})
        except Conflict:
            self.forget()
            raise
        self.renewed()

    def new_term(self) -> None:
        """Rewrite our lease with the next epoch, so that every request we sent under the
        old bytes (one may still be in flight, to be delivered late) is refused by the
        storage. Called before cleaning up after a commit whose outcome we never heard."""
        assert self.held is not None and self.raw is not None
        new = replace(self.held, epoch=self.held.epoch + 1, expires=time.time() + self.ttl)
        try:
            self.storage.commit({LEASE: new.encode()}, expect={LEASE: self.raw})
        except Conflict as exc:
            self.forget()
            raise LeaseHeld(f"database {self.name!r}: another writer took the lease over") from exc
        self.held, self.raw = new, new.encode()

    def forget(self) -> None:
        """Drop our idea of holding the lease (after a fencing conflict)."""
        self.held = self.raw = None

    def release(self) -> None:
        """Give the lease up so another writer need not wait for it to expire. That
        includes a lease we took without hearing so (the reply of the commit that took
        it, or of a later fenced commit, was lost): storage says its owner is us."""
        raw = self.raw
        if raw is None:
            if not self._tried:
                return
            raw = self.storage.get([LEASE]).get(LEASE)
            if raw is None or Lease.decode(raw).owner != self.owner:
                return
        released = replace(Lease.decode(raw), expires=0.0)
        try:
            self.storage.commit({LEASE: released.encode()}, expect={LEASE: raw})
        except Conflict:
            pass
        self.forget()
        self._tried = False
