"""Forks: a writable copy of any retained version of a database, inside the same store
(mvSQLite's time travel and fork). The source is untouched; the fork is a new database
with its own history, starting from that version's content."""

from __future__ import annotations

from dolite.errors import AlreadyExists
from dolite.names import validate_name
from dolite.ops.restore import restore, version_at
from dolite.pages import Head, open_store
from dolite.storage import Namespace, open_storage


def fork(storage: str | Namespace, source: str, new: str, *, version: int | None = None,
         at: float | None = None) -> Head:
    """Copy ``source`` as of ``version`` (or the version current at time ``at``, or, with
    neither, its current version) into the new database ``new``; return the fork's head.
    Raises AlreadyExists if ``new`` exists, SnapshotExpired if the version is no longer
    retained, ValueError if both ``version`` and ``at`` are given."""
    if version is not None and at is not None:
        raise ValueError("give at most one of version= or at=")
    validate_name(new)
    namespace = open_storage(storage)
    if version is None:
        version = version_at(namespace, source, at) if at is not None else open_store(namespace, source).read_head().version
    try:
        return restore(namespace, source, version=version, into=new)
    except FileExistsError as exc:
        raise AlreadyExists(f"database {new!r} already exists: a fork needs a new name") from exc
