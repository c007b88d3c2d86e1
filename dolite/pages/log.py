"""The commit log: one record per committed version, written with the commit and read by
everything that needs to know what a version changed (debris cleanup, GC, point-in-time
restore, backups).

Where a record is kept:

- A single-call commit (chunks and head in one ``commit``) folds its record into the new
  head (``Head.recent``): no row of its own, so such a commit writes its chunks and the
  head only. When the head's records reach ``RECENT_MAX``, the commit that would add one
  more writes them out as one batch row ``log/<v>`` (``v``: the newest version in it, the
  base head's) and starts the new head's list with its own record.
- Every other commit (multi-call commits, 2PC prepares, publishes) writes its record as a
  row ``log/<version>`` before (or with) the chunks it names, so a crashed commit's debris
  can be found, together with the base head's records as a batch row; its head carries none.
  A record too large for a value is split in parts ``log/<version>#<n>``, each naming a
  share of the chunks and carrying the version's time, size and previous size.

Invariant: every committed version's record is in a row or in the current head's
``recent`` (both, briefly, is harmless: the same record). So readers pass the head they
read, and rows are keyed by the newest version they hold: a batch row keyed at or after
``end`` may still hold versions before it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from dolite.errors import CorruptChunk
from dolite.pages.format import GC, LOG_PREFIX, Head, decode_record, encode_record, from_ranges, log_key, parse_log_key, to_ranges
from dolite.pages.integrity import resettable
from dolite.storage.base import Limits, Storage


@dataclass(frozen=True)
class CommitRecord:
    """What one committed version changed."""

    version: int
    time: float
    size: int  # file size after the commit
    old_size: int  # file size before it
    chunks: list[int]  # chunks written
    # chunk -> the version this one superseded (-1: none), where the writer knew it (folded
    # records): GC deletes those keys without listing the chunk's versions
    replaced: dict[int, int] = field(default_factory=dict)


def spill_key(version: int, part: int) -> str:
    """The key of a record part naming chunks a big transaction wrote before its commit."""
    return f"{log_key(version)}#s{part:04d}"


def spill_record(new: Head, part: int, chunks: list[int]) -> dict[str, bytes]:
    """The record part naming ``chunks``, spilled for ``new`` (whose size is the base's)."""
    key = spill_key(new.version, part)
    return {key: encode_record(key, {"v": new.version, "time": new.time, "size": new.size,
                                     "old_size": new.size, "chunks": to_ranges(chunks)})}


RECENT_MAX = 32  # records a head carries at most (about 60 bytes each)


def folded(base: Head, new: Head, chunks: list[int],
           replaced: dict[int, int]) -> tuple[Head, dict[str, bytes]]:
    """``new`` carrying its own record in ``recent``, and the rows to write with it: none,
    or the base head's records as one batch row once the head has ``RECENT_MAX``.
    ``replaced``: chunk -> its newest version as of ``base``, where known."""
    own = (new.version, new.time, new.size, base.size, tuple(map(tuple, to_ranges(chunks))))
    if replaced:
        own += (tuple(n for c in sorted(replaced) for n in (c, replaced[c])),)
    if len(base.recent) < RECENT_MAX:
        return new.carrying((*base.recent, own)), {}
    return new.carrying((own,)), flushed(base)


def flushed(base: Head) -> dict[str, bytes]:
    """The row holding the base head's records (none if it carries none)."""
    if not base.recent:
        return {}
    key = log_key(base.recent[-1][0])
    return {key: encode_record(key, {"batch": base.recent})}


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


def read_records(storage: Storage, name: str, head: Head, start: int, end: int,
                 most: int | None = None, gc_done: int | None = None) -> dict[int, CommitRecord]:
    """The records of versions ``start <= v < end``, oldest first, from the rows and from
    ``head`` (the newest head the caller read); with ``most``, only the oldest ones that
    come whole within that many rows. GC has dropped the versions before its cursor
    (``gc_done``, read here unless given). Raises CorruptChunk on a damaged record."""
    return read_log(storage, name, head, start, end, most, gc_done)[0]


def read_log(storage: Storage, name: str, head: Head, start: int, end: int, most: int | None = None,
             gc_done: int | None = None) -> tuple[dict[int, CommitRecord], list[str]]:
    """:func:`read_records`, and the keys of the rows it read them from."""
    if gc_done is None:
        gc_done = read_gc_done(storage, name)
    start = max(start, gc_done)
    raw = storage.list(start=log_key(start), end=log_key(end), prefix=LOG_PREFIX, limit=most)
    truncated = most is not None and len(raw) >= most
    if not truncated and end <= head.version:  # a batch row keyed at or after end?
        raw.update(storage.list(start=log_key(end), prefix=LOG_PREFIX, limit=1))
    parts: dict[int, list[dict]] = defaultdict(list)
    batched: dict[int, CommitRecord] = {}
    for key, value in raw.items():
        fields = decode_record(value, key, name)
        if "batch" in fields:
            batched.update((r.version, r) for r in map(_from_tuple, fields["batch"]))
        else:
            parts[parse_log_key(key)].append(fields)
    if truncated and len(parts) > 1:
        parts.pop(max(parts))  # its parts may run past the limit
    found = {version: _merge(version, fields) for version, fields in parts.items()}
    if not truncated:
        batched.update((r.version, r) for r in map(_from_tuple, head.recent))
    found.update((v, r) for v, r in batched.items() if v not in found)
    return {v: found[v] for v in sorted(found) if start <= v < end}, list(raw)


def read_gc_done(storage: Storage, name: str) -> int:
    """GC's cursor: it has processed every version up to this one (0: none yet)."""
    raw = storage.get([GC]).get(GC)
    if raw is None:
        return 0
    try:
        return decode_record(raw, GC, name)["done"]
    except CorruptChunk as exc:
        raise resettable(exc, name) from exc


def read_record(storage: Storage, name: str, head: Head, version: int) -> CommitRecord | None:
    """The record of ``version``, or None once GC removed it (or it never existed)."""
    return read_records(storage, name, head, version, version + 1).get(version)


def record_keys(storage: Storage, version: int) -> list[str]:
    """Every key (all parts) of ``version``'s record."""
    return list(storage.list(start=log_key(version), end=log_key(version + 1), prefix=LOG_PREFIX))


def _from_tuple(record) -> CommitRecord:
    version, time, size, old_size, ranges, *replaced = record
    flat = replaced[0] if replaced else ()
    return CommitRecord(version=version, time=time, size=size, old_size=old_size,
                        chunks=from_ranges(ranges), replaced=dict(zip(flat[::2], flat[1::2])))


def _merge(version: int, parts: list[dict]) -> CommitRecord:
    first = parts[0]
    chunks = [c for part in parts for c in from_ranges(part["chunks"])]
    return CommitRecord(version=version, time=first["time"], size=first["size"],
                        old_size=first["old_size"], chunks=chunks)
