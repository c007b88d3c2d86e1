"""Backup errors: one family under :class:`dolite.Error`, each also under the class of the
one error tree that says what the caller can do (retry, or the backup is damaged).

They set no ``code`` of their own (codes live only in :mod:`dolite.errors`): each inherits
the code and HTTP status of the tree class it sits under.
"""

from __future__ import annotations

from dolite.errors import Conflict, CorruptChunk, DatabaseNotFound, Error, LeaseHeld, OperationalError, StorageError


class BackupError(Error):
    """Base class of every backup error."""


class TargetUnavailable(BackupError, StorageError):
    """The backup target failed or could not be reached (retry later)."""


class BackupNotFound(BackupError, DatabaseNotFound):
    """The target holds no backup of that database, or not of that version or time."""


class CorruptBackup(BackupError, CorruptChunk):
    """A chunk or manifest in the target is missing or fails its hash: nothing was restored."""


class RestoreRefused(BackupError, OperationalError):
    """The restore cannot start: its destination already exists, or the arguments conflict."""


class BackupLocked(BackupError, LeaseHeld):
    """Another push or prune of the database holds its backup lock: nothing was done (retry
    when it has finished, or once its lease expires)."""


class BackupLockLost(BackupError, Conflict):
    """This push or prune held the database's backup lock too long without renewing it and
    another one took it over: it stopped before writing or deleting more (retry)."""
