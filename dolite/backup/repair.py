"""Repair corrupt chunk versions of a live database from its backup.

A stored chunk version ``c/<chunk>/<v>`` holds the chunk as written at version ``v``; it
stays the chunk's content for every version up to the next stored version of that chunk
(the chunk's valid length cannot change in between: growing or shrinking into a chunk
rewrites it). So any backed-up version ``w`` in that span holds the identical bytes, and
the manifest of ``v`` itself is preferred. A corrupt value is replaced only when

1. the backup's bytes pass their SHA-256 and length check (:func:`fetch_chunk`);
2. re-encoded for ``(chunk, v)`` they decode with the store's own ``decode_chunk`` to
   exactly those bytes; and
3. the damaged value confirms them: its header's length and CRC-32 equal the
   re-encoding's (the data was damaged), or its data equals the backup's bytes (the header
   was damaged). A value damaged in both places proves nothing and is left alone.

The replacement is a compare-and-set on the damaged value, so a concurrent GC or writer
is never overwritten. Everything that cannot be repaired is named, with why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dolite.backup.errors import BackupError, BackupNotFound
from dolite.backup.manifest import listing, resolve
from dolite.backup.restore import fetch_chunk
from dolite.backup.target import BackupTarget
from dolite.errors import Conflict, CorruptChunk
from dolite.pages import Head, PageStore
from dolite.pages.format import CHUNK_HEADER_BYTES, CHUNK_PREFIX, decode_chunk, encode_chunk, split_chunk_key, stored_version

_CHECK_FIELDS = slice(CHUNK_HEADER_BYTES - 8, CHUNK_HEADER_BYTES)  # data length and CRC-32


@dataclass
class RepairResult:
    name: str
    target: str
    checked: int = 0  # chunk versions read
    repaired: list[str] = field(default_factory=list)  # "chunk C vV (from backup vW)"
    unrepairable: list[str] = field(default_factory=list)  # "chunk C vV: why"

    @property
    def ok(self) -> bool:
        return not self.unrepairable

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class _Corrupt:
    chunk: int
    version: int
    raw: bytes
    until: int  # the next stored version of the chunk (exclusive end of the span it serves)
    key: str  # where it is stored: its version key, or the chunk's in-place key


def repair_store(store: PageStore, target: BackupTarget) -> RepairResult:
    """Replace every corrupt chunk version of ``store`` with the verified bytes from
    ``target`` (see the module doc). Raises BackupNotFound if the target holds no backup
    of the database, BackupError if it holds another incarnation's."""
    head = store.read_head()
    result = RepairResult(store.name, target.url)
    corrupt = _find_corrupt(store, head, result)
    if not corrupt:
        return result
    known = listing(target, store.name)
    if not known:
        raise BackupNotFound(f"no backup of {store.name!r} at {target.url}: nothing to repair from")
    resolved = _Resolver(target, store.name, known, head)
    for bad in corrupt:
        where = f"chunk {bad.chunk} v{bad.version}"
        try:
            source = _repair_one(store, resolved, bad)
        except (BackupError, CorruptChunk, Conflict) as exc:
            result.unrepairable.append(f"{where}: {exc}")
        else:
            result.repaired.append(f"{where} (from backup v{source})")
    return result


def _find_corrupt(store: PageStore, head: Head, result: RepairResult) -> list[_Corrupt]:
    """Every stored chunk version that fails ``decode_chunk``, with its span's end (an
    in-place key whose header no longer names its version cannot be placed: unrepairable)."""
    versions: dict[int, list[int]] = {}
    bad: list[tuple[int, int, bytes, str]] = []
    start = CHUNK_PREFIX
    while batch := store.storage.list(start=start, prefix=CHUNK_PREFIX, limit=512):
        for key, raw in batch.items():
            chunk, version = split_chunk_key(key)
            result.checked += 1
            try:
                version = stored_version(raw, chunk, store.name) if version is None else version
            except CorruptChunk as exc:
                result.unrepairable.append(f"chunk {chunk}: {exc}")
                continue
            versions.setdefault(chunk, []).append(version)
            try:
                decode_chunk(raw, chunk, version, store.name)
            except CorruptChunk:
                bad.append((chunk, version, raw, key))
        start = next(reversed(batch)) + "\x00"
    out = []
    for chunk, version, raw, key in bad:
        later = [v for v in versions[chunk] if v > version]
        out.append(_Corrupt(chunk, version, raw, min(later, default=head.version + 1), key))
    return out


class _Resolver:
    """Page maps of backed-up versions, resolved once each."""

    def __init__(self, target: BackupTarget, db: str, known: dict, head: Head):
        self.target, self.db, self.known, self.head = target, db, known, head
        self._maps: dict[int, tuple] = {}

    def candidates(self, bad: _Corrupt) -> list[int]:
        """Backed-up versions whose chunk is the damaged value: ``bad.version`` first."""
        span = [w for w in self.known if bad.version <= w < bad.until]
        return sorted(span, key=lambda w: (w != bad.version, w))

    def page_map(self, version: int):
        if version not in self._maps:
            manifest, pages = resolve(self.target, self.db, version, self.known)
            if manifest.incarnation != self.head.id:
                raise BackupError(f"the backup at {self.target.url} is of another incarnation of "
                                  f"{self.db!r} (it was dropped and created again since)")
            self._maps[version] = (manifest, pages)
        return self._maps[version]


def _repair_one(store: PageStore, resolved: _Resolver, bad: _Corrupt) -> int:
    """Write the verified replacement of ``bad``; return the backed-up version used."""
    for w in resolved.candidates(bad):
        manifest, pages = resolved.page_map(w)
        if bad.chunk >= len(pages):
            continue  # the file was shorter at w: the chunk is not in that version
        data = fetch_chunk(resolved.target, manifest, bad.chunk, pages[bad.chunk])
        value = encode_chunk(bad.chunk, bad.version, data)
        if decode_chunk(value, bad.chunk, bad.version, store.name) != data:
            raise CorruptChunk("re-encoded backup bytes do not decode to themselves")  # never expected
        if not _confirms(bad.raw, value, data):
            raise BackupError(f"the backup's bytes (v{w}) differ from what the damaged value records "
                              "(neither its checksum nor its data match): not replaced")
        try:
            store.storage.commit({bad.key: value}, expect={bad.key: bad.raw})
        except Conflict as exc:
            raise Conflict("the value changed during the repair (a commit or GC touched it): "
                           "run the repair again") from exc
        return w
    raise BackupNotFound(f"no backed-up version holds it (it served versions {bad.version}..{bad.until - 1}; "
                         f"backed-up versions: {_span(resolved.known)})")


def _confirms(raw: bytes, value: bytes, data: bytes) -> bool:
    """True if the damaged ``raw`` vouches for ``value``: same length and CRC-32 in its
    header (its data was damaged), or the same data (its header was damaged)."""
    header_agrees = len(raw) >= CHUNK_HEADER_BYTES and raw[_CHECK_FIELDS] == value[_CHECK_FIELDS]
    return header_agrees or raw[CHUNK_HEADER_BYTES:] == data


def _span(known: dict) -> str:
    return f"v{min(known)}..v{max(known)}" if known else "none"


__all__ = ["RepairResult", "repair_store"]
