"""The commit log: one record per committed version, written with the commit and read by
everything that needs to know what a version changed (debris cleanup, GC, point-in-time
restore, backups).

A record lives at ``log/<version>``; one too large for a value is split in parts
``log/<version>#<n>``, each naming a share of the chunks. Every part carries the version's
time, size and previous size. A record is written before (multi-call commits) or with
(single-call commits) the chunks it names, so a crashed commit's debris can be found.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from dolite.errors import CorruptChunk
from dolite.pages.format import LOG_PREFIX, Head, decode_record, encode_record, from_ranges, log_key, parse_log_key, to_ranges
from dolite.storage.base import Limits, Storage


@dataclass(frozen=True)
class CommitRecord:
    """What one committed version changed."""

    version: int
    time: float
    size: int  # file size after the commit
    old_size: int  # file size before it
    chunks: list[int]  # chunks written


def spill_key(version: int, part: int) -> str:
    """The key of a record part naming chunks a big transaction wrote before its commit."""
    return f"{log_key(version)}#s{part:04d}"


def record_writes(new: Head, chunks: list[int], old_size: int, limits: Limits) -> dict[str, bytes]:
    """The keys and values of ``new``'s record, split in as few parts as fit the limits."""
    fields = {"v": new.version, "time": new.time, "size": new.size, "old_size": old_size}
    ranges = to_ranges(chunks)
    step = len(ranges) or 1
    while True:
        pieces = [ranges[i:i + step] for i in range(0, len(ranges), step)] or [[]]
        keys = [log_key(new.version) + (f"#{n:04d}" if n else "") for n in range(len(pieces))]
        parts = [encode_record(key, {**fields, "chunks": piece, "parts": len(pieces)})
                 for key, piece in zip(keys, pieces)]
        if max(len(p) for p in parts) <= limits.max_value_bytes or step == 1:
            return dict(zip(keys, parts))
        step = max(1, step // 2)


def read_records(storage: Storage, name: str, start: int, end: int,
                 most: int | None = None) -> dict[int, CommitRecord]:
    """The records of versions ``start <= v < end``, oldest first; with ``most``, only the
    oldest ones that come whole within that many keys. Raises CorruptChunk on a damaged
    record."""
    raw = storage.list(start=log_key(start), end=log_key(end), prefix=LOG_PREFIX, limit=most)
    parts: dict[int, list[dict]] = defaultdict(list)
    for key, value in raw.items():
        parts[parse_log_key(key)].append(decode_record(value, key, name))
    if most is not None and len(raw) >= most and len(parts) > 1:
        parts.pop(max(parts))  # its parts may run past the limit
    return {version: _merge(version, fields) for version, fields in sorted(parts.items())}


def read_record(storage: Storage, name: str, version: int) -> CommitRecord | None:
    """The record of ``version``, or None once GC removed it (or it never existed)."""
    return read_records(storage, name, version, version + 1).get(version)


def record_keys(storage: Storage, version: int) -> list[str]:
    """Every key (all parts) of ``version``'s record."""
    return list(storage.list(start=log_key(version), end=log_key(version + 1), prefix=LOG_PREFIX))


def _merge(version: int, parts: list[dict]) -> CommitRecord:
    first = parts[0]
    chunks = [c for part in parts for c in from_ranges(part["chunks"])]
    return CommitRecord(version=version, time=first["time"], size=first["size"],
                        old_size=first["old_size"], chunks=chunks)


def check_head_not_behind(storage: Storage, name: str, head: Head) -> None:
    """Raise CorruptChunk if the log has records two or more versions past ``head``. A
    failed commit leaves a record for head + 1 at most (the next writer removes it before
    committing), so records further on mean the head went back: an intact older head was
    put back, and treating the newer versions as debris would delete them for ever."""
    ahead = storage.list(start=log_key(head.version + 2), prefix=LOG_PREFIX, limit=1)
    if ahead:
        raise CorruptChunk(
            f"{name}: the head says v{head.version} but the commit log goes on to "
            f"v{parse_log_key(next(iter(ahead)))}: the head was rolled back or damaged "
            "(nothing was deleted; restore the head from a backup or repair it)")
