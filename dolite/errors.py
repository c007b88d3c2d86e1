"""The error hierarchy every layer of dolite raises.

Callers catch :class:`DoliteError` for anything dolite refuses; the subclasses say why.
"""

from __future__ import annotations


class DoliteError(Exception):
    """Base class of every error dolite raises on purpose."""


class Conflict(DoliteError):
    """A compare-and-set failed: someone else committed or holds the write lease."""


class LeaseHeld(Conflict):
    """Another live writer holds the database's write lease."""


class LimitExceeded(DoliteError, ValueError):
    """A key, value or batch is larger than the storage backend allows."""


class CorruptChunk(DoliteError):
    """A stored chunk failed its checksum or does not belong where it was found."""


class StorageError(DoliteError):
    """The storage backend failed or could not be reached."""


class InvalidURL(DoliteError, ValueError):
    """A storage URL that names no known backend or is malformed."""


class InvalidName(DoliteError, ValueError):
    """A database name that is empty, too long or has forbidden characters."""


class DatabaseNotFound(DoliteError, LookupError):
    """The named database does not exist in the store."""


class SnapshotExpired(DoliteError):
    """A version older than the retention window was asked for and is gone."""
