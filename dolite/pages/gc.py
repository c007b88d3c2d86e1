"""Garbage collection over one database object: debris of failed commits, and chunk
versions superseded before the retention horizon. Written once, over the storage contract
and the commit log; the caller (the page store) holds the write lease and passes its
bytes as the fence, so every delete is refused once another writer took over.

:class:`Collector` runs a store's passes, one at a time: on the committing thread, or, where
every storage call is a network round trip, on a thread of its own so commits need not
wait for the pass's round trips.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Container, Iterable
from dataclasses import dataclass
from itertools import islice

from dolite.errors import Conflict
from dolite.pages.format import (
    GC,
    IN_PLACE,
    LEASE,
    LOG_PREFIX,
    Head,
    chunk_key,
    chunk_prefix,
    encode_record,
    encoded_chunks,
    in_place_key,
    listed_version,
    parse_log_key,
)
from dolite.pages.holds import Hold, any_fresh, read_holds
from dolite.pages.integrity import check_log_not_ahead
from dolite.pages.log import read_gc_done, read_log, read_records, record_keys
from dolite.storage.base import Storage

# Log rows a pass reads (a batch row holds up to 32 records): bounds a pass's decoding to
# a few hundred records; a pass that processed all it read leaves GC due again at once.
MAX_ROWS_PER_PASS = 16
ATTEMPTS = 3  # passes tried when our own lease's bytes moved on under one (a renewal)
THREAD_PREFIX = "dolite-gc:"  # names the background pass's thread
log = logging.getLogger("dolite.pages")


@dataclass(frozen=True)
class Fenced:
    """A database object written under our write lease."""

    storage: Storage
    name: str
    lease: bytes  # the lease's exact bytes: every write is refused if they changed

    def write_chunks(self, version: int, chunks: Iterable[tuple[int, bytes]],
                     in_place: Container[int] = ()) -> tuple[int, int]:
        """Write chunk versions in batches (those in ``in_place`` under their in-place
        keys); returns (chunks, bytes) written."""
        count = size = 0
        values = encoded_chunks(version, chunks, in_place=in_place)
        while batch := dict(islice(values, max(1, self.storage.limits.max_keys_per_call))):
            self.storage.commit(batch, expect={LEASE: self.lease})
            count, size = count + len(batch), size + sum(map(len, batch.values()))
        return count, size

    def delete_unchanged(self, key: str, raw: bytes) -> None:
        """Delete ``key`` if it still holds ``raw`` (else leave it: it was written again)."""
        try:
            self.storage.commit({}, deletes=[key], expect={LEASE: self.lease, key: raw})
        except Conflict:
            if self.storage.get([LEASE]).get(LEASE) != self.lease:
                raise

    def delete(self, keys: list[str], final_writes: dict[str, bytes] | None = None) -> None:
        """Delete ``keys`` in order, in batches, then write ``final_writes`` (with the last
        batch when they fit in one call)."""
        fence, most = {LEASE: self.lease}, self.storage.limits.max_keys_per_call
        final_writes = final_writes or {}
        items = iter(keys)
        batch = list(islice(items, most))
        while batch:
            following = list(islice(items, most))
            last = not following and len(batch) + len(final_writes) <= most
            self.storage.commit(final_writes if last else {}, deletes=batch, expect=fence)
            if last:
                return
            batch = following
        if final_writes:
            self.storage.commit(final_writes, expect=fence)


def remove_uncommitted(db: Fenced, head: Head) -> int:
    """Delete what commits newer than ``head`` left behind (their log records name it)."""
    check_log_not_ahead(db.storage, db.name, head)
    debris: list[str] = []
    for version, record in read_records(db.storage, db.name, head, head.version + 1, 1 << 48).items():
        debris += [chunk_key(c, version) for c in record.chunks]
        debris += _written_in_place(db, head, record.chunks)  # a commit in several calls: pages/in_place.py
        debris += record_keys(db.storage, version)
    if debris:
        db.delete(debris)
    return len(debris)


def _written_in_place(db: Fenced, head: Head, chunks: list[int]) -> list[str]:
    """The in-place keys of ``chunks`` that hold a version newer than ``head`` (or one too
    damaged to tell: only an uncommitted write can have put it past the head's end)."""
    keys = [in_place_key(c) for c in chunks if c >= head.chunk_count]
    found: list[str] = []
    for i in range(0, len(keys), max(1, db.storage.limits.max_keys_per_call)):
        for key, raw in db.storage.get(keys[i:i + db.storage.limits.max_keys_per_call]).items():
            version = listed_version(key, raw, db.name)[1]
            if version is None or version > head.version:
                found.append(key)
    return found


@dataclass(frozen=True)
class Collected:
    deleted: int  # keys deleted
    due: float  # no record can age out before this time: a run before it has nothing to do
    behind: bool = False  # more aged records may follow what this pass read: run again soon
    held: bool | None = None  # whether any GC hold exists (None: not looked at)


def collect(db: Fenced, head: Head, pinned: Iterable[int], now: float) -> Collected:
    """Process log records older than the retention horizon, older than any version a
    reader in this process pinned and than any fresh GC hold: delete the chunk versions
    each one superseded."""
    done = read_gc_done(db.storage, db.name)
    limit = min(head.version, min(pinned, default=head.version))
    horizon = now - head.retention
    # From ``done``, not after it: the row keyed there, which the last run kept, goes now.
    records, rows = read_log(db.storage, db.name, head, done, limit + 1, most=MAX_ROWS_PER_PASS, gc_done=done)
    truncated = len(rows) >= MAX_ROWS_PER_PASS
    records = {v: r for v, r in records.items() if v > done}
    oldest = next(iter(records.values()), None)
    if oldest is None or oldest.time > horizon:
        # Nothing has aged out. Records only come newer, so nothing will before the oldest
        # one does; with no record read, a pin may have held them back: look again then.
        if oldest is not None:
            return Collected(0, oldest.time + head.retention)
        return Collected(0, now + head.retention if limit == head.version else 0.0)
    holds = read_holds(db.storage, db.name)
    limit = min(limit, _held_back(db.name, holds, now))
    deletes: list[str] = []
    in_place: dict[str, bytes] = {}  # in-place keys to delete, each only while it holds these bytes
    processed = done
    for version, record in records.items():
        if record.time > horizon or version > limit:
            break
        deletes += [chunk_key(c, v) for c, v in record.replaced.items() if 0 <= v < version]
        deletes += _superseded(db.storage, [c for c in record.chunks if c not in record.replaced], version)
        if record.size < record.old_size:
            cut = range(-(-record.size // head.chunk_size), -(-record.old_size // head.chunk_size))
            in_place.update(_cut(db, cut, version, deletes))
        processed = version
    if processed == done:
        return Collected(0, 0.0, held=any_fresh(holds, now))
    old_logs = [key for key in rows if parse_log_key(key) < processed]
    db.delete(deletes + old_logs, cursor(processed))
    for key, raw in in_place.items():  # after the older version keys; a commit may have
        db.delete_unchanged(key, raw)  # written it in place again meanwhile
    return Collected(len(deletes) + len(old_logs), 0.0, behind=truncated and processed == max(records),
                     held=any_fresh(holds, now))


def cursor(done: int) -> dict[str, bytes]:
    """The write that sets GC's cursor to ``done``."""
    return {GC: encode_record(GC, {"done": done})}


def cursor_bound(storage: Storage, head: Head) -> int:
    """The highest version GC's cursor can hold, found without reading it (to reset a
    damaged one). A pass deletes the log rows keyed before its new cursor before or with
    the write that sets it, and rows are keyed by the newest version they hold, so the
    cursor is at most the oldest row's key, and at most the head's version. A cursor reset
    to this bound treats the records up to it as processed: the chunk versions superseded
    by those between the lost cursor and the bound (at most one row's records) stay in
    storage, and point-in-time reads call those versions expired; no version GC already
    dropped is ever offered again."""
    oldest = storage.list(prefix=LOG_PREFIX, limit=1)
    return min(parse_log_key(next(iter(oldest))), head.version) if oldest else head.version


def _held_back(name: str, holds: dict[str, Hold], now: float) -> int:
    """The newest version GC may process given the holds: each fresh holder's version.
    A stale hold is overridden, loudly."""
    limit = 1 << 62
    for hold in holds.values():
        if hold.stale(now):
            log.warning("%s: GC hold of %r is stale (last moved %.0f s ago): versions it has "
                        "not copied may now be dropped", name, hold.holder, now - hold.time)
            continue
        limit = min(limit, hold.version)
    return limit


def _superseded(storage: Storage, chunks: Iterable[int], version: int) -> list[str]:
    """Keys of every version older than ``version`` of each chunk, oldest first, so that a
    reader never sees an older version resurface while a newer one is already gone."""
    keys: list[str] = []
    for chunk in chunks:
        keys += storage.list(start=chunk_prefix(chunk), end=chunk_key(chunk, version))
    return keys


def _cut(db: Fenced, chunks: Iterable[int], version: int, deletes: list[str]) -> dict[str, bytes]:
    """Add to ``deletes`` the keys of every version older than ``version`` of chunks a
    truncation at ``version`` cut, oldest first; return their in-place keys that hold such
    a version, with their bytes (pages/locate.py; one whose header is damaged is left for
    ``dolite check`` to report)."""
    in_place = {}
    for chunk in chunks:
        found = []
        for key, raw in db.storage.list(prefix=chunk_prefix(chunk)).items():
            v = listed_version(key, raw, db.name)[1]
            if v is not None and v < version:
                found.append((v, key, raw))
        for _v, key, raw in sorted(found):
            if key.endswith(IN_PLACE):
                in_place[key] = raw
            else:
                deletes.append(key)
    return in_place


class Collector:
    """Runs one page store's GC passes, never two at once (``_pass_lock``, held for a
    whole pass). After a commit: on the committing thread, or, where every storage call is
    a round trip (``Limits.remote``), on a thread of its own (one at most: a pass due
    while one is in flight is left to the next due commit), so that commit returns
    without waiting. The store's commit lock is held only while a pass takes its
    snapshot (the newest head, our lease's bytes as the fence, the pinned versions): its
    reads and fenced deletes run while commits go on. A commit meanwhile only adds
    versions newer than the snapshot's head, which the pass never touches; the pins keep
    what readers here still read."""

    def __init__(self, store):
        self.store = store
        self.background = store.limits.remote
        self.due = 0.0  # a pass has nothing to do before this time
        self.behind = False  # the last pass left aged records unread: the next commit runs one
        self._pass_lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """A pass after a commit (which has landed: a failure is logged and counted in
        ``stats["gc_errors"]``, never raised; the next pass picks up where it stopped)."""
        if not self.background:
            self._after_commit()
            return
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._after_commit, daemon=True,
                                            name=THREAD_PREFIX + self.store.name)
            self._thread.start()

    def wait(self) -> None:
        """Return once the background pass (if any) has finished."""
        with self._thread_lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _after_commit(self) -> None:
        try:
            self.run_pass(time.time(), acquire=not self.background)
        except Exception as exc:  # noqa: BLE001 - reported, never raised: see start
            self.store.stats["gc_errors"] += 1
            log.warning("%s: garbage collection after commit failed (will retry): %s", self.store.name, exc)

    def run_pass(self, now: float, *, acquire: bool) -> int:
        """One pass; the number of keys deleted. With ``acquire`` it takes the write lease
        if need be; without (a background pass), it runs only while we hold it. A delete
        refused because our own lease's bytes changed meanwhile (a renewal, a new term)
        removed nothing: the pass starts again from a new snapshot. One refused after
        another writer took over raises Conflict."""
        with self._pass_lock:
            started = time.perf_counter()
            try:
                return self._pass(now, acquire)
            finally:
                self.store.stats["gc_passes"] += 1
                self.store.stats["gc_seconds"] += time.perf_counter() - started

    def _pass(self, now: float, acquire: bool) -> int:
        for attempt in range(ATTEMPTS):
            taken = self._snapshot(now, acquire)
            if taken is None:
                return 0
            db, head, pinned = taken
            try:
                done = collect(db, head, pinned, now)
            except Conflict:
                if attempt + 1 == ATTEMPTS or not self._lease_moved_on(db.lease):
                    raise
                continue
            self.due, self.behind = done.due, done.behind
            if done.held is not None:
                self.store.in_place.saw_holds(done.held)
            return done.deleted
        raise AssertionError("unreachable")

    def _snapshot(self, now: float, acquire: bool) -> tuple[Fenced, Head, list[int]] | None:
        store = self.store
        with store._commit_lock:
            if now < self.due:
                store._commits_since_gc = 0
                return None  # known without I/O: nothing can have aged out yet
            if acquire:
                head = store.known_newest() or store.read_head()
                store._hold_lease()
            else:
                head = store.known_newest()
                if head is None or store._needs_cleanup or store.in_doubt is not None:
                    return None  # left to the next due commit (GC stays due)
            store._commits_since_gc = 0
            return store._fenced(), head, store.pins.versions()

    def _lease_moved_on(self, fence: bytes) -> bool:
        """Whether we still hold the lease, under other bytes than ``fence``."""
        lease = self.store.lease
        return lease.raw is not None and lease.raw != fence and lease.valid()
