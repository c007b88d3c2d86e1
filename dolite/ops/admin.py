"""Operator functions over stored databases: list, info, check, reset damaged records, gc, drop.

Each is a plain library call (the CLI and the service only format their results).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dolite.errors import Conflict, CorruptChunk, DatabaseNotFound
from dolite.names import validate_name
from dolite.ops.restore import retained_versions
from dolite.pages import PageStore, gc as page_gc, inline, open_store
from dolite.pages.format import (
    CHUNK_PREFIX,
    GC,
    HEAD,
    LEASE,
    LOG_PREFIX,
    Head,
    decode_chunk,
    decode_record,
    split_chunk_key,
    stored_version,
)
from dolite.pages.holds import HOLD_PREFIX
from dolite.pages.integrity import resettable
from dolite.pages.lease import Lease
from dolite.pages.log import read_records
from dolite.pages.versions import newest_written
from dolite.storage import Namespace, open_storage


def list_databases(storage: str | Namespace) -> list[str]:
    """Names of the databases in ``storage`` (objects that have a head)."""
    namespace = open_storage(storage)
    return [n for n in namespace.names() if HEAD in namespace.object(n).get([HEAD])]


def _store(storage: str | Namespace, name: str) -> PageStore:
    return open_store(storage, name)


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
    """Size, pages, versions, chunks, lease and replicas (their last push) of database ``name``."""
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
        "chunks": head.chunk_count,
        "stored_chunk_versions": chunk_keys,
        "retained_versions": len(versions),
        "oldest_version": versions[0] if versions else head.version,
        "retention_seconds": head.retention,
        "committed_at": head.time,
        "lease": None if lease is None else {"owner": lease.owner, "epoch": lease.epoch, "expires": lease.expires},
        "replicas": replicas(namespace, name),
    }


def replicas(namespace: Namespace, name: str) -> list[dict] | str:
    """The local replicas that pushed to ``name`` (its ``_dolite_replicas`` table, see
    dolite/replica/sync.py): ``replica`` id, ``seq`` (last transaction applied), ``synced``
    (time of that push, None if not recorded); or why the table could not be read."""
    from dolite.replica.sync import read_marks
    from dolite.sql.dbapi import connect

    try:
        conn = connect(name, storage=namespace, create=False)
    except Exception as exc:  # noqa: BLE001 (reported, not raised: info must still answer)
        return f"unreadable: {exc}"
    try:
        return read_marks(conn.raw)
    except Exception as exc:  # noqa: BLE001
        return f"unreadable: {exc}"
    finally:
        conn.close()


@dataclass
class CheckReport:
    """What :func:`check` found. ``ok`` only if every check passed. ``corrupt`` describes
    each bad chunk version: the file pages it holds and who owns them; ``damaged`` maps
    each owner ("table t", "index i", "unreferenced") to its unreadable pages in the
    current version."""

    name: str
    integrity: list[str] = field(default_factory=list)
    chunks_checked: int = 0
    records_checked: int = 0  # head, lease, commit log, GC cursor and holds: all sealed
    corrupt: list[str] = field(default_factory=list)
    damaged: dict[str, list[int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.integrity == ["ok"] and not self.corrupt


def check(storage: str | Namespace, name: str) -> CheckReport:
    """Verify every stored chunk version's checksum, map damage in the current version
    to pages and their tables or indexes, then run PRAGMA integrity_check."""
    from dolite.ops.damage import map_damage

    namespace = open_storage(storage)
    store = _store(namespace, name)
    report = CheckReport(name)
    if not _records_sound(store, report):
        return report  # without a sound head there is no current version to check
    head = store.read_head()
    bad_versions: dict[int, list[tuple[int, str]]] = {}
    stored: set[tuple[int, int]] = set()
    for key, raw in _iter_all(store.storage, CHUNK_PREFIX):
        chunk, version = split_chunk_key(key)  # version None: an in-place key, named by its header
        report.chunks_checked += 1
        try:
            version = stored_version(raw, chunk, name) if version is None else version
            stored.add((chunk, version))
            decode_chunk(raw, chunk, version, name)
        except CorruptChunk as exc:
            bad_versions.setdefault(chunk, []).append((head.version if version is None else version, str(exc)))
    stored.update(inline.newest(head).items())  # the chunk the head holds (pages/inline.py)
    schema, schema_error = read_schema(namespace, name)
    damage = map_damage(store, head, schema, schema_error)
    for chunk, why in damage.bad_chunks.items():
        if chunk not in bad_versions:  # e.g. missing: no stored version to name
            bad_versions[chunk] = [(head.version, why)]
    lost = _lost_versions(store, head, stored)  # a listing would serve an older version instead
    for chunk, version in lost.items():
        if chunk not in bad_versions:
            bad_versions[chunk] = [(version, f"{name}: chunk {chunk} v{version} is missing from storage "
                                             f"(the commit record of v{version} names it)")]
    for chunk, versions in sorted(bad_versions.items()):
        pages = damage.pages_of_chunk(chunk, head.chunk_size)
        current = max((v for v, _ in versions if v <= head.version), default=None)
        for version, why in versions:
            in_current = chunk in damage.bad_chunks or chunk in lost
            owners = damage.owners(pages) if version == current and in_current else {}
            for owner, owned in owners.items():
                report.damaged.setdefault(owner, []).extend(owned)
            report.corrupt.append(_describe_damage(why, pages, owners, damage.schema_error))
    report.integrity = _integrity(namespace, name)
    return report


def _lost_versions(store: PageStore, head: Head, stored: set[tuple[int, int]]) -> dict[int, int]:
    """chunk -> the version the retained commit records say is its newest, where that
    version is not in storage (none known while a record is damaged: reported already)."""
    try:
        records = read_records(store.storage, store.name, head, 0, head.version + 1)
    except CorruptChunk:
        return {}
    newest = newest_written(((v, r.size, r.old_size, r.chunks) for v, r in records.items()), head.chunk_size)
    return {c: v for c, v in newest.items() if (c, v) not in stored}


def _records_sound(store: PageStore, report: CheckReport) -> bool:
    """Verify the seal of every record that is not a chunk; False if the head is bad."""
    head_ok = True
    for prefix in (HEAD, LEASE, GC, LOG_PREFIX, HOLD_PREFIX):
        for key, raw in _iter_all(store.storage, prefix):
            if prefix in (HEAD, LEASE, GC) and key != prefix:
                continue
            report.records_checked += 1
            try:
                _verify_record(key, raw, store.name)
            except CorruptChunk as exc:
                report.corrupt.append(str(resettable(exc, store.name) if key in (LEASE, GC) else exc))
                head_ok = head_ok and key != HEAD
    return head_ok


def _verify_record(key: str, raw: bytes, name: str) -> None:
    """Decode the record stored under ``key`` (the head, the lease, or a sealed JSON
    record): CorruptChunk if it is damaged."""
    if key == HEAD:
        Head.decode(raw, name)
    elif key == LEASE:
        Lease.decode(raw, name)
    else:
        decode_record(raw, key, name)


def reset_damaged_records(storage: str | Namespace, name: str) -> list[str]:
    """Reset the records of database ``name`` that hold no data, where damaged: what was
    done, one line each (none if nothing was damaged).

    - A damaged write lease fences every writer out (no commit can match its bytes) and
      cannot be taken over: it is removed, and the next writer takes a fresh one. A writer
      that held it before the damage still cannot commit (its bytes are gone either way).
    - A damaged GC cursor fails every GC pass: it is set to the highest version it can have
      held (:func:`dolite.pages.gc.cursor_bound`, which says what that costs).

    Each is a compare-and-set on the damaged bytes, so a record rewritten meanwhile is left
    alone. Heads, commit records, holds and chunks are never changed here (corrupt chunk
    versions: ``dolite.backup.repair``; a damaged head or log: restore from a backup)."""
    obj = open_storage(storage).object(name)
    found = obj.get([HEAD, LEASE, GC])
    if HEAD not in found:
        raise DatabaseNotFound(f"database {name!r} does not exist")
    done = []
    for key in (LEASE, GC):
        damage = _damage(key, found.get(key), name)
        if damage is None:
            continue
        try:
            writes, deletes, outcome = _reset(obj, key, found[HEAD], name)
            obj.commit(writes, deletes=deletes, expect={key: found[key]})
            done.append(f"{damage}: {outcome}")
        except Conflict:
            done.append(f"{damage}: left alone, it changed meanwhile")
        except CorruptChunk as exc:  # the cursor's bound needs a sound head
            done.append(f"{damage}: left alone ({exc})")
    return done


def _damage(key: str, raw: bytes | None, name: str) -> str | None:
    """What is wrong with the stored lease or GC cursor; None if it is sound or absent."""
    if raw is None:
        return None
    try:
        _verify_record(key, raw, name)
    except CorruptChunk as exc:
        return str(exc)
    return None


def _reset(obj, key: str, head_raw: bytes, name: str) -> tuple[dict[str, bytes], list[str], str]:
    """(writes, deletes, what they do) that reset the damaged lease or GC cursor."""
    if key == LEASE:
        return {}, [LEASE], "removed (the next writer takes a fresh one)"
    bound = page_gc.cursor_bound(obj, Head.decode(head_raw, name))
    return page_gc.cursor(bound), [], f"reset to v{bound}"


def _describe_damage(why: str, pages: range, owners: dict[str, list[int]], schema_error) -> str:
    span = f"page {pages[0]}" if len(pages) == 1 else f"pages {pages[0]}-{pages[-1]}"
    if not owners:
        return f"{why}: {span}, only in versions older than the current one (the current database is intact there)"
    if schema_error:
        return f"{why}: {span} of the current version; owner unknown (schema unreadable: {schema_error})"
    return f"{why}: {span} of the current version, in " + "; ".join(
        f"{owner} (page{'s' if len(owned) > 1 else ''} {', '.join(map(str, owned))})" for owner, owned in owners.items())


def read_schema(namespace: Namespace, name: str) -> tuple[list[tuple[str, str, int]] | None, str | None]:
    """(name, "table"|"index", root page) of every b-tree, read through SQL; or None and
    why, if the schema itself cannot be read."""
    from dolite.sql.dbapi import connect

    conn = connect(name, storage=namespace, create=False)
    try:
        rows = conn.execute("SELECT name, type, rootpage FROM sqlite_schema "
                            "WHERE type IN ('table', 'index') AND rootpage > 0").fetchall()
        return [(n, t, r) for n, t, r in rows], None
    except Exception as exc:  # noqa: BLE001 (any failure to read means: unknown)
        return None, str(exc)
    finally:
        conn.close()


def _integrity(namespace: Namespace, name: str) -> list[str]:
    from dolite.sql.dbapi import connect

    conn = connect(name, storage=namespace, create=False)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    except Exception as exc:  # noqa: BLE001 (reported, not raised: that is what check is for)
        return [f"unreadable: {exc}"]
    finally:
        conn.close()


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


def drop(storage: str | Namespace, name: str, *, force: bool = False) -> None:
    """Delete database ``name`` and every version of it (works on a full store too: see
    the storage backend's ``drop``). Refused with LeaseHeld while a live writer holds the
    database's write lease, unless ``force``: that writer's later commits then fail."""
    namespace = open_storage(storage)
    store = _store(namespace, name)
    if not force:
        store.lease.refuse_if_held()
    namespace.drop(name)
