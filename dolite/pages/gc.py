"""Garbage collection over a page store: debris of failed commits, and chunk versions
superseded before the retention horizon. Written once, over the storage contract."""

from __future__ import annotations

from collections import defaultdict
from itertools import islice
from typing import TYPE_CHECKING

from dolite.pages.format import (
    GC,
    LEASE,
    LOG_PREFIX,
    Head,
    chunk_key,
    chunk_prefix,
    decode_record,
    encode_record,
    from_ranges,
    log_key,
    parse_log_key,
)

if TYPE_CHECKING:
    from dolite.pages.store import PageStore

MAX_RECORDS_PER_RUN = 256


def _fenced_delete(store: PageStore, keys: list[str], final_writes: dict[str, bytes] | None = None) -> None:
    """Delete ``keys`` in order, in batches, each refused if we lost the lease."""
    fence = {LEASE: store.lease.raw}
    step = store.limits.max_keys_per_call
    items = iter(keys)
    while batch := list(islice(items, step)):
        store.storage.commit({}, deletes=batch, expect=fence)
    if final_writes:
        store.storage.commit(final_writes, expect=fence)


def _records(store: PageStore, start: int, end: int, most: int | None = None) -> dict[int, list[dict]]:
    """Decoded log records with ``start <= version < end``, parts grouped by version; with
    ``most``, only the oldest records that come whole within that many keys."""
    raw = store.storage.list(start=log_key(start), end=log_key(end), prefix=LOG_PREFIX, limit=most)
    grouped: dict[int, list[dict]] = defaultdict(list)
    for key, value in raw.items():
        grouped[parse_log_key(key)].append(decode_record(value, key, store.name))
    if most is not None and len(raw) >= most and len(grouped) > 1:
        grouped.pop(max(grouped))  # its parts may run past the limit
    return dict(sorted(grouped.items()))


def _record_keys(store: PageStore, version: int) -> list[str]:
    return list(store.storage.list(start=log_key(version), end=log_key(version + 1), prefix=LOG_PREFIX))


def remove_uncommitted(store: PageStore, head: Head) -> int:
    """Delete what commits newer than ``head`` left behind (their log records name it)."""
    debris: list[str] = []
    for version, parts in _records(store, head.version + 1, 1 << 48).items():
        for part in parts:
            debris += [chunk_key(c, version) for c in from_ranges(part["chunks"])]
        debris += _record_keys(store, version)
    if debris:
        _fenced_delete(store, debris)
    return len(debris)


def collect(store: PageStore, now: float) -> int:
    """Process log records older than the retention horizon (and older than any reader
    pinned in this process): delete the chunk versions each one superseded."""
    head = store.read_head()
    store._hold_lease()
    cursor_raw = store.storage.get([GC]).get(GC)
    done = decode_record(cursor_raw, GC, store.name)["done"] if cursor_raw else 0
    oldest_pinned = min(store.pinned_versions(), default=head.version)
    limit = min(head.version, oldest_pinned)
    horizon = now - head.retention
    oldest = _records(store, done + 1, limit + 1, most=1)
    if not oldest or next(iter(oldest.values()))[0]["time"] > horizon:
        return 0  # the common case: nothing has aged out since the last run
    deletes: list[str] = []
    processed = done
    for version, parts in _records(store, done + 1, limit + 1, most=MAX_RECORDS_PER_RUN).items():
        if parts[0]["time"] > horizon:
            break
        for part in parts:
            deletes += _superseded(store, from_ranges(part["chunks"]), version)
        first = parts[0]
        if first["size"] < first["old_size"]:
            size_chunks = -(-first["size"] // head.chunk_size)
            old_chunks = -(-first["old_size"] // head.chunk_size)
            deletes += _superseded(store, range(size_chunks, old_chunks), version)
        processed = version
    if processed == done:
        return 0
    old_logs = list(store.storage.list(start=log_key(0), end=log_key(processed), prefix=LOG_PREFIX))
    _fenced_delete(store, deletes + old_logs, {GC: encode_record(GC, {"done": processed})})
    return len(deletes) + len(old_logs)


def _superseded(store: PageStore, chunks, version: int) -> list[str]:
    """Keys of every version older than ``version`` of each chunk, oldest first, so that a
    reader never sees an older version resurface while a newer one is already gone."""
    keys: list[str] = []
    for chunk in chunks:
        keys += store.storage.list(start=chunk_prefix(chunk), end=chunk_key(chunk, version))
    return keys
