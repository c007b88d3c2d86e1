"""The APSW VFS: SQLite's file calls, mapped literally onto the page store.

The main database file is a :class:`~dolite.pages.PagedFile`; journals and temporary
files live in memory (a commit is atomic in storage, so a journal is never needed to
recover after a crash). SQLite's lock calls drive transactions: the first SHARED lock pins
a version, RESERVED takes the write lease, xSync commits.

SQLite keeps its page cache across transactions as long as the file change counter (bytes
24-27 of page 1) reads the same when it next takes a SHARED lock. A connection in
``locking_mode=EXCLUSIVE`` bumps that counter once per lock, not once per commit, so the
stored counter cannot tell other connections that a new version exists. The VFS therefore
shows, in place of the stored counter, one derived from the pinned head's identity
(incarnation and version): every commit, by anyone, changes what every other connection
reads there, and each drops its cache exactly when it must.

A storage failure travels as the ``__cause__`` of the APSW exception SQLite reports.
"""

from __future__ import annotations

import contextlib
import itertools
import threading

import apsw

from dolite.errors import Conflict, CorruptChunk, DatabaseNotFound, DoliteError
from dolite.sql.pep249 import ProgrammingError
from dolite.sql.locks import NONE, PENDING, RESERVED, SHARED, LockTable
from dolite.pages import PagedFile, PageStore
from dolite.pages.format import HEAD, Head
from dolite.storage.base import Namespace

OPEN = apsw.mapping_open_flags
_IOCAP = apsw.mapping_device_characteristics
_names = itertools.count(1)
CHANGE_COUNTER = 24  # page 1: file change counter, 4 bytes big-endian
VERSION_VALID_FOR = 92  # page 1: the change counter the in-header page count is valid for


def _fail(error: DoliteError) -> Exception:
    """The apsw exception SQLite reports for ``error`` (its ``__cause__`` once raised)."""
    if isinstance(error, Conflict):
        return apsw.BusyError(str(error))
    if isinstance(error, CorruptChunk):
        return apsw.CorruptError(str(error))
    if isinstance(error, DatabaseNotFound):
        return apsw.CantOpenError(str(error))
    return apsw.IOError(str(error))


# SQLite retries a busy xLock through its busy handler and then reports a plain "database
# is locked": the exception chain of the last try is lost there, so the reason a lock
# could not be had (LeaseHeld) is kept per thread, set and cleared by every xLock.
_lock_refusal = threading.local()


def dolite_cause(exc: BaseException) -> DoliteError | None:
    """The storage error behind an APSW exception, if a VFS call failed with one."""
    seen, link = 0, exc
    while link is not None and seen < 8:
        if isinstance(link, DoliteError):
            return link
        link, seen = link.__cause__ or link.__context__, seen + 1
    if isinstance(exc, apsw.BusyError):
        refusal, _lock_refusal.error = getattr(_lock_refusal, "error", None), None
        return refusal
    return None


def change_counter(head: Head) -> int:
    return (head.id + head.version) & 0xFFFFFFFF


def with_change_counter(data: bytes, offset: int, counter: int) -> bytes:
    """``data`` read at ``offset`` of the file, showing ``counter`` as the change counter.
    Where the stored header says its page count is valid (version-valid-for equals the
    counter), it stays valid; where it says invalid, it stays invalid."""
    at = CHANGE_COUNTER - offset
    if at < 0 or at + 4 > len(data):
        return data
    out = bytearray(data)
    value = counter.to_bytes(4, "big")
    valid_at = VERSION_VALID_FOR - offset
    if valid_at + 4 <= len(out):
        if out[valid_at:valid_at + 4] == out[at:at + 4]:
            out[valid_at:valid_at + 4] = value
        elif out[valid_at:valid_at + 4] == value:
            out[valid_at:valid_at + 4] = (counter ^ 1).to_bytes(4, "big")
    out[at:at + 4] = value
    return bytes(out)


class Database:
    """What connections to one database in this process share."""

    def __init__(self, store: PageStore):
        self.store = store
        self.locks = LockTable()
        self.connections = 0


