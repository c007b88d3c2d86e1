"""Verify a backup without restoring it anywhere: every manifest readable and on a chain
that reaches a full manifest, every chunk any manifest names present and matching its
hash, and the newest version assembled (each chunk's length checked too) into a private
temporary file that must pass ``PRAGMA integrity_check``. Problems are collected, not
stopped at, so one run names everything that is damaged and which versions it affects."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from dolite.backup.errors import BackupError, BackupNotFound
from dolite.backup.manifest import chunk_key, digest, listing, load, resolve
from dolite.backup.restore import assemble, check_integrity
from dolite.backup.target import BackupTarget

Progress = Callable[[int, int], None]  # (chunks checked, distinct chunks named)


@dataclass
class VerifyResult:
    name: str
    target: str
    versions: int = 0  # manifests read
    chunks: int = 0  # distinct chunks re-hashed
    bytes: int = 0
    newest: int | None = None  # the version assembled and integrity-checked
    seconds: float = 0.0  # how long the whole drill took (what a restore would take, roughly)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def verify_target(target: BackupTarget, db: str, progress: Progress | None = None) -> VerifyResult:
    """Check every manifest and chunk of ``db``'s backup; see the module doc."""
    known = listing(target, db)
    if not known:
        raise BackupNotFound(f"no backup of {db!r} at {target.url}")
    started = time.perf_counter()
    result = VerifyResult(db, target.url)
    users: dict[str, list[int]] = {}  # chunk hash -> versions whose manifests name it
    for version, (_, key) in known.items():
        try:
            manifest = load(target, db, key)
        except BackupError as exc:
            result.problems.append(str(exc))
            continue
        result.versions += 1
        if manifest.base is not None and manifest.base not in known:
            result.problems.append(f"{db} v{version}: its base v{manifest.base} is missing")
        for h in manifest.chunks.values():
            users.setdefault(h, []).append(version)
    for n, (h, versions) in enumerate(sorted(users.items()), 1):
        _check_chunk(target, db, h, versions, result)
        if progress:
            progress(n, len(users))
    _check_newest(target, db, max(known), known, result)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _check_chunk(target: BackupTarget, db: str, h: str, versions: list[int], result: VerifyResult) -> None:
    data = target.get_object(chunk_key(db, h))
    if data is None or digest(data) != h:
        what = "is missing" if data is None else "fails its hash"
        result.problems.append(f"{db}: chunk {h} {what} (named by versions {_versions(versions)} "
                               "and the deltas built on them)")
        return
    result.chunks += 1
    result.bytes += len(data)


def _check_newest(target: BackupTarget, db: str, newest: int, known: dict, result: VerifyResult) -> None:
    folder = tempfile.mkdtemp(prefix="dolite-verify-")
    try:
        manifest, pages = resolve(target, db, newest, known)
        path = os.path.join(folder, "verify.sqlite")
        assemble(target, manifest, pages, path)
        check_integrity(path, f"{db} v{newest}")
        result.newest = newest
    except BackupError as exc:
        result.problems.append(f"newest version v{newest} cannot be restored: {exc}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _versions(versions: list[int]) -> str:
    shown = ", ".join(str(v) for v in versions[:5])
    return shown + (f" and {len(versions) - 5} more" if len(versions) > 5 else "")


__all__ = ["VerifyResult", "verify_target"]
