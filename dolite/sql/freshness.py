"""Exclusive mode's trust in SQLite's page cache.

An exclusive connection keeps SQLite's page cache across transactions (the change counter
it sees only moves with its own locks: sql/vfs.py). That cache is valid while no one else
committed since it was filled: known without I/O while we hold the write lease (nobody else
can commit then), otherwise by one head read before each statement.

Read-only work takes the lease (a storage write) only once it is hot: more than
``HOT_STATEMENTS`` statements within half a lease period, when one lease write costs less
than a head read each. A cold lookup never writes.
"""

from __future__ import annotations

import contextlib
import time

from dolite.errors import DoliteError, LeaseHeld

HOT_STATEMENTS = 8


class CacheFreshness:
    """What one exclusive connection's page cache holds, as a head identity."""

    def __init__(self) -> None:
        # A head identity no newer than what the cache holds (None: nothing cached yet).
        # Never newer, so a commit by anyone else is never missed.
        self.seen: tuple[int, int] | None = None
        self._unleased = (0.0, 0)  # (since, statements) that read the head without the lease

    def stale(self, store, in_transaction: bool) -> bool:
        """Before a statement: True if the cache must be dropped (someone else committed)."""
        if store.still_newest(self.seen):
            return False  # we hold the lease and nobody committed since: the common case
        if in_transaction:
            return False
        try:
            if self._hot(store.lease.ttl):
                with contextlib.suppress(LeaseHeld):
                    store.ensure_writable()
            identity = store.current_head().identity
        except DoliteError:
            return False  # the statement itself will report the storage error
        stale = self.seen is not None and identity != self.seen
        self.seen = identity  # taken before the statement pins: never newer than it
        return stale

    def wrote(self, store) -> None:
        """After a statement that may have committed: our own commit is what the cache
        now holds, known for sure only while we hold the lease (else check next time)."""
        latest = store.known_newest()
        self.seen = latest.identity if latest is not None else (-1, -1)

    def forget(self) -> None:
        """The cache was dropped (a new SQLite connection)."""
        self.seen = None

    def _hot(self, ttl: float) -> bool:
        now = time.monotonic()
        since, count = self._unleased
        if now - since > ttl / 2:
            since, count = now, 0
        self._unleased = (since, count + 1)
        return count + 1 > HOT_STATEMENTS
