"""Point-in-time restore from the versions kept within the retention window.

``restore(storage, name, version=V)`` (or ``at=timestamp``) makes the database's content
what it was at that version, as a new version on top (history is kept, so a restore can
itself be undone), writing only the chunks that changed since. With ``into=OTHER`` the old
version is copied to a new database instead.
"""

from __future__ import annotations

from dolite.errors import AlreadyExists, SnapshotExpired
from dolite.names import validate_name
from dolite.pages import Head, PageStore, open_store
from dolite.pages.log import read_records
from dolite.pages.publish import publish
from dolite.storage import Namespace, open_storage


def retained_versions(storage: str | Namespace, name: str) -> list[tuple[int, float]]:
    """(version, commit time) of every version that can still be restored, oldest first."""
    store = open_store(storage, name)
    head = store.read_head()
    return [(v, record.time) for v, record in read_records(store.storage, name, head, 0, head.version + 1).items()]


def version_at(storage: str | Namespace, name: str, at: float) -> int:
    """The newest retained version committed at or before time ``at`` (Unix seconds)."""
    candidates = [v for v, t in retained_versions(storage, name) if t <= at]
    if not candidates:
        raise SnapshotExpired(f"{name}: no retained version at or before {at}")
    return candidates[-1]


def restore(storage: str | Namespace, name: str, *, version: int | None = None,
            at: float | None = None, into: str | None = None) -> Head:
    """Restore ``name`` to ``version`` (or the version current at time ``at``); return the
    new head. Raise SnapshotExpired if that version is no longer retained."""
    if (version is None) == (at is None):
        raise ValueError("give exactly one of version= or at=")
    namespace = open_storage(storage)
    if version is None:
        version = version_at(namespace, name, at)
    store = open_store(namespace, name)
    current = store.read_head()
    old = store.pinned(lambda: store.version_head(version, current))
    try:
        if into is not None:
            return _copy_into(namespace, store, old, validate_name(into))
        chunks = _changed_since(store, old, current)
        data = ((c, store.chunk_as_of(old, c)) for c in chunks)
        try:
            return store.commit_stream(current, chunks, data, old.size)
        finally:
            store.close()
    finally:
        store.unpin(old)


def _changed_since(store: PageStore, old: Head, current: Head) -> list[int]:
    """Chunks of the old file that any later commit rewrote, or that a truncation cut."""
    changed: set[int] = set(range(current.chunk_count, old.chunk_count))
    for record in read_records(store.storage, store.name, current, old.version + 1, current.version + 1).values():
        changed.update(record.chunks)
    return sorted(c for c in changed if c < old.chunk_count)


def _copy_into(namespace: Namespace, source: PageStore, old: Head, target: str) -> Head:
    """A new database ``target`` holding ``old``'s content, visible only once whole."""
    chunks = ((c, source.chunk_as_of(old, c)) for c in range(old.chunk_count))
    try:
        return publish(namespace.object(target), target, chunks, size=old.size,
                       chunk_size=old.chunk_size, retention=old.retention)
    except AlreadyExists as exc:
        raise FileExistsError(f"database {target!r} already exists") from exc
