"""Prune a backup: drop the versions older than a window, and the chunks only they use.

Kept: every version committed inside the window, plus the newest one before it (the
state at the window's start, so ``--at`` any time inside the window still restores; and
the newest backup is kept even when the database has not changed for longer than the
window), plus every manifest on those versions' delta chains back to a full manifest.
Deleted: every other manifest, then every chunk no kept manifest names.

Crash safety: manifests are deleted newest first, so a delta is always gone before the
manifest it is built on; an interrupted prune leaves only manifests whose chains are
complete, and orphan chunks that the next prune deletes. The newest manifest (where a
push resumes) is never deleted.

Safe beside a push of the same database: prune holds the database's backup lock in the
target (lock.py), which every push also takes, so a push can never name a chunk that this
prune deletes. A prune that finds the lock held raises BackupLocked and deletes nothing;
one that lost its lease (it stalled past its expiry and a push took over) raises
BackupLockLost before its next delete batch of at most ``DELETE_BATCH`` keys.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

from dolite.backup.errors import BackupNotFound
from dolite.backup.lock import Lease, locked
from dolite.backup.manifest import chunk_key, listing, load
from dolite.backup.target import BackupTarget

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DELETE_BATCH = 1000  # keys deleted between two checks of the lock (one S3 DeleteObjects)


@dataclass(frozen=True)
class PruneResult:
    name: str
    target: str
    kept: int  # manifests kept (the versions in the window and their chains)
    oldest_kept: int  # the oldest restorable version after the prune
    manifests_deleted: int
    chunks_deleted: int

    def as_dict(self) -> dict:
        return asdict(self)


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` -> seconds. ValueError otherwise."""
    found = _DURATION.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m, 45s or 2w")
    return float(found[1]) * _UNITS[found[2]]


def prune_target(target: BackupTarget, db: str, keep_seconds: float, now: float | None = None) -> PruneResult:
    """Delete ``db``'s manifests older than ``keep_seconds`` and the chunks no kept
    manifest names (see the module doc). Raises BackupNotFound if there is no backup."""
    if keep_seconds < 0:
        raise ValueError("the window to keep cannot be negative")
    if not listing(target, db):  # before locking: a database with no backup gets no lock object
        raise BackupNotFound(f"no backup of {db!r} at {target.url}")
    with locked(target, db, "prune") as lease:
        return _prune(target, db, keep_seconds, time.time() if now is None else now, lease)


def _prune(target: BackupTarget, db: str, keep_seconds: float, now: float, lease: Lease) -> PruneResult:
    known = listing(target, db)  # again, under the lock: no push adds to it meanwhile
    cutoff = now - keep_seconds
    before = [v for v, (t, _) in known.items() if t < cutoff]
    wanted = {v for v, (t, _) in known.items() if t >= cutoff} | set(before[-1:])
    kept = _with_chains(target, db, wanted, known)
    doomed = sorted(set(known) - set(kept), reverse=True)  # dependents before their bases
    _delete(target, [known[v][1] for v in doomed], lease)
    named = {h for manifest in kept.values() for h in manifest.chunks.values()}
    stored = target.list(chunk_key(db, ""))
    orphans = [key for key in stored if key.rpartition("/")[2] not in named]
    _delete(target, orphans, lease)
    return PruneResult(db, target.url, len(kept), min(wanted), len(doomed), len(orphans))


def _delete(target: BackupTarget, keys: list[str], lease: Lease) -> None:
    """Delete ``keys`` in order, in batches, each only while the lock is still held."""
    for start in range(0, len(keys), DELETE_BATCH):
        lease.check()
        target.delete(keys[start:start + DELETE_BATCH])


def _with_chains(target: BackupTarget, db: str, wanted: set[int], known: dict) -> dict:
    """version -> Manifest of every wanted version and every manifest its chain reads."""
    kept: dict = {}
    for version in sorted(wanted, reverse=True):
        at = version
        while at is not None and at not in kept:
            if at not in known:
                raise BackupNotFound(f"{db}: v{version} needs v{at}, which is missing: prune refused "
                                     "(run verify)")
            kept[at] = load(target, db, known[at][1])
            at = kept[at].base
    return kept


def databases(target: BackupTarget) -> list[str]:
    """The databases that have at least one manifest in ``target``."""
    return sorted({key.split("/")[0] for key in target.list("") if key.split("/")[1:2] == ["manifests"]})


__all__ = ["PruneResult", "databases", "parse_duration", "prune_target"]
