"""The page store: one database file as versioned, checksummed chunks in one object.

A commit writes the new chunk versions (invisible until the head moves), then moves the
head with one compare-and-set that also checks the write lease. Small commits are a single
``commit`` call; larger ones first write their log record (naming every chunk about to be
written, so debris of a crash can be found), then the chunks in batches, then the head.
A reader pins a :class:`Head` and reads, for each chunk, the newest version not newer
than its head.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from dolite.errors import Conflict, CorruptChunk, DatabaseNotFound, SnapshotExpired
from dolite.pages import gc, inline, integrity, locate, log, twophase
from dolite.pages.in_place import InPlaceWrites, landed
from dolite.pages.cache import ChunkCache
from dolite.pages.format import (CHUNK_HEADER_BYTES, HEAD, LEASE, Head, chunk_key, decode_chunk, encoded_chunks,
                                 new_incarnation)
from dolite.pages.holds import Pins
from dolite.pages.lease import LeaseKeeper
from dolite.pages.versions import Carried, VersionMap
from dolite.storage.base import Storage

DEFAULT_CHUNK_SIZE = 4096
DEFAULT_RETENTION = 600.0
GC_EVERY = 256  # commits between GC runs: a run costs ~5 calls plus its deletes


class PageStore:
    """Versioned chunks of one database. Thread-safe; shared by every connection to the
    database in this process."""

    def __init__(self, storage: Storage, name: str, *, cache_bytes: int = 64 << 20,
                 lease_ttl: float = 30.0, objects: Callable[[str], Storage] | None = None):
        self.storage = storage
        self.name = name
        self.limits = storage.limits
        self.cache = ChunkCache(cache_bytes, disk=getattr(storage, "chunk_cache", None))
        self.lease = LeaseKeeper(storage, name, lease_ttl)
        self.stats = {"commits": 0, "chunks_written": 0, "bytes_written": 0,
                      "chunks_read": 0, "bytes_read": 0, "conflicts": 0, "gc_errors": 0,
                      "gc_passes": 0, "gc_seconds": 0.0}
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._latest: Head | None = None
        self.versions = VersionMap()  # chunk -> its newest version, known without I/O
        self.carried = Carried()  # what a listing must find (the head's records name it)
        self._needs_cleanup = True
        self._commits_since_gc = 0
        self._gc = gc.Collector(self)  # runs the GC passes: gc.py
        self.cleanups = 0  # debris cleanups run: a spilled transaction checks none ran since
        self.pins = Pins()
        self._window = locate.PrefetchWindow(self.limits.prefetch_chunks)
        self.in_place = InPlaceWrites(self)  # when commits overwrite chunks in place
        # -- two-phase commit (dolite/pages/twophase.py) --
        self.objects = objects  # other objects of the namespace: where 2PC decisions are read
        self.stage: twophase.Stage | None = None  # set: the next commit stops at "prepared"
        self.in_doubt: twophase.Prepared | None = None  # prepared here, decision pending

    # -- readers' pins: garbage collection keeps every version a reader here may need --

    def pin(self, head: Head) -> None:
        self.pins.add(head.version)

    def pinned(self, read: Callable[[], Head] | None = None) -> Head:
        """``read()`` (default: the newest head), pinned (:meth:`Pins.while_reading`)."""
        return self.pins.while_reading(read or self.current_head)

    def unpin(self, head: Head) -> None:
        self.pins.remove(head.version)

    # -- lifecycle -----------------------------------------------------------------

    def exists(self) -> bool:
        return HEAD in self.storage.get([HEAD])

    def create(self, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
               retention: float = DEFAULT_RETENTION) -> Head:
        """Create the empty database (version 0), or return the existing head."""
        max_chunk = self.limits.max_value_bytes - CHUNK_HEADER_BYTES
        if chunk_size < 512 or chunk_size > max_chunk or chunk_size % 512:
            raise ValueError(f"chunk_size must be a multiple of 512 between 512 and {max_chunk}")
        head = Head(version=0, size=0, chunk_size=chunk_size, retention=retention, time=time.time(),
                    id=new_incarnation())
        try:
            self.storage.commit({HEAD: head.encode()}, expect={HEAD: None})
        except Conflict:
            return self.read_head()
        self._observe(head)
        return head

    def read_head(self) -> Head:
        """The committed head, read from storage."""
        latest = self._latest  # before the read: a commit landing meanwhile is no "going back"
        raw = self.storage.get([HEAD]).get(HEAD)
        if raw is None:
            raise DatabaseNotFound(f"database {self.name!r} does not exist")
        head = Head.decode(raw, self.name)
        if latest is None:  # first look in this process: is the head current?
            integrity.check_log_not_ahead(self.storage, self.name, head)
        elif latest.id == head.id and head.version < latest.version:
            raise CorruptChunk(f"{self.name}: the head went back from v{latest.version} to "
                               f"v{head.version}: {integrity.ROLLED_BACK}")
        self._observe(head)
        return head

    def current_head(self) -> Head:
        """The newest head: known without a round trip while we hold the lease, since
        nobody else can commit then."""
        return self.known_newest() or self.read_head()

    def known_newest(self) -> Head | None:
        """The newest head if known without I/O (we hold the lease), else None."""
        latest = self._latest
        if latest is not None and self.lease.valid():
            return latest
        return None

    def still_newest(self, identity: tuple[int, int] | None) -> bool:
        """True if ``identity`` (a Head.identity) is known, without any I/O, to be the
        newest: we hold the lease (nobody else can commit) and have committed nothing since."""
        latest = self._latest
        return (latest is not None and latest.identity == identity
                and self.lease.valid_until > time.time())

    def _observe(self, head: Head) -> None:
        with self._lock:
            latest = self._latest
            if latest is not None and latest.id != head.id:
                self.cache.clear()  # the database was dropped and created again
                latest = None
            if latest is None or head.version > latest.version:
                if head.identity != self.versions.at:  # a persistent cache may know them
                    self.versions.replace(head, self.cache.versions(head))
                self._latest = head

    # -- reads ---------------------------------------------------------------------

    def read_chunk(self, head: Head, chunk: int, *, cache: bool = True) -> bytes:
        """The chunk's stored bytes as of ``head`` (may be shorter than a chunk; the
        caller pads and masks past ``head.size``). ``cache=False`` for one-pass scans."""
        if chunk * head.chunk_size >= head.size:
            return b""
        self._window.read(chunk)
        held = inline.as_of(head, chunk, self.name)
        if held is not None:
            return held
        version = self.versions.version_for(head, chunk)
        if version is not None:
            data = self.cache.get((head.id, chunk, version))
            if data is not None:
                return data
            raw = locate.stored_at(self.storage, self.name, head, chunk, version)
        else:
            version, raw = self._find(head, chunk)
        data = decode_chunk(raw, chunk, version, self.name)
        self.stats["chunks_read"] += 1
        self.stats["bytes_read"] += len(raw)
        if cache:
            self.cache.put((head.id, chunk, version), data)
        self.versions.found(head, chunk, version)
        return data

    def chunk_as_of(self, head: Head, chunk: int) -> bytes:
        """Exactly the file's bytes of ``chunk`` as of ``head`` (zeros where a shorter
        stored chunk ends; short only for the file's last chunk). Not cached: for scans."""
        valid = min(head.chunk_size, head.size - chunk * head.chunk_size)
        data = self.read_chunk(head, chunk, cache=False)[:valid]
        return data + bytes(valid - len(data))

    def version_head(self, version: int, current: Head | None = None) -> Head:
        """The head as it was at ``version`` (for point-in-time reads), from its commit
        record. Raises SnapshotExpired once that version is past the retention window."""
        current = current or self.read_head()
        if version == current.version:
            return current
        if not 0 <= version < current.version:
            raise SnapshotExpired(f"{self.name}: no version {version} (current is {current.version})")
        record = log.read_record(self.storage, self.name, current, version)
        if record is None:
            raise SnapshotExpired(f"{self.name}: version {version} is older than the retention window")
        return replace(current, version=version, size=record.size, time=record.time, recent=())

    def _find(self, head: Head, chunk: int) -> tuple[int, bytes]:
        """The newest stored version of ``chunk`` not newer than ``head``, with the
        chunks after it when misses run in sequence (pages/locate.py), cached."""
        window = self._window.next(chunk)
        if window > 1:
            found = self._prefetch(head, chunk, window)
            if found is not None:
                return found
        found = locate.newest_version(self.storage, self.name, head, chunk)
        if found is None:
            raise integrity.missing_chunk(self.storage, self.name, head, chunk, None)
        integrity.check_not_lost(self.storage, self.name, head, chunk, found[0], self.carried.of(head))
        return found

    def _prefetch(self, head: Head, chunk: int, count: int) -> tuple[int, bytes] | None:
        newest, complete_below = locate.following_versions(self.storage, self.name, head, chunk, count)
        self._window.fetched([c for c in newest if c != chunk and c < complete_below])
        written = self.carried.of(head)  # a version older than this one is not the newest: lost
        for c, (v, raw) in newest.items():
            fresh = c != chunk and c < complete_below and v >= written.get(c, -1)
            if fresh and self.cache.get((head.id, c, v)) is None:
                try:
                    data = decode_chunk(raw, c, v, self.name)
                except CorruptChunk:
                    continue  # reported if and when that chunk itself is read
                self.cache.put((head.id, c, v), data)
                self.stats["chunks_read"] += 1
                self.stats["bytes_read"] += len(raw)
                self.versions.found(head, c, v)
        if chunk < complete_below and chunk in newest:
            integrity.check_not_lost(self.storage, self.name, head, chunk, newest[chunk][0], written)
            return newest[chunk]
        return None

    # -- commits -------------------------------------------------------------------

    def commit(self, base: Head, chunks: dict[int, bytes], size: int, *, own_pins: int = 0,
               spilled: Iterable[int] = (), spilled_at: int | None = None) -> Head:
        """Commit ``chunks`` (index -> full chunk bytes) and the new file ``size`` on top of
        ``base``. Raise Conflict if ``base`` is no longer the head or the lease was lost.
        ``spilled``: chunks already written by :meth:`spill` (when ``cleanups`` was
        ``spilled_at``), part of this version too."""
        new = self.commit_stream(base, sorted(chunks), chunks.items(), size, own_pins=own_pins,
                                 spilled=spilled, spilled_at=spilled_at)
        for c, data in chunks.items():
            self.cache.put((new.id, c, new.version), bytes(data))
        return new

    def spill(self, base: Head, chunks: dict[int, bytearray], part: int) -> int:
        """Write ``chunks`` early, as uncommitted versions of ``base.version + 1``, so a big
        transaction's memory stays bounded. Their log record part (``log/<v>#s<part>``) is
        written first, so a crash or rollback leaves removable debris. Returns the cleanup
        count to pass to :meth:`commit` as ``spilled_at``."""
        with self._commit_lock:
            self._hold_lease()
            new = base.advance(base.size, time.time())
            record = log.spill_record(new, part, list(chunks))
            try:
                self.storage.commit({**record, **self.lease.renewal()}, expect={LEASE: self.lease.raw})
                self.lease.renewed()
                self._fenced().write_chunks(new.version, chunks.items())
            except BaseException:
                self._needs_cleanup = True
                raise
            return self.cleanups

    def forget_spilled(self) -> None:
        """A spilled transaction rolled back: its chunks are removed before the next write."""
        self._needs_cleanup = True

    def commit_stream(self, base: Head, chunk_ids: list[int], chunks: Iterable[tuple[int, bytes]],
                      size: int, *, own_pins: int = 0, spilled: Iterable[int] = (),
                      spilled_at: int | None = None) -> Head:
        """Commit chunks produced one by one (``chunk_ids`` names them all in advance, for
        the log record), so a large import never holds the whole file in memory.
        ``own_pins``: the caller's pins of ``base`` (pages/in_place.py)."""
        with self._commit_lock:
            self._hold_lease()
            if spilled_at is not None and self.cleanups != spilled_at:
                raise Conflict(f"database {self.name!r}: the write lease lapsed during a large "
                               "transaction and its spilled pages were removed; run it again")
            new = base.advance(size, time.time())
            expect, renewal = {HEAD: base.encode(), LEASE: self.lease.raw}, self.lease.renewal()
            with self.in_place.window(base, chunk_ids, own_pins, spilled_at is not None) as in_place:
                # A spilled version's record has parts in rows already: its own goes there too.
                new, written, in_place = self._write_version(base, new, chunk_ids, chunks, renewal, expect,
                                                             moves_head=True, folds=spilled_at is None,
                                                             in_place=in_place, spilled=spilled)
                self.lease.renewed()
                self._after_commit(base, new, [*chunk_ids, *spilled], written, in_place)
        self.collect_garbage_if_due()
        return new

    def _write_version(self, base: Head, new: Head, chunk_ids: list[int],
                       chunks: Iterable[tuple[int, bytes]], last: dict[str, bytes],
                       expect: dict[str, bytes | None], *, moves_head: bool,
                       folds: bool = True, in_place: frozenset[int] = frozenset(),
                       spilled: Iterable[int] = ()) -> tuple[Head, list[int], frozenset[int]]:
        """Write ``new``'s chunks and log record, and ``last`` in the final call, checked
        against ``expect`` (every earlier call is fenced by the lease); with ``moves_head``
        that call also writes the new head. Returns the head as written (a single-call
        commit folds its record into it: pages/log.py) and [chunks, bytes] written
        (``spilled``: chunks written early, part of the version too). On
        failure the store forgets its head and cleans up before its next write. Shared by
        commits and 2PC prepares (pages/twophase.py, which moves the head later)."""
        one_call = len(chunk_ids) + len(last) + 3 <= self.limits.max_keys_per_call
        try:
            if folds and moves_head and one_call:
                superseded = self.versions.superseded(base, chunk_ids)
                new, rows = log.folded(base, new, chunk_ids, superseded)
                new, chunks, held = inline.one_call(base, new, chunk_ids, chunks, in_place, superseded, self.limits)
                rows = {**rows, **held}
                # No row names these chunks before they land, so none may exist yet: one
                # that does was written past a head that then went back (see _find).
                expect = {**expect, **dict.fromkeys(chunk_key(c, new.version) for c in chunk_ids)}
            else:
                new, held = inline.carried(base, new, [*chunk_ids, *spilled], moves_head=moves_head)
                rows = {**held, **log.flushed(base), **log.record_writes(new, chunk_ids, base.size, self.limits)}
                # Several calls: in place only the chunks no head has yet (pages/in_place.py).
                in_place = frozenset(c for c in in_place if c >= base.chunk_count)
            if moves_head:
                last = {**last, HEAD: new.encode()}
            if len(chunk_ids) + len(rows) + len(last) <= self.limits.max_keys_per_call:
                values = dict(encoded_chunks(new.version, chunks, in_place=in_place))
                self.storage.commit({**values, **rows, **last}, expect=expect)
                written = [len(values), sum(map(len, values.values()))]
            else:
                self.storage.commit(rows, expect={LEASE: self.lease.raw})
                written = list(self._fenced().write_chunks(new.version, chunks, in_place))
                self.storage.commit(last, expect=expect)
        except Conflict as exc:
            self.stats["conflicts"] += 1
            self.lease.forget()
            with self._lock:
                self._latest = None
            self._needs_cleanup = True
            integrity.check_conflict_explained(self.storage, self.name, expect, new)
            raise Conflict(
                f"database {self.name!r}: commit of v{new.version} refused: another writer "
                "committed or took over the write lease"
            ) from exc
        except BaseException as exc:
            with self._lock:
                self._latest = None  # the commit may have landed unheard: ask storage
            self._needs_cleanup = True
            if in_place and isinstance(exc, Exception) and landed(self, base, new, last.get(LEASE, self.lease.raw)):
                self._needs_cleanup = False  # its head landed: nothing to clean
                return new, [len(chunk_ids), 0], in_place
            raise
        return new, written, in_place

    def collect_garbage_if_due(self) -> None:
        """A GC pass every ``GC_EVERY`` versions, once the head has moved: on a thread of
        its own where storage calls are round trips (``Limits.remote``), else here. The
        commit has landed, so nothing here may turn it into an error (the caller would
        retry and apply it twice)."""
        if self._commits_since_gc >= GC_EVERY or self._gc.behind:
            self._gc.start()

    def wait_for_gc(self) -> None:
        """Return once no background GC pass is in flight."""
        self._gc.wait()

    def ensure_writable(self) -> None:
        """Hold the write lease (raise LeaseHeld if a live writer elsewhere has it)."""
        with self._commit_lock:
            self._hold_lease()

    def _hold_lease(self) -> None:
        if self.in_doubt is not None:
            raise twophase.in_doubt_here(self)
        if self.lease.valid() and not self._needs_cleanup:
            return
        newly_taken = self.lease.acquire()
        if newly_taken or self._needs_cleanup:
            if not newly_taken:
                # A request of the failed commit may still arrive: fence it out first,
                # or a late head write could land on top of the debris we delete.
                self.lease.new_term()
            head = twophase.resolve_in_doubt(self, self._fenced(), self.read_head())
            self.in_place.look_at_holds(head)
            gc.remove_uncommitted(self._fenced(), head)
            self._needs_cleanup = False
            self.cleanups += 1  # uncommitted versions (spilled chunks too) are gone

    def _fenced(self) -> gc.Fenced:
        return gc.Fenced(self.storage, self.name, self.lease.raw)

    def _after_commit(self, base: Head, new: Head, chunk_ids: list[int], written: list[int],
                      in_place: Iterable[int] = ()) -> None:
        with self._lock:
            self.versions.committed(base, new, chunk_ids, in_place)  # before the head is known
            self._latest = new
        self.stats["commits"] += 1
        self.stats["chunks_written"] += written[0]
        self.stats["bytes_written"] += written[1]
        self._commits_since_gc += 1

    def collect_garbage(self, now: float | None = None) -> int:
        """Delete chunk versions superseded before the retention horizon (one pass, taking
        the write lease if need be). Returns the number of keys deleted."""
        return self._gc.run_pass(now if now is not None else time.time(), acquire=True)

    def close(self) -> None:
        """Give the write lease back so other processes need not wait for it, and leave
        the version map to the next process opening this head (persistent cache only).
        A GC pass in flight finishes first: it deletes under our lease."""
        self.wait_for_gc()
        if self.cache.disk is not None:
            self.cache.save_versions(*self.versions.snapshot())
        with self._commit_lock:
            self.lease.release()

    def release_lease(self) -> None:
        """Give the write lease back now, keeping the store open (optimistic writers hold
        it only while they commit: dolite/sql/optimistic.py), after a GC pass in flight."""
        self.wait_for_gc()
        with self._commit_lock:
            self.lease.release()
