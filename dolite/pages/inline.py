"""A chunk held inline in the head: on a database that writes in place (retention 0), a
single-call commit may keep one of its chunks in the new head instead of a key of its
own, so rewriting the same page again and again (appending rows, a counter) writes one
row per commit, the head, instead of two. Cloudflare bills each row written.

The head stores the chunk's value exactly as its chunk key would (``Inline.value``, after
the sealed JSON: pages/format.py). What a commit does with the base head's inline chunk
``b`` (version ``vb``) and the chunks ``W`` it writes:

- a single-call commit in place (pages/in_place.py) picks the newest-numbered chunk of
  ``W`` that may be held (:func:`holdable`) and writes the rest in place. ``b`` not in
  ``W`` is first flushed to its in-place key (``c/<b>/~``); ``b`` in ``W`` but not picked
  is simply written in place again.
- any other commit keeps holding ``b`` if it does not write it and the file still reaches
  it; else (and always for a 2PC prepare, whose head is built later) ``b`` is flushed to
  its in-place key in the commit's first call, before any head can lose it.

Readers: a head holding chunk ``b`` at ``vb`` answers for ``b`` itself as of any version
``>= vb`` (nothing rewrote ``b`` since: it would have been flushed or held anew). Versions
``since`` to ``vb - 1`` of ``b`` were held inline and dropped, as a write in place
overwrites: a reader of one of them gets SnapshotExpired. Below ``since`` storage has the
answer: a chunk is first held only while its in-place key holds its newest stored version
(or it has none), so no version key newer than the in-place key's can be dropped by GC
from under a reader of an older version.
"""

from __future__ import annotations

from collections.abc import Iterable

from dolite.errors import SnapshotExpired
from dolite.pages.format import Head, Inline, encode_chunk, in_place_key
from dolite.storage.base import Limits

MAX_INLINE_BYTES = 16 << 10  # bigger chunks are not held: every commit sends the head twice


def as_of(head: Head, chunk: int, name: str) -> bytes | None:
    """The data of ``chunk`` as of ``head`` if the head holds the answer (None: read
    storage). Raises SnapshotExpired for a version dropped while held inline."""
    held = head.inline
    if held is None or held.chunk != chunk:
        return None
    if held.version <= head.version:
        return held.data
    if head.version >= held.since:
        raise SnapshotExpired(f"{name}: chunk {chunk} as of v{head.version} was rewritten in the head by "
                              f"v{held.version} (this database keeps no superseded versions): start the "
                              "transaction again")
    return None


def newest(head: Head) -> dict[int, int]:
    """chunk -> version for the chunk ``head`` holds, if it holds one as of itself."""
    held = head.inline
    return {held.chunk: held.version} if held is not None and held.version <= head.version else {}


def holdable(base: Head, chunk: int, superseded: dict[int, int]) -> bool:
    """Whether a commit on ``base`` may hold ``chunk`` inline: it is the chunk the base
    holds, or its in-place key holds its newest stored version (or it has none), as
    ``superseded`` (pages/versions.py) says with -1."""
    return (base.inline is not None and base.inline.chunk == chunk) or superseded.get(chunk) == -1


def one_call(base: Head, new: Head, chunk_ids: list[int], chunks: Iterable[tuple[int, bytes]],
             in_place: frozenset[int], superseded: dict[int, int],
             limits: Limits) -> tuple[Head, Iterable[tuple[int, bytes]], dict[str, bytes]]:
    """For a single-call commit of ``chunks`` on ``base`` (``in_place``: all of them, or
    none): ``new`` as it holds a chunk, the chunks left to write and the rows to add."""
    if not in_place:
        new, rows = carried(base, new, chunk_ids, moves_head=True)
        return new, chunks, rows
    new, kept, rows = pick(base, new, dict(chunks), superseded, limits)
    return new, kept.items(), rows


def pick(base: Head, new: Head, chunks: dict[int, bytes], superseded: dict[int, int],
         limits: Limits) -> tuple[Head, dict[int, bytes], dict[str, bytes]]:
    """For a single-call commit in place of ``chunks`` on ``base``: ``new`` holding one of
    them, the chunks left to write in place, and the rows to write with them (the base's
    held chunk, flushed, unless this commit writes it again)."""
    held = base.inline
    rows = {} if held is None or held.chunk in chunks else flushed(held)
    fits = [c for c in chunks if len(chunks[c]) <= MAX_INLINE_BYTES and holdable(base, c, superseded)]
    if not fits:
        return new.holding(None), chunks, rows
    chunk = max(fits)
    since = held.since if held is not None and held.chunk == chunk else new.version
    holding = new.holding(Inline(chunk, new.version, since, encode_chunk(chunk, new.version, chunks[chunk])))
    if len(holding.encode()) > limits.max_value_bytes:  # the head's records leave no room
        return new.holding(None), chunks, rows
    return holding, {c: data for c, data in chunks.items() if c != chunk}, rows


def carried(base: Head, new: Head, chunk_ids: list[int], *, moves_head: bool) -> tuple[Head, dict[str, bytes]]:
    """For any other commit: ``new`` still holding the base's chunk if it may (the commit
    moves the head, does not write that chunk and keeps it in the file), else ``new``
    holding none and the row that flushes the base's chunk to its in-place key."""
    held = base.inline
    if held is None:
        return new, {}
    if moves_head and held.chunk not in chunk_ids and held.chunk < new.chunk_count:
        return new.holding(held), {}
    return new.holding(None), flushed(held)


def flushed(held: Inline) -> dict[str, bytes]:
    """The row that stores ``held`` under its chunk's in-place key."""
    return {in_place_key(held.chunk): held.value}

