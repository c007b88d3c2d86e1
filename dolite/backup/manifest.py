"""What a backup stores, and where, in a target (keys relative to the target's URL):

==============================================  ==============================================
``<db>/chunks/<sha256>``                        one chunk's plain bytes (its valid part: the
                                                last chunk of a file may be shorter), named by
                                                the SHA-256 of those bytes: stored once
``<db>/manifests/<version>-<time µs>.json``     one committed version: time, size, chunk size,
                                                and per chunk the hash valid at that version
==============================================  ==============================================

A manifest is *full* (every chunk's hash) or a *delta* (the hashes of the chunks that
changed since its ``base``, the previous manifest). A chain has :func:`full_every` deltas
after its full manifest: 32 for a small database, more for a large one (an eighth of its
chunk count, at most ``MAX_CHAIN``), so that full manifests (about 75 bytes per chunk)
add a few percent to what each commit uploads instead of dominating it; a restore reads
at most that many manifests plus one. The version is fixed-width hex and
the commit time is in the key, so listing versions and times is one listing, no reads. A
manifest is written only after every chunk it names, so a listed manifest is restorable
and the newest one is where an interrupted push resumes. Each manifest carries the SHA-256
of its own body: a damaged one is a CorruptBackup, never another version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from dolite.backup.errors import BackupNotFound, CorruptBackup
from dolite.backup.target import BackupTarget

FORMAT = 1
FULL_EVERY = 32  # deltas per chain at least
MAX_CHAIN = 1024  # deltas per chain at most


def full_every(chunk_count: int) -> int:
    """Deltas after a full manifest before the next full one, for a file of that many chunks."""
    return max(FULL_EVERY, min(MAX_CHAIN, chunk_count // 8))


def chunk_key(db: str, digest: str) -> str:
    return f"{db}/chunks/{digest}"


def manifests_prefix(db: str) -> str:
    return f"{db}/manifests/"


def manifest_key(db: str, version: int, time: float) -> str:
    return f"{manifests_prefix(db)}{version:012x}-{int(time * 1e6):016d}.json"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """One backed-up version. ``chunks`` maps chunk index -> hash: every chunk of the file
    (``base`` None) or only those changed since version ``base``."""

    db: str
    version: int
    time: float
    size: int
    chunk_size: int
    incarnation: int  # the database's Head.id: versions restart when it is created again
    chunks: dict[int, str] = field(default_factory=dict)
    base: int | None = None
    depth: int = 0  # deltas since the last full manifest

    @property
    def key(self) -> str:
        return manifest_key(self.db, self.version, self.time)

    @property
    def chunk_count(self) -> int:
        return -(-self.size // self.chunk_size)

    def encode(self) -> bytes:
        body = {"format": FORMAT, "db": self.db, "version": self.version, "time": self.time,
                "size": self.size, "chunk_size": self.chunk_size, "incarnation": self.incarnation,
                "base": self.base, "depth": self.depth,
                "chunks": {str(c): h for c, h in sorted(self.chunks.items())}}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return json.dumps({"manifest": body, "sha256": digest(text.encode())}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes, key: str) -> Manifest:
        try:
            doc = json.loads(raw)
            body = doc["manifest"]
            text = json.dumps(body, sort_keys=True, separators=(",", ":"))
            if digest(text.encode()) != doc["sha256"] or body["format"] != FORMAT:
                raise ValueError("checksum mismatch or unknown format")
            manifest = cls(db=body["db"], version=body["version"], time=body["time"], size=body["size"],
                           chunk_size=body["chunk_size"], incarnation=body["incarnation"],
                           chunks={int(c): h for c, h in body["chunks"].items()},
                           base=body["base"], depth=body["depth"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptBackup(f"backup manifest {key} is damaged: {exc}") from exc
        if manifest.key != key:
            raise CorruptBackup(f"backup manifest {key} describes another version ({manifest.key})")
        return manifest


def listing(target: BackupTarget, db: str) -> dict[int, tuple[float, str]]:
    """version -> (commit time, manifest key) of every backed-up version, oldest first."""
    found = {}
    for key in target.list(manifests_prefix(db)):
        name = key.rpartition("/")[2]
        stem, _, ext = name.partition(".")
        version, _, us = stem.partition("-")
        try:
            found[int(version, 16)] = (int(us) / 1e6, key)
        except ValueError:
            continue  # not a manifest (a stray file in the folder)
    return dict(sorted(found.items()))


def load(target: BackupTarget, db: str, key: str) -> Manifest:
    raw = target.get_object(key)
    if raw is None:
        raise CorruptBackup(f"backup manifest {key} disappeared from {target.url}")
    return Manifest.decode(raw, key)


def resolve(target: BackupTarget, db: str, version: int,
            known: dict[int, tuple[float, str]]) -> tuple[Manifest, list[str]]:
    """The manifest of ``version`` and its full page map (hash of every chunk, in order),
    read back along its chain of deltas to the last full manifest."""
    chain: list[Manifest] = []
    at: int | None = version
    while at is not None:
        if at not in known:
            what = "is not in the backup" if at == version else f"needs v{at}, which is missing"
            raise (BackupNotFound if at == version else CorruptBackup)(f"{db}: version {version} {what} at {target.url}")
        manifest = load(target, db, known[at][1])
        chain.append(manifest)
        at = manifest.base
        if len(chain) > MAX_CHAIN + 1:
            raise CorruptBackup(f"{db}: the delta chain of version {version} never reaches a full manifest")
    pages: list[str] = []
    for manifest in reversed(chain):
        pages = apply(pages, manifest)
    return chain[0], pages


def apply(pages: list[str], manifest: Manifest) -> list[str]:
    """``pages`` (the base's page map) updated by ``manifest``."""
    pages = pages[: manifest.chunk_count] if manifest.base is not None else []
    for c in range(len(pages), manifest.chunk_count):
        if c not in manifest.chunks:
            raise CorruptBackup(f"{manifest.key}: chunk {c} has no hash")
        pages.append(manifest.chunks[c])
    for c, h in manifest.chunks.items():
        if c >= manifest.chunk_count:
            raise CorruptBackup(f"{manifest.key}: chunk {c} lies past the end of the file")
        pages[c] = h
    return pages
