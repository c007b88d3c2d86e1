"""Continuous backups of dolite databases to durable storage (see docs/BACKUPS.md).

>>> from dolite import backup
>>> backup.push("lmdb:./data", "shop", to="s3://bucket/dolite?endpoint_url=http://127.0.0.1:9000")
>>> backup.list_versions("shop", from_="file:///mnt/backups")
>>> backup.verify("shop", from_="file:///mnt/backups").ok
>>> backup.restore("shop", from_="file:///mnt/backups", storage="lmdb:./data", into="shop2", at=1767225600)
>>> backup.repair("lmdb:./data", "shop", from_="file:///mnt/backups").repaired

Targets are named by URL (target.py), pushes are incremental and resumable (push.py),
restores verified before the database becomes visible (restore.py). The functions here
share their names with the modules that implement them (``push``, ``restore``,
``verify``): import the modules' contents from the modules, e.g.
``from dolite.backup.push import push_store``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dolite.backup.errors import (BackupError, BackupLocked, BackupLockLost, BackupNotFound, CorruptBackup, RestoreRefused,
                                  TargetUnavailable)
from dolite.backup.manifest import listing
from dolite.backup.prune import PruneResult, databases, parse_duration, prune_target
from dolite.backup.push import Progress, PushResult, push_store
from dolite.backup.repair import RepairResult, repair_store
from dolite.backup.restore import RestoreResult, restore_into
from dolite.backup.target import BackupTarget, open_target, redact
from dolite.backup.verify import VerifyResult, verify_target
from dolite.names import validate_name
from dolite.pages import open_store
from dolite.storage import Namespace, open_storage

__all__ = ["BackupError", "BackupLocked", "BackupLockLost", "BackupNotFound", "BackupTarget", "BackupVersion", "CorruptBackup", "PruneResult", "PushResult",
           "RepairResult", "RestoreRefused", "RestoreResult", "TargetUnavailable", "VerifyResult", "list_versions", "open_target",
           "databases", "parse_duration", "prune", "push", "push_all", "redact", "repair", "restore", "verify"]


@dataclass(frozen=True)
class BackupVersion:
    version: int
    time: float  # commit time, Unix seconds


def _target(url: str | BackupTarget) -> BackupTarget:
    return open_target(url) if isinstance(url, str) else url


def push(storage: str | Namespace, name: str, *, to: str | BackupTarget,
         progress: Progress | None = None) -> PushResult:
    """Copy every committed version of database ``name`` that the target lacks."""
    return push_store(open_store(storage, name), _target(to), progress)


def push_all(storage: str | Namespace, *, to: str | BackupTarget,
             progress: Progress | None = None) -> list[PushResult]:
    """:func:`push` every database in ``storage``."""
    namespace, target = open_storage(storage), _target(to)
    return [push(namespace, name, to=target, progress=progress) for name in namespace.names()]


def list_versions(name: str, *, from_: str | BackupTarget) -> list[BackupVersion]:
    """Every restorable version of ``name`` in the target, oldest first."""
    validate_name(name)
    return [BackupVersion(v, t) for v, (t, _) in listing(_target(from_), name).items()]


def restore(name: str, *, from_: str | BackupTarget, storage: str | Namespace, into: str,
            version: int | None = None, at: float | None = None,
            progress: Progress | None = None) -> RestoreResult:
    """Restore ``name`` from the target as the new database ``into`` (see restore.py)."""
    validate_name(name)
    return restore_into(_target(from_), name, open_storage(storage), into, version=version, at=at,
                        progress=progress)


def verify(name: str, *, from_: str | BackupTarget, progress: Progress | None = None) -> VerifyResult:
    """Re-hash every chunk of every manifest of ``name`` and integrity-check its newest
    version, assembled outside any store (see verify.py). Problems are in the result."""
    validate_name(name)
    return verify_target(_target(from_), name, progress)


def repair(storage: str | Namespace, name: str, *, from_: str | BackupTarget) -> RepairResult:
    """Replace each corrupt chunk version of ``name`` in ``storage`` with the identical,
    verified bytes from the backup; the result names what could not be (see repair.py)."""
    return repair_store(open_store(storage, name), _target(from_))


def prune(name: str | None, *, from_: str | BackupTarget, keep: float | str,
          now: float | None = None) -> list[PruneResult]:
    """Delete the backed-up versions of ``name`` (None: every database in the target)
    older than ``keep`` (seconds, or a duration like "30d") and the chunks only they use;
    every version inside the window stays restorable (see prune.py). Each database is
    locked against its pushes meanwhile: BackupLocked if one is running."""
    target = _target(from_)
    seconds = parse_duration(keep) if isinstance(keep, str) else float(keep)
    names = [validate_name(name)] if name is not None else databases(target)
    return [prune_target(target, db, seconds, now) for db in names]
