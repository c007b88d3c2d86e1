"""The per-database backup lock: a push and a prune (or two pushes) of one database never
overlap in a target.

Why: a push lists the chunks already stored once, then names them in its manifests
without uploading them again, and a prune deletes every chunk no kept manifest names.
Overlapping, a push could name a chunk that prune has just deleted: a manifest that can
never be restored. Restore and verify only read, and take no lock.

The lock is a lease, the object ``<db>/lock.json`` in the target, saying who holds it
(push or prune, host, pid), since when and until when. It is taken with
``put_if_absent``, or, when the object exists and its lease is over (released, expired,
or held by a process of this machine that no longer runs), with ``replace_if`` on the
tag just read: of concurrent takers exactly one wins, and the others see who did. A
holder renews its lease every ``RENEW_AFTER`` seconds while it works (checked before
each upload, free otherwise) and, before each manifest write or delete batch, confirms
it still holds the lock (renewing if due, else reading its tag): one whose lease ran out
and was taken over raises BackupLockLost and writes nothing more. Releasing writes a
released record, conditional on the holder's tag (the object itself stays).

Limits: expiry compares the holder's wall clock with the taker's, so the clocks of hosts
that push or prune one target must agree to well within ``LEASE_SECONDS -
RENEW_AFTER``; and a single write still in flight that long after its check could land
after a takeover.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone

from dolite.backup.errors import BackupLocked, BackupLockLost, CorruptBackup, TargetUnavailable
from dolite.backup.target import BackupTarget
from dolite.errors import NotSupportedError

LEASE_SECONDS = 300.0  # how long a lock outlives a holder that stopped renewing it
RENEW_AFTER = 60.0  # a working holder renews its lease this often
CONDITIONAL = ("put_if_absent", "get_tagged", "replace_if")

log = logging.getLogger(__name__)


def lock_key(db: str) -> str:
    return f"{db}/lock.json"


def _machine() -> str | None:
    """Equal for two processes only if each can see the other's pid (same host name, same
    boot, same pid namespace); None where that cannot be told (then only expiry frees)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return f"{socket.gethostname()}/{boot.read().strip()}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


MACHINE = _machine()


@dataclass(frozen=True)
class Holder:
    """The content of a lock object: one holder's lease (or its release)."""

    purpose: str  # "push" or "prune"
    host: str
    pid: int
    machine: str | None  # see _machine
    token: str  # unique per acquisition: makes every record's bytes (and tag) unique
    since: float  # Unix seconds
    expires: float
    released: bool = False

    @classmethod
    def mine(cls, purpose: str, now: float) -> Holder:
        return cls(purpose, socket.gethostname(), os.getpid(), MACHINE, uuid.uuid4().hex, now, now + LEASE_SECONDS)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes, where: str) -> Holder:
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise CorruptBackup(f"backup lock {where} is damaged ({exc}): if no push or prune of this "
                                "database runs, delete it") from exc

    def free(self, now: float) -> bool:
        """True if the lock may be taken over: released, expired, or its holder is dead."""
        dead = MACHINE is not None and self.machine == MACHINE and not _running(self.pid)
        return self.released or self.expires <= now or dead

    def describe(self) -> str:
        return f"{self.purpose} (pid {self.pid} on {self.host}) since {_iso(self.since)} until {_iso(self.expires)}"


