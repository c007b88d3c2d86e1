"""SQLite's file locks between connections of one process.

Readers pin a committed version and writers buffer their pages privately until commit, so
(as in WAL mode) readers never block a writer and a writer never blocks readers: only
writers exclude each other. Across processes the write lease (dolite/pages/lease.py)
decides who may write.
"""

from __future__ import annotations

import threading

NONE, SHARED, RESERVED, PENDING, EXCLUSIVE = range(5)


class LockTable:
    """Which file handle (if any) is the one writer of a database."""

    def __init__(self):
        self._writer: int | None = None
        self._mutex = threading.Lock()

    def lock(self, owner: int, level: int) -> bool:
        """Raise ``owner`` to ``level``; False means busy (another handle is writing)."""
        if level < RESERVED:
            return True
        with self._mutex:
            if self._writer not in (None, owner):
                return False
            self._writer = owner
            return True

    def unlock(self, owner: int, level: int) -> None:
        """Lower ``owner`` to ``level`` (SHARED or NONE)."""
        if level < RESERVED:
            with self._mutex:
                if self._writer == owner:
                    self._writer = None

    def reserved_by_other(self, owner: int) -> bool:
        with self._mutex:
            return self._writer not in (None, owner)
