"""Telling damage from the ordinary: why a chunk a reader needs is missing, and whether
the stored head went back (an intact older head put in its place).

A head that went back must never be served as current, and no writer may treat the newer
versions as debris and delete or overwrite them. Heads carry their newest commit records
(pages/log.py), so an older head put back takes those records with it; what gives it away
is what the newer commits left in storage: log rows or chunk versions more than one
version past it (a commit in flight may have written one version ahead, never two).
"""

from __future__ import annotations

from dolite.errors import CorruptChunk, DatabaseNotFound, SnapshotExpired
from dolite.pages.format import HEAD, LEASE, LOG_PREFIX, Head, chunk_key, chunk_prefix, chunk_versions, log_key, parse_log_key
from dolite.storage.base import Storage

ROLLED_BACK = "the head was rolled back or damaged (nothing was deleted; restore the head from a backup or repair it)"


def resettable(exc: CorruptChunk, name: str) -> CorruptChunk:
    """``exc`` (a damaged write lease or GC cursor: records that hold no data), saying how
    to reset it."""
    return CorruptChunk(f"{exc}; it holds no data: `dolite check {name} --repair` resets it")


def check_log_not_ahead(storage: Storage, name: str, head: Head) -> None:
    """Raise CorruptChunk if the log has rows two or more versions past ``head`` while the
    stored head stays there (not merely past ``head``: writers elsewhere may have committed
    since it was read, and a commit's batch row is keyed by its base's version)."""
    for _look in range(3):
        ahead = storage.list(start=log_key(head.version + 2), prefix=LOG_PREFIX, limit=1)
        if not ahead:
            return
        current = _stored_head(storage, name)
        if current is None or current.id != head.id:
            return  # dropped (and maybe created again) since: the caller finds out on its next read
        if current.version <= head.version:
            raise CorruptChunk(f"{name}: the head says v{current.version} but the commit log goes on "
                               f"to v{parse_log_key(next(iter(ahead)))}: {ROLLED_BACK}")
        head = current  # commits landed since it was read: look again from there


def check_not_behind(storage: Storage, name: str, head: Head, seen: int) -> None:
    """A reader of ``head`` saw a chunk of version ``seen``: raise CorruptChunk if that is
    two or more versions past the stored head (not merely past ``head``: commits may have
    landed since it was read)."""
    if seen <= head.version + 1:
        return
    current = _stored_head(storage, name)
    if current is not None and current.id == head.id and current.version + 1 < seen:
        raise CorruptChunk(f"{name}: the head says v{current.version} but chunks of v{seen} exist: {ROLLED_BACK}")


def check_conflict_explained(storage: Storage, name: str, expect: dict[str, bytes | None], new: Head) -> None:
    """After a refused single-call commit, which expected its chunk keys absent: if neither
    the head nor the lease changed, a chunk of ``new`` already existed, so the stored head
    went back: raise CorruptChunk (a retry would be refused for ever)."""
    try:
        now = storage.get([HEAD, LEASE])
    except Exception:  # noqa: BLE001 - the caller's Conflict says enough
        return
    if all(now.get(key) == expect[key] for key in (HEAD, LEASE) if key in expect):
        raise CorruptChunk(f"{name}: chunks of v{new.version} exist although the head says "
                           f"v{new.version - 1}: {ROLLED_BACK}")


def check_not_lost(storage: Storage, name: str, head: Head, chunk: int, found: int, carried: dict[int, int]) -> None:
    """A listing as of ``head`` found version ``found`` of ``chunk``: raise CorruptChunk if
    the head's records say a newer one (not past ``head``) was written, which storage lost."""
    written = carried.get(chunk, -1)
    if found < written <= head.version:
        raise missing_chunk(storage, name, head, chunk, written)


def overwritten(storage: Storage, name: str, head: Head, chunk: int, version: int) -> Exception:
    """The in-place key of ``chunk`` holds ``version``, past ``head``: what the head needs
    may have been overwritten (a database that keeps no superseded versions)."""
    return _dropped(storage, name, head) or SnapshotExpired(
        f"{name}: chunk {chunk} as of v{head.version} was overwritten in place by v{version} (this "
        "database keeps no superseded versions): start the transaction again")


def missing_chunk(storage: Storage, name: str, head: Head, chunk: int, version: int | None) -> Exception:
    """Why the version of ``chunk`` that ``head`` needs is not in storage: the database was
    dropped, GC removed a superseded version (the snapshot expired), or, when neither
    explains it, the store is damaged."""
    dropped = _dropped(storage, name, head)
    if dropped is not None:
        return dropped
    newer = storage.list(start=chunk_key(chunk, head.version + 1), end=chunk_prefix(chunk + 1), limit=1)
    if any(v > head.version for _c, v, _key, _raw in chunk_versions(newer, name)):
        return SnapshotExpired(f"{name}: chunk {chunk} as of v{head.version} was garbage-collected: that "
                               "version is older than the retention window")
    what = f"v{version}" if version is not None else f"at or before v{head.version}"
    return CorruptChunk(f"{name}: chunk {chunk} {what} is missing from storage")


def _dropped(storage: Storage, name: str, head: Head) -> DatabaseNotFound | None:
    current = _stored_head(storage, name)
    if current is None or current.id != head.id:
        return DatabaseNotFound(f"database {name!r} was dropped while this snapshot (v{head.version}) was open")
    return None


def _stored_head(storage: Storage, name: str) -> Head | None:
    """The head in storage now (None: the database was dropped)."""
    raw = storage.get([HEAD]).get(HEAD)
    return Head.decode(raw, name) if raw is not None else None