class Lease:
    """This process's hold on one database's backup lock (see the module doc)."""

    def __init__(self, target: BackupTarget, db: str, holder: Holder, tag: str):
        self.target, self.db, self.holder, self.tag = target, db, holder, tag
        self.key = lock_key(db)
        self._renewed = time.monotonic()

    def refresh(self) -> None:
        """Renew the lease if it is due (call often: costs nothing otherwise). Raises
        BackupLockLost if another holder took the lock over."""
        if time.monotonic() - self._renewed >= RENEW_AFTER:
            self._renew()

    def check(self) -> None:
        """Confirm the lock is still held, before a manifest write or a delete batch.
        Raises BackupLockLost if another holder took it over."""
        if time.monotonic() - self._renewed >= RENEW_AFTER:
            self._renew()
            return
        current = self.target.get_tagged(self.key)
        if current is None or current[1] != self.tag:
            raise self._lost()

    def release(self) -> None:
        """Give the lock up. Nothing to do if it was lost; a target that cannot be reached
        is logged, not raised (the lease then expires)."""
        released = replace(self.holder, released=True, expires=time.time())
        try:
            self.target.replace_if(self.key, released.encode(), self.tag)
        except TargetUnavailable as exc:
            log.warning("backup lock of %s at %s not released (it expires at %s): %s", self.db, self.target.url,
                        _iso(self.holder.expires), exc)

    def _renew(self) -> None:
        started = time.monotonic()
        renewed = replace(self.holder, expires=time.time() + LEASE_SECONDS)
        tag = _replace(self.target, self.key, renewed, self.tag)
        if tag is None:
            raise self._lost()
        self.holder, self.tag, self._renewed = renewed, tag, started

    def _lost(self) -> BackupLockLost:
        current = self.target.get_tagged(self.key)
        holder = None if current is None else Holder.decode(current[0], self.key)
        now = "nobody holds it now" if holder is None or holder.released else f"it is held by {holder.describe()}"
        return BackupLockLost(
            f"{self.db}: this {self.holder.purpose} lost its lock on the backups at {self.target.url} (its lease "
            f"ran out, and {now}): it stopped before writing or deleting more, and what it wrote is complete; "
            "run it again")


def acquire(target: BackupTarget, db: str, purpose: str, now: float | None = None) -> Lease:
    """Take ``db``'s backup lock in ``target`` for ``purpose``. Raises BackupLocked naming
    the holder if another push or prune holds it. ``now`` (tests): this process's clock."""
    missing = [name for name in CONDITIONAL if not callable(getattr(target, name, None))]
    if missing:
        raise NotSupportedError(f"backup target {target.url} cannot lock a database (it has no "
                                f"{', '.join(missing)}): push and prune need conditional writes")
    key = lock_key(db)
    for _ in range(3):  # the object vanished, or another taker won a takeover: look again
        clock = time.time() if now is None else now
        mine = Holder.mine(purpose, clock)
        tag = target.put_if_absent(key, mine.encode())
        current = None if tag is not None else target.get_tagged(key)
        if current is not None and current[0] == mine.encode():
            tag = current[1]  # our put landed, and the client's retry of it failed (see _if_ours)
        if tag is not None:
            return Lease(target, db, mine, tag)
        if current is None:
            continue
        holder = Holder.decode(current[0], f"{target.url}/{key}")
        if not holder.free(clock):
            raise BackupLocked(
                f"{db}: the backups at {target.url} are locked by {holder.describe()}: another push or "
                "prune of this database is running; retry when it has finished (a lock left by a crashed "
                f"process expires at that time; delete {key} only if you are sure that process has stopped)")
        tag = _replace(target, key, mine, current[1])
        if tag is not None:
            return Lease(target, db, mine, tag)
    raise BackupLocked(f"{db}: the backup lock at {target.url} keeps changing hands: retry")


@contextlib.contextmanager
def locked(target: BackupTarget, db: str, purpose: str) -> Iterator[Lease]:
    """Hold ``db``'s backup lock for the ``with`` block (see :func:`acquire`)."""
    lease = acquire(target, db, purpose)
    try:
        yield lease
    finally:
        lease.release()


def _replace(target: BackupTarget, key: str, record: Holder, tag: str) -> str | None:
    data = record.encode()
    return target.replace_if(key, data, tag) or _if_ours(target, key, data)


def _if_ours(target: BackupTarget, key: str, data: bytes) -> str | None:
    """The tag of the object under ``key`` if it holds exactly ``data``: a conditional
    write whose reply was lost and that the client retried fails the second time, though
    the first one landed (records are unique, so equal bytes mean that write)."""
    current = target.get_tagged(key)
    return current[1] if current is not None and current[0] == data else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
