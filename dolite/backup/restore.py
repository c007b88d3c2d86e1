"""Restore a backed-up version as a new database, verified before it becomes visible.

Visibility, and why this way: the version is assembled into a private temporary file
outside the store, every chunk checked against the SHA-256 its manifest names (and its
length against the file size), then ``PRAGMA integrity_check`` runs on that file. Only
then is it written under the new name, the head last so that the database appears all at
once (publish.py; integrity_check runs once more on what the store then holds, and the
database is dropped if that fails). So no unverified byte ever reaches the store, and a
failed or killed restore leaves no database behind.
Building under a staging name in the store instead would need a rename the storage
contract does not have (a second full copy), and the staging database would be visible
to ``dolite ls`` meanwhile. The cost: free local disk space for one copy of the file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass

from dolite.backup.errors import BackupNotFound, CorruptBackup, RestoreRefused
from dolite.backup.manifest import Manifest, chunk_key, digest, listing, resolve
from dolite.backup.target import BackupTarget
from dolite.names import validate_name
from dolite.backup.publish import publish_file
from dolite.pages import open_store
from dolite.storage import Namespace

Progress = Callable[[int, int], None]  # (chunks done, chunks in the file)


@dataclass(frozen=True)
class RestoreResult:
    name: str  # the backed-up database
    into: str  # the new database
    version: int
    time: float
    size: int

    def as_dict(self) -> dict:
        return asdict(self)


def choose_version(target: BackupTarget, db: str, version: int | None, at: float | None) -> int:
    """The backed-up version asked for: ``version``, the newest at or before time ``at``,
    or (neither given) the newest."""
    if version is not None and at is not None:
        raise RestoreRefused("give at most one of version and at")
    known = listing(target, db)
    if not known:
        raise BackupNotFound(f"no backup of {db!r} at {target.url}")
    if version is not None:
        if version not in known:
            raise BackupNotFound(f"{db}: version {version} is not in the backup at {target.url} "
                                 f"(backed-up versions: {_span(known)})")
        return version
    if at is not None:
        before = [v for v, (t, _) in known.items() if t <= at]
        if not before:
            raise BackupNotFound(f"{db}: no backed-up version at or before {at} (oldest is at "
                                 f"{min(t for t, _ in known.values())})")
        return before[-1]
    return max(known)


def restore_into(target: BackupTarget, db: str, namespace: Namespace, into: str, *,
                 version: int | None = None, at: float | None = None,
                 progress: Progress | None = None) -> RestoreResult:
    """Restore ``db`` (as of ``version``, or time ``at``, or its newest backup) from
    ``target`` as the new database ``into``. Raises RestoreRefused if ``into`` exists,
    BackupNotFound, CorruptBackup (nothing is then created)."""
    validate_name(into)
    if open_store(namespace, into, must_exist=False).exists():
        raise RestoreRefused(f"database {into!r} already exists: restore into a new name")
    chosen = choose_version(target, db, version, at)
    manifest, pages = resolve(target, db, chosen, listing(target, db))
    folder = tempfile.mkdtemp(prefix="dolite-restore-")
    try:
        path = os.path.join(folder, "restore.sqlite")
        assemble(target, manifest, pages, path, progress)
        check_integrity(path, f"{db} v{chosen}")
        _publish(namespace, into, path, manifest.chunk_size)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return RestoreResult(db, into, manifest.version, manifest.time, manifest.size)


def assemble(target: BackupTarget, manifest: Manifest, pages: list[str], path: str,
             progress: Progress | None = None) -> None:
    """Write the file of ``manifest`` to ``path``, each chunk verified by its hash."""
    with open(path, "wb") as out:
        for c, h in enumerate(pages):
            out.write(fetch_chunk(target, manifest, c, h))
            if progress:
                progress(c + 1, len(pages))


def fetch_chunk(target: BackupTarget, manifest: Manifest, chunk: int, h: str) -> bytes:
    """Chunk ``chunk`` of ``manifest``'s file: its bytes, which must hash to ``h`` and be
    exactly the chunk's valid length, else CorruptBackup."""
    key = chunk_key(manifest.db, h)
    data = target.get_object(key)
    where = f"{manifest.db} v{manifest.version} chunk {chunk}"
    if data is None:
        raise CorruptBackup(f"{where}: {key} is missing from {target.url}")
    if digest(data) != h:
        raise CorruptBackup(f"{where}: {key} at {target.url} fails its hash (damaged)")
    valid = min(manifest.chunk_size, manifest.size - chunk * manifest.chunk_size)
    if len(data) != valid:
        raise CorruptBackup(f"{where}: {key} has {len(data)} bytes, expected {valid}")
    return data


def check_integrity(path: str, what: str) -> None:
    """``PRAGMA integrity_check`` on the SQLite file at ``path``, read-only."""
    if os.path.getsize(path) == 0:
        return  # an empty file is an empty database
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        result = [(str(exc),)]
    if result != [("ok",)]:
        raise CorruptBackup(f"{what}: restored file fails integrity_check: {result[:3]}")


def _publish(namespace: Namespace, into: str, path: str, chunk_size: int) -> None:
    """Make the verified file the database ``into`` (publish.py: visible all at once),
    then integrity-check what the store holds; on failure drop it again."""
    from dolite.sql.dbapi import connect

    publish_file(namespace, into, path, chunk_size)
    conn = connect(into, storage=namespace, create=False)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
    except Exception as exc:  # noqa: BLE001 - any failure to read it means: not restored
        result = [(str(exc),)]
    finally:
        conn.close()
    if result != [("ok",)]:
        namespace.drop(into)
        raise CorruptBackup(f"restored database {into!r} failed integrity_check in the store: {result[:3]}")


def _span(known: dict) -> str:
    return f"{min(known)}..{max(known)} ({len(known)} versions)"
