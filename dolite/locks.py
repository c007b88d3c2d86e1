"""SQLite's file-locking protocol between connections of one process.

Across processes the write lease (dolite/pages/lease.py) decides who may write; inside a
process, connections to the same database coordinate here exactly as SQLite's unix VFS
does between file descriptors: many SHARED, one RESERVED, PENDING blocks new readers,
EXCLUSIVE needs the readers gone.
"""

from __future__ import annotations

import threading

NONE, SHARED, RESERVED, PENDING, EXCLUSIVE = range(5)


class LockTable:
    """The lock state of one database, keyed by file handle."""

    def __init__(self):
        self._levels: dict[int, int] = {}
        self._pending_owner: int | None = None
        self._mutex = threading.Lock()

    def _others(self, owner: int) -> list[int]:
        return [level for who, level in self._levels.items() if who != owner and level > NONE]

    def lock(self, owner: int, level: int) -> bool:
        """Raise ``owner`` to ``level``; False means busy (try again later)."""
        with self._mutex:
            current = self._levels.get(owner, NONE)
            if level <= current:
                return True
            others = self._others(owner)
            if level == SHARED:
                if self._pending_owner not in (None, owner) or any(l >= PENDING for l in others):
                    return False
            elif level == RESERVED:
                if any(l >= RESERVED for l in others):
                    return False
            else:  # EXCLUSIVE, taking PENDING on the way
                if any(l >= RESERVED for l in others):
                    return False
                self._pending_owner = owner
                if others:
                    return False
                self._pending_owner = None
            self._levels[owner] = level
            return True

    def unlock(self, owner: int, level: int) -> None:
        """Lower ``owner`` to ``level`` (SHARED or NONE)."""
        with self._mutex:
            if self._pending_owner == owner:
                self._pending_owner = None
            if level == NONE:
                self._levels.pop(owner, None)
            elif self._levels.get(owner, NONE) > level:
                self._levels[owner] = level

    def reserved_by_other(self, owner: int) -> bool:
        with self._mutex:
            return any(l >= RESERVED for l in self._others(owner))
