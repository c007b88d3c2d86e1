"""How far a backup target's newest backup of each database is behind the database
(for ``/status`` and ``/v1/health``, when the service is told its backup target with
``DOLITE_BACKUP_TARGET``; see docs/SERVICE.md)."""

from __future__ import annotations

import time

from dolite import backup
from dolite.backup import BackupTarget, redact
from dolite.errors import DatabaseNotFound
from dolite.ops.restore import retained_versions
from dolite.pages import open_store
from dolite.storage import Namespace

LAG_LIMIT = 300.0  # seconds a committed version may wait for its backup before the banner says so


def backup_lag(namespace: Namespace, name: str, target: BackupTarget, now: float | None = None) -> dict:
    """``versions_behind`` (head version minus the newest backed-up one) and
    ``seconds_behind`` (how long the oldest version not backed up has waited: 0 if none);
    ``lagging`` once that is over :data:`LAG_LIMIT`. Raises BackupError if the target
    cannot be read."""
    head = open_store(namespace, name).read_head()
    backed = backup.list_versions(name, from_=target)
    newest = backed[-1].version if backed else 0
    behind = max(0, head.version - newest)
    seconds = 0.0
    if behind:
        seconds = round(max(0.0, (time.time() if now is None else now) - waiting_since(namespace, name, newest)), 3)
    return {"target": redact(target.url), "backed_up_version": newest if backed else None,
            "versions_behind": behind, "seconds_behind": seconds, "lagging": seconds > LAG_LIMIT}


def waiting_since(namespace: Namespace, name: str, backed_up: int) -> float:
    """Commit time of the oldest version of ``name`` newer than ``backed_up`` (0: none
    backed up yet); a version no longer retained counts as older than every retained one."""
    committed = dict(retained_versions(namespace, name))
    if not committed:
        return open_store(namespace, name).read_head().time
    return committed.get(backed_up + 1, min(committed.values()))


def lagging(namespace: Namespace, names: list[str], target: BackupTarget) -> list[str]:
    """The databases among ``names`` whose backup lags (see :func:`backup_lag`); names
    that are not (or no longer) databases are skipped."""
    out = []
    for name in names:
        try:
            if backup_lag(namespace, name, target)["lagging"]:
                out.append(name)
        except DatabaseNotFound:
            continue
    return out
