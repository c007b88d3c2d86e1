"""Memory bounds of hosted connections: temporary-file quotas and SQLite's heap limit.

Hosted connections keep temporary data (sorts, temp indexes, materialized subqueries,
statement journals) in temporary *files* (``PRAGMA temp_store=FILE``), which the VFS
holds in memory as :class:`~dolite.sql.vfs.MemoryFile`. Each file charges a
:class:`TempQuota`: one per connection, whose parent is one per process. Past either
limit the write fails (``SQLITE_FULL``) and the request is answered 400
``resource_limit``, its transaction rolled back. Everything SQLite itself allocates (page
caches, the sorter's in-memory run, values) is bounded process-wide by
``sqlite3_hard_heap_limit64``; the soft limit below it makes page caches give memory back
first.

A connection's SQLite heap (~150 KiB: lookaside, schema, page cache) is freed in small
blocks when the host closes it, and glibc's allocator keeps such memory in the process
unless asked: :func:`give_back_freed_memory` asks, after the host has closed idle ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Iterator

import apsw

from dolite.server.objects.errors import RequestError
from dolite.sql.vfs import MemoryFile


class TempQuota:
    """Bytes held by temporary files, at most ``limit`` (and within ``parent``'s).

    Invariant: ``used`` is the sum of the sizes of the live files charged to this quota.
    ``tripped`` says a charge was refused since :meth:`reset_trip`."""

    def __init__(self, limit: int, parent: TempQuota | None = None):
        self.limit = limit
        self.parent = parent
        self.used = 0
        self.tripped = False
        self._lock = threading.Lock()

    def charge(self, delta: int) -> None:
        """Add ``delta`` bytes (negative gives back); ``apsw.FullError`` past the limit,
        and then nothing is charged."""
        with self._lock:
            if delta > 0 and self.used + delta > self.limit:
                self.tripped = True
                raise apsw.FullError(f"temporary storage over its limit of {self.limit} bytes")
            self.used += delta
        if self.parent is not None:
            try:
                self.parent.charge(delta)
            except apsw.FullError:
                with self._lock:
                    self.used -= delta
                    self.tripped = True
                raise

    def reset_trip(self) -> None:
        self.tripped = False


def _caused_by(exc: BaseException | None, kind: type) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def bounded(quota: TempQuota) -> Iterator[None]:
    """Charge temporary files opened on this thread to ``quota`` while the block runs;
    turn running out of temporary space or of SQLite's heap into 400 ``resource_limit``."""
    holder = MemoryFile.quota_of_thread
    previous = getattr(holder, "quota", None)
    holder.quota = quota
    quota.reset_trip()
    try:
        yield
    except Exception as exc:
        if quota.tripped or _caused_by(exc, apsw.FullError):
            raise RequestError(400, "resource_limit",
                               f"the request needed more than {quota.limit} bytes of temporary storage "
                               "(sorting, grouping, temporary indexes): nothing was changed; narrow it "
                               "down (LIMIT, an index) or ask for a higher --max-temp") from exc
        if _caused_by(exc, apsw.NoMemError):
            raise RequestError(400, "resource_limit", "SQLite ran out of its memory budget (--memory-budget) "
                               "running this request: nothing was changed") from exc
        raise
    finally:
        holder.quota = previous


def limit_sqlite_heap(hard_bytes: int) -> None:
    """Bound all memory SQLite allocates in this process (the soft limit, at 3/4, makes
    page caches shrink before allocations start to fail)."""
    apsw.hard_heap_limit(hard_bytes)
    apsw.soft_heap_limit(hard_bytes * 3 // 4)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None on another C library."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def give_back_freed_memory() -> bool:
    """Return the C heap's free pages to the operating system (glibc's ``malloc_trim``);
    whether the allocator could be asked. Takes a few ms on a large heap: call it after
    freeing much (closing idle connections), not per request."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