class DoliteVFS(apsw.VFS):
    """One VFS per storage namespace; database names are object names."""

    def __init__(self, namespace: Namespace, *, cache_bytes: int = 64 << 20, lease_ttl: float = 30.0):
        self.namespace = namespace
        self.vfs_name = f"dolite-{next(_names)}"
        self.store_options = {"cache_bytes": cache_bytes, "lease_ttl": lease_ttl}
        self.databases: dict[str, Database] = {}
        self.memory_files: dict[str, MemoryFile] = {}
        self._lock = threading.Lock()
        super().__init__(self.vfs_name, base="")

    def attach(self, name: str) -> Database:
        """The shared state of database ``name``, held until a matching :meth:`detach`."""
        with self._lock:
            db = self.databases.get(name)
            if db is None:
                store = PageStore(self.namespace.object(name), name, objects=self.namespace.object,
                                  **self.store_options)
                db = self.databases[name] = Database(store)
            db.connections += 1
            return db

    def detach(self, db: Database) -> None:
        """Drop one hold; the last one frees the cache and gives the write lease back."""
        with self._lock:
            db.connections -= 1
            if db.connections > 0:
                return
            if self.databases.get(db.store.name) is db:
                del self.databases[db.store.name]
        db.store.close()

    def _attached(self, name: str) -> Database:
        db = self.databases.get(name)
        if db is None:
            raise DatabaseNotFound(f"database {name!r} is not open through dolite.connect")
        return db

    def xOpen(self, name, flags):
        path = name.filename() if isinstance(name, apsw.URIFilename) else name
        if flags[0] & OPEN["SQLITE_OPEN_MAIN_DB"]:
            try:
                db = self._attached(path)
                if not db.store.exists():
                    raise DatabaseNotFound(f"database {path!r} does not exist")
            except DoliteError as exc:
                raise _fail(exc) from exc
            optimistic = isinstance(name, apsw.URIFilename) and \
                name.uri_parameter("concurrency") == "optimistic"
            return DatabaseFile(db, optimistic=optimistic)
        if flags[0] & OPEN["SQLITE_OPEN_WAL"]:
            raise apsw.CantOpenError("dolite commits atomically in storage; WAL mode is not supported")
        file = MemoryFile(getattr(MemoryFile.quota_of_thread, "quota", None))
        if path is not None:
            with self._lock:
                self.memory_files[path] = file
        return file

    def xAccess(self, pathname, flags):
        if pathname in self.memory_files:
            return True
        if pathname.endswith(("-journal", "-wal", "-shm")):
            return False  # never a hot journal: commits are atomic in storage
        return HEAD in self.namespace.object(pathname).get([HEAD])

    def xDelete(self, filename, syncdir):
        with self._lock:
            self.memory_files.pop(filename, None)

    def xFullPathname(self, name):
        return name


class DatabaseFile:
    """The main database file of one SQLite connection.

    ``optimistic`` (dolite/sql/optimistic.py; the ``concurrency=optimistic`` URI parameter):
    the connection becomes a writer - lock table and write lease - only while it commits
    (SQLite's PENDING/EXCLUSIVE lock), not from its first write (RESERVED). At that point a
    head that moved since the pin fails the commit with Conflict at once (the caller rebases),
    and the lease is given back as soon as the lock drops, so optimistic writers in other
    processes wait only for each other's commits.
    """

    def __init__(self, db: Database, *, optimistic: bool = False):
        self.db = db
        self.file = PagedFile(db.store)
        self.file.volatile = (range(CHANGE_COUNTER, CHANGE_COUNTER + 4),
                              range(VERSION_VALID_FOR, VERSION_VALID_FOR + 4))
        self.level = NONE
        self.owner = id(self)
        self.optimistic = optimistic
        self.writer_level = PENDING if optimistic else RESERVED

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except DoliteError as exc:
            raise _fail(exc) from exc

    def xRead(self, amount, offset):
        data = self._call(self.file.read, amount, offset)
        head = self.file.head
        if offset < CHANGE_COUNTER + 4 and head is not None and 0 not in self.file.dirty:
            return with_change_counter(data, offset, change_counter(head))
        return data

    def xWrite(self, data, offset):
        self._call(self.file.write, data, offset)

    def xTruncate(self, newsize):
        self._call(self.file.truncate, newsize)

    def xSync(self, flags):
        self._call(self.file.commit)

    def xFileSize(self):
        if self.file.head is None:
            return self._call(lambda: self.db.store.current_head().size)
        return self.file.size

    def xLock(self, level):
        _lock_refusal.error = None
        if not self.db.locks.lock(self.owner, self._table_level(level)):
            raise apsw.BusyError("database is locked by another connection in this process")
        try:
            if self.level == NONE:
                self._call(self.file.begin)
            if level >= self.writer_level and self.level < self.writer_level:
                self._call(self._become_writer)
        except BaseException as exc:
            _lock_refusal.error = dolite_cause(exc)
            self.db.locks.unlock(self.owner, self._table_level(self.level))
            if self.level == NONE:
                self.file.end()
            raise
        self.level = level

    def _table_level(self, level: int) -> int:
        """The level to claim in the process's lock table: below the writer level, a reader."""
        return level if level >= self.writer_level else min(level, SHARED)

    def _release_lease(self) -> None:
        # Failing here would fail SQLite's unlock; a lease not given back just expires.
        with contextlib.suppress(DoliteError):
            self.db.store.release_lease()

    def _become_writer(self) -> None:
        self.db.store.ensure_writable()
        if self.file.refresh_needed():
            error = Conflict(f"database {self.db.store.name!r} changed since this transaction began")
            if self.optimistic:
                # Not BusyError: SQLite would retry this lock in its busy handler for the
                # whole timeout. An I/O error fails the COMMIT and rolls it back at once.
                self._release_lease()
                raise apsw.IOError(str(error)) from error
            raise error

    def xUnlock(self, level):
        if self.level >= RESERVED and level < RESERVED and self.file.pending:
            if self.file.only_shrunk:
                # VACUUM truncates after its last sync: that shrink belongs to the
                # committed transaction. (Nothing to report an error to here; on failure
                # the file keeps its old length, which SQLite ignores past its header.)
                with contextlib.suppress(DoliteError):
                    self.file.commit()
            else:
                # Other unsynced writes at the end of a write transaction are a rollback's.
                self.file.discard()
        if level == NONE:
            self.file.end()
        if self.optimistic and self.level >= self.writer_level > level:
            self._release_lease()  # (an optimistic writer holds it only to commit)
        self.db.locks.unlock(self.owner, level)
        self.level = level

    def xCheckReservedLock(self):
        return self.db.locks.reserved_by_other(self.owner)

    def xFileControl(self, op, ptr):
        if op == apsw.SQLITE_FCNTL_PRAGMA:
            pragma = apsw.VFSFcntlPragma(ptr)
            if pragma.name.lower() == "synchronous" and (pragma.value or "").strip("'\"").lower() in ("off", "0"):
                # Commits happen when SQLite syncs; without syncs nothing would be stored.
                pragma.result = "dolite: synchronous=OFF is not supported (commits are made at sync)"
                raise apsw.SQLError(pragma.result)
        return False

    def xSectorSize(self):
        return 4096

    def xDeviceCharacteristics(self):
        return _IOCAP["SQLITE_IOCAP_SAFE_APPEND"] | _IOCAP["SQLITE_IOCAP_POWERSAFE_OVERWRITE"]

    def xClose(self):
        if self.level != NONE:
            self.xUnlock(NONE)
        self.file.end()


