"""Operator functions over stored databases: list, info, check, gc, drop.

Each is a plain library call (the CLI and the service only format their results).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dolite.errors import CorruptChunk, DatabaseNotFound
from dolite.names import validate_name
from dolite.pages import PageStore
from dolite.pages.format import (
    CHUNK_PREFIX,
    HEAD,
    LEASE,
    decode_chunk,
    parse_chunk_key,
)
from dolite.pages.lease import Lease
from dolite.storage import Namespace, open_storage


def list_databases(storage: str | Namespace) -> list[str]:
    """Names of the databases in ``storage`` (objects that have a head)."""
    namespace = open_storage(storage)
    return [n for n in namespace.names() if HEAD in namespace.object(n).get([HEAD])]


def _store(storage: str | Namespace, name: str) -> PageStore:
    validate_name(name)
    store = PageStore(storage.object(name) if isinstance(storage, Namespace)
                      else open_storage(storage).object(name), name)
    if not store.exists():
        raise DatabaseNotFound(f"database {name!r} does not exist")
    return store


def _iter_all(obj, prefix: str, page: int = 512):
    """Every (key, value) under ``prefix``, fetched ``page`` keys at a time."""
    start = prefix
    while True:
        batch = obj.list(start=start, prefix=prefix, limit=page)
        yield from batch.items()
        if len(batch) < page:
            return
        start = next(reversed(batch)) + "\x00"


def info(storage: str | Namespace, name: str) -> dict:
    """Size, pages, versions and chunks of database ``name``."""
    from dolite.ops.restore import retained_versions

    namespace = open_storage(storage)
    store = _store(namespace, name)
    head = store.read_head()
    obj = store.storage
    chunk_keys = sum(1 for _ in _iter_all(obj, CHUNK_PREFIX))
    versions = [version for version, _ in retained_versions(namespace, name)]
    header = store.read_chunk(head, 0)[:100] if head.size else b""
    page_size = int.from_bytes(header[16:18], "big") if len(header) >= 18 else 0
    page_size = 65536 if page_size == 1 else page_size
    lease_raw = obj.get([LEASE]).get(LEASE)
    lease = Lease.decode(lease_raw) if lease_raw else None
    return {
        "name": name,
        "version": head.version,
        "size": head.size,
        "page_size": page_size,
        "pages": head.size // page_size if page_size else 0,
        "chunk_size": head.chunk_size,
        "chunks": -(-head.size // head.chunk_size),
        "stored_chunk_versions": chunk_keys,
        "retained_versions": len(versions),
        "oldest_version": versions[0] if versions else head.version,
        "retention_seconds": head.retention,
        "committed_at": head.time,
        "lease": None if lease is None else {"owner": lease.owner, "epoch": lease.epoch, "expires": lease.expires},
    }


@dataclass
class CheckReport:
    """What :func:`check` found. ``ok`` only if every check passed."""

    name: str
    integrity: list[str] = field(default_factory=list)
    chunks_checked: int = 0
    corrupt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.integrity == ["ok"] and not self.corrupt


def check(storage: str | Namespace, name: str) -> CheckReport:
    """Verify every stored chunk version's checksum, then run PRAGMA integrity_check."""
    from dolite.sql.dbapi import connect

    namespace = open_storage(storage)
    store = _store(namespace, name)
    report = CheckReport(name)
    for key, raw in _iter_all(store.storage, CHUNK_PREFIX):
        chunk, version = parse_chunk_key(key)
        report.chunks_checked += 1
        try:
            decode_chunk(raw, chunk, version, name)
        except CorruptChunk as exc:
            report.corrupt.append(str(exc))
    conn = connect(name, storage=namespace, create=False)
    try:
        report.integrity = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    except CorruptChunk as exc:
        report.integrity = [f"unreadable: {exc}"]
    finally:
        conn.close()
    return report


def gc(storage: str | Namespace, name: str, *, drop_history: bool = False) -> int:
    """Garbage-collect ``name`` now: delete chunk versions superseded before the retention
    horizon (what commits do every so often), or with ``drop_history`` every superseded
    version, so that only the current one can be read or restored. Returns keys deleted.
    Deleting needs little room, so this is a way out of a full store."""
    import time

    store = _store(open_storage(storage), name)
    try:
        now = time.time() + (store.read_head().retention if drop_history else 0.0)
        total = 0
        while deleted := store.collect_garbage(now):  # a run handles a bounded number of commits
            total += deleted
        return total
    finally:
        store.close()


def drop(storage: str | Namespace, name: str) -> None:
    """Delete database ``name`` and every version of it (works on a full store too: see
    the storage backend's ``drop``)."""
    namespace = open_storage(storage)
    _store(namespace, name)
    namespace.drop(name)
