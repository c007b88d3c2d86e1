"""Commits written in place: on a database that keeps no superseded versions (retention 0),
a single-call commit overwrites each chunk's in-place key (``c/<chunk>/~``) instead of
adding a version key, so rewriting a page costs one row written, not a put now and a
delete later (Cloudflare bills both). pages/locate.py has the readers' side.

A commit writes in place only when nothing can still need the version it overwrites:

- the database's retention is 0 (no point-in-time window), and the commit is one call
  (its chunks, its folded record and the head, atomically: never debris), or the chunk is
  past the end of the file the commit starts from (no head that a reader here or a newer
  one reads has it; a commit in several calls writes its log record first, so a crash's
  in-place writes are found and removed like its other debris);
- no reader in this process has a version pinned, other than the committing transaction's
  own pin of its base, and no new pin is taken until the call's outcome is known
  (:meth:`Pins.sole`): such a reader would find its chunk overwritten;
- no GC hold was seen (looked at when the lease is taken and on each GC pass): a backup or
  replica copying versions would otherwise lose them and start over.

A reader of another page store (another process, another namespace object) whose snapshot
needs a page rewritten since gets SnapshotExpired at once (with retention above 0 its
versions are kept that long).

A call whose outcome is unknown (an error other than a refusal) is resolved at once
(:func:`landed`): SQLite's rollback after it reads the base's pages, which the call may
have overwritten, so the store must know whether it landed before returning.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from dolite.errors import LeaseHeld, SnapshotExpired
from dolite.pages.format import HEAD, LEASE, Head
from dolite.pages.holds import any_fresh, read_holds

# Keys of a single-call commit besides its chunks: the head, a flushed batch of records,
# a lease renewal (pages/store.py ``_write_version``)
OTHER_KEYS = 3
COPY_ATTEMPTS = 3  # copies of a head tried while a writer elsewhere overwrites what they read
T = TypeVar("T")


class InPlaceWrites:
    """When one page store's commits may write in place."""

    def __init__(self, store):
        self.store = store
        self.holds_seen = True  # until looked at: a holder may exist

    def look_at_holds(self, head: Head) -> None:
        """Read whether any GC hold exists (when the lease is taken, retention 0 only)."""
        if head.writes_in_place:
            self.saw_holds(any_fresh(read_holds(self.store.storage, self.store.name), time.time()))

    def saw_holds(self, any_hold: bool) -> None:
        self.holds_seen = any_hold

    @contextmanager
    def window(self, base: Head, chunk_ids: list[int], own_pins: int, spilled: bool) -> Iterator[frozenset[int]]:
        """The chunks of a commit of ``chunk_ids`` on ``base`` that may be written in place.
        A commit in one call: all of them, if no other reader here has a version pinned (no
        new pin is taken until the block ends). A commit in several calls: those past the
        base's end, which neither it nor a newer head has (a crash leaves them as debris,
        removed with the rest: pages/gc.py), if no reader here pinned an older head."""
        store = self.store
        if not base.writes_in_place or self.holds_seen or spilled or not chunk_ids:
            yield frozenset()
        elif len(chunk_ids) + OTHER_KEYS <= store.limits.max_keys_per_call:
            with store.pins.sole(base.version, own_pins) as alone:
                yield frozenset(chunk_ids) if alone else frozenset()
        elif min(store.pins.versions(), default=base.version) >= base.version:
            yield frozenset(chunk_ids)  # of which the write keeps those past the end
        else:
            yield frozenset()


def landed(store, base: Head, new: Head, lease_after: bytes | None) -> bool:
    """Whether a commit call in place of ``new`` on ``base``, which failed without an
    answer, landed (``lease_after``: the lease's bytes if it did). If it did not, the
    lease moves to a new term first, so the call can no longer land late. False also when
    storage cannot tell: the caller's error then stands, and the usual cleanup follows."""
    for _attempt in range(2):
        try:
            now = store.storage.get([HEAD, LEASE])
            if now.get(HEAD) == new.encode() and now.get(LEASE) == lease_after:
                return True
            if now.get(HEAD) != base.encode() or now.get(LEASE) != store.lease.raw:
                return False  # something else moved: the cleanup before the next write sees to it
            store.lease.new_term()
            return False
        except LeaseHeld:
            continue  # the lease moved meanwhile: the call may have landed just now; look again
        except Exception:  # noqa: BLE001 - storage cannot tell: the caller's error stands
            return False
    return False


def again_if_overwritten(copy: Callable[[], T]) -> T:
    """``copy()`` (a full copy of one head: a backup, a replica's pull), started again from
    scratch, up to ``COPY_ATTEMPTS`` times in all, while a writer of another store
    overwrites in place what it reads (SnapshotExpired)."""
    for attempt in range(COPY_ATTEMPTS):
        try:
            return copy()
        except SnapshotExpired:
            if attempt + 1 == COPY_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