class MemoryFile:
    """A journal or temporary file held in memory.

    If a quota was set for the opening thread (``MemoryFile.quota_of_thread.quota``, an
    object with ``charge(delta_bytes)`` that raises ``apsw.FullError`` past its limit), the
    file charges every byte it grows by and gives them back when it shrinks or closes, so
    the quota bounds the memory its temporary files hold at any time.
    """

    quota_of_thread = threading.local()

    def __init__(self, quota=None):
        self.data = bytearray()
        self.quota = quota

    def _resize(self, size: int) -> None:
        if self.quota is not None and size != len(self.data):
            self.quota.charge(size - len(self.data))  # raises before anything changes
        if size < len(self.data):
            del self.data[size:]
        else:
            self.data += bytes(size - len(self.data))

    def xRead(self, amount, offset):
        return bytes(self.data[offset: offset + amount])

    def xWrite(self, data, offset):
        end = offset + len(data)
        if end > len(self.data):
            self._resize(end)
        self.data[offset: end] = data

    def xTruncate(self, newsize):
        if newsize < len(self.data):
            self._resize(newsize)

    def xSync(self, flags):
        pass

    def xFileSize(self):
        return len(self.data)

    def xLock(self, level):
        pass

    def xUnlock(self, level):
        pass

    def xCheckReservedLock(self):
        return False

    def xFileControl(self, op, ptr):
        return False

    def xSectorSize(self):
        return 4096

    def xDeviceCharacteristics(self):
        return 0

    def xClose(self):
        self._resize(0)


_vfs_lock = threading.Lock()
_vfs_by_namespace: dict[int, DoliteVFS] = {}


def vfs_for(namespace: Namespace, **store_options) -> DoliteVFS:
    """The process-wide VFS of ``namespace`` (registered with SQLite on first use).
    Options given (not None) must match those the VFS already has: its page stores are
    shared by every connection in the process, so a second value cannot apply."""
    asked = {k: v for k, v in store_options.items() if v is not None}
    with _vfs_lock:
        vfs = _vfs_by_namespace.get(id(namespace))
        if vfs is None or vfs.namespace is not namespace:
            vfs = _vfs_by_namespace[id(namespace)] = DoliteVFS(namespace, **asked)
            return vfs
    for option, value in asked.items():
        if vfs.store_options[option] != value:
            raise ProgrammingError(
                f"{option}={value!r} cannot apply: this process already opened {namespace.url} "
                f"with {option}={vfs.store_options[option]!r} (it is shared by every connection "
                "to that storage in the process); pass the same value or leave it out")
    return vfs


