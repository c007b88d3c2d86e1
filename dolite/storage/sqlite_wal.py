"""``sqlite:PATH`` — the embedded default: one SQLite database in WAL mode per object.

Why: a durable commit costs one fsync of SQLite's write-ahead log (WAL frames appended to
a file that is reused from its start after each checkpoint, so the sync rarely has file
metadata to write), where LMDB's commit costs two (data pages, then the meta page).
Measured on this machine (2 cores, ext4), 3 keys per commit like the page store's (a 4 KiB
chunk, the head, a log record): LMDB ~350 us, SQLite WAL with ``synchronous=FULL`` ~150-200
us. Through dolite (``dolite bench --quick --json``, two runs each), ``durable_commit`` is
0.59-0.60x native sqlite3 (WAL, ``synchronous=FULL``) on ``sqlite:``, 0.27-0.28x on ``lmdb:``.

Layout (see :mod:`dolite.storage.sqlite_files`): one file per object, not one per
namespace. Single-threaded both commit equally fast (~4,400 commits/s); 8 threads each
committing to its own object reach ~6,400-8,200 commits/s with a file each (independent
write locks and syncs, like Durable Objects) against ~3,400/s sharing one file. Idle
connections are closed beyond ``max_open`` (default 64) to bound file descriptors.

Checkpointing (:mod:`dolite.storage.sqlite_checkpoint`): once the WAL holds
``autocheckpoint`` pages (default 1000), a small commit checkpoints inline, as SQLite's
auto-checkpoint would; a big one (64 pages or more) leaves it to a background thread,
which runs it once the file sees no commit for a few milliseconds; past 16 times the
threshold (64 MiB) every commit checkpoints inline, so the WAL stays bounded. SQLite's auto-checkpoint, inside the commit that crosses
the threshold, cost a bulk commit about a third of its time; for single-row commits both
measured the same (~150 us mean).

Durability and power loss (SQLite's documented WAL guarantees with ``synchronous=FULL``):
``commit`` returns once its WAL frames, ending in a commit frame with the checksums of the
log so far, are fsynced. A crash or power cut:

- before that sync: on reopen SQLite ignores the incomplete frames (checksums): the commit
  never happened, nothing of it is visible;
- after it: the commit is in the WAL and is replayed for every reader (recovery);
- during a checkpoint (copying WAL pages into the database file, then syncing it): the
  WAL is only reset after the database file is synced, so a torn checkpoint is redone
  from the WAL on the next one;
- while a new object's file is created: the file holds no ``kv`` table yet or an empty
  one: the object reads as empty.

Writers in several processes share the files: each commit is ``BEGIN IMMEDIATE`` (waits up
to 30 s for another process's write lock), so compare-and-set ``expect`` is checked and
applied under the write lock: serializable. ``drop`` deletes an object's keys (its file
stays, emptied: another process may have it open) and returns the pages to the file
system (``auto_vacuum=INCREMENTAL``). A full file system raises :class:`StorageFull`
(SQLITE_FULL) and the transaction rolls back: nothing is written. A drop needs room for its
WAL frames too: the directory keeps a 1 MiB ballast file (``reserve.dolite``) that a drop
gives up when it finds the disk full (dolite/storage/space.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

import apsw

from dolite.errors import Conflict, InvalidURL, StorageError, StorageFull
from dolite.storage.base import Limits, check_commit, check_keys, key_range
from dolite.storage.sqlite_checkpoint import BIG_COMMIT_PAGES, INLINE_FACTOR, QUIET_S, Checkpointer, checkpoint
from dolite.storage.sqlite_files import BUSY_TIMEOUT_MS, SUFFIX, ObjectFile, file_name
from dolite.storage.space import Ballast

SQLITE_LIMITS = Limits(prefetch_chunks=0)
DEFAULT_MAX_OPEN = 64
DEFAULT_AUTOCHECKPOINT = 1000  # WAL pages (SQLite's default)
_UPSERT = "INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)"
log = logging.getLogger("dolite.storage")


class SqliteStorage:
    """One object's keys: the ``kv`` table of its own database file."""

    def __init__(self, namespace: SqliteNamespace, name: str):
        self._ns = namespace
        self._name = name
        self._file = namespace._file(file_name(name))
        self.limits = namespace.limits

    def get(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = check_keys(keys, self.limits, "get")
        with self._ns._using(self._file) as conn:
            if conn is None or not keys:
                return {}
            marks = ",".join("?" * len(keys))
            found = dict(conn.execute(f"SELECT k, v FROM kv WHERE k IN ({marks})", [k.encode() for k in keys]))
        return {k: found[k.encode()] for k in keys if k.encode() in found}

    def put(self, entries: Mapping[str, bytes]) -> None:
        self.commit(entries)

    def delete(self, keys: Iterable[str]) -> int:
        keys = check_keys(keys, self.limits, "delete")
        return self._write({}, keys, {})

    def list(self, *, start=None, end=None, prefix=None, limit=None, reverse=False) -> dict[str, bytes]:
        lo, hi = key_range(start, end, prefix)
        if (hi is not None and hi <= lo) or limit == 0:
            return {}
        where, args = "k >= ?", [lo.encode()]
        if hi is not None:
            where, args = where + " AND k < ?", [*args, hi.encode()]
        order = "DESC" if reverse else "ASC"
        sql = f"SELECT k, v FROM kv WHERE {where} ORDER BY k {order} LIMIT ?"
        with self._ns._using(self._file) as conn:
            if conn is None:
                return {}
            return {k.decode(): v for k, v in conn.execute(sql, [*args, -1 if limit is None else limit])}

    def commit(self, writes: Mapping[str, bytes], deletes: Iterable[str] = (), expect=None) -> None:
        if not isinstance(writes, Mapping):
            raise TypeError("writes must be a mapping of key to bytes")
        deletes, expect = check_commit(writes, deletes, expect, self.limits)
        self._write(writes, deletes, expect)

    def _write(self, writes: Mapping[str, bytes], deletes: list[str], expect: dict[str, bytes | None]) -> int:
        """Apply one batch in one write transaction; return how many ``deletes`` existed."""
        with self._ns._using(self._file, self._name if writes else None) as conn:
            if conn is None:  # no file: the object is empty, and nothing is written to it
                if any(value is not None for value in expect.values()):
                    raise Conflict(f"commit refused: object {self._name!r} is empty")
                return 0
            with _write_transaction(conn):
                for key, value in expect.items():
                    row = conn.execute("SELECT v FROM kv WHERE k = ?", (key.encode(),)).fetchone()
                    if (None if row is None else row[0]) != value:
                        raise Conflict(f"commit refused: {key!r} changed")
                deleted = 0
                for key in deletes:
                    conn.execute("DELETE FROM kv WHERE k = ?", (key.encode(),))
                    deleted += conn.changes()
                if writes:
                    conn.executemany(_UPSERT, [(k.encode(), bytes(v)) for k, v in writes.items()])
            self._ns._checkpoint_if_due(self._file, conn)
            return deleted


def _give_back_wal(conn: apsw.Connection) -> None:
    """Checkpoint the WAL into the (truncated) database file and cut the WAL to nothing, so
    a drop's room is free at once (best effort: another process reading the file may keep
    it, for up to a second, and then the next checkpoint does it)."""
    conn.set_busy_timeout(1000)
    try:
        conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_TRUNCATE)
    except apsw.BusyError:
        pass
    finally:
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)


@contextlib.contextmanager
def _write_transaction(conn: apsw.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (the write lock first: no upgrade that could fail busy) ...
    ``COMMIT``; rolled back on any error, so a refused or failed batch changes nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if not conn.in_transaction:
            raise
        conn.execute("ROLLBACK")
        raise


class SqliteNamespace:
    """A directory of per-object SQLite files."""

    def __init__(self, path: str, *, url: str | None = None, max_open: int = DEFAULT_MAX_OPEN,
                 autocheckpoint: int = DEFAULT_AUTOCHECKPOINT):
        self.path = os.path.abspath(path)
        self.url = url or f"sqlite:{path}"
        self.limits = SQLITE_LIMITS
        if os.path.exists(os.path.join(self.path, "data.mdb")):
            raise InvalidURL(f"{self.url!r}: {self.path} holds an LMDB store (data.mdb): "
                             f"open it with lmdb:{path}")
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"sqlite: cannot create {self.path}: {exc}") from exc
        self._max_open = max_open
        self._autocheckpoint = autocheckpoint
        self._lock = threading.Lock()  # guards the two dicts and ``_closed``
        self._files: dict[str, ObjectFile] = {}  # file name -> its (maybe closed) file
        self._open: OrderedDict[str, ObjectFile] = OrderedDict()  # least recently used first
        self._closed = False
        self.checkpointer = Checkpointer(self.path)
        self._ballast = Ballast(self.path)
        self._ballast.ensure()

    def _checkpoint_if_due(self, file: ObjectFile, conn: apsw.Connection) -> None:
        """After a commit (it has landed: nothing here raises), once the WAL holds
        ``autocheckpoint`` pages: a big commit, and the small calls right after one (the
        head write that ends a multi-call commit), leave the checkpoint to the checkpointer
        (up to ``INLINE_FACTOR`` times that); other commits checkpoint now, as SQLite would
        (a stream of single-row commits measured faster so than deferring)."""
        pages, added, file.wal_added = file.wal_pages, file.wal_added, 0
        now = file.last_commit = time.monotonic()
        if added >= BIG_COMMIT_PAGES:
            file.big_commit_at = now
        if not self._autocheckpoint or pages < self._autocheckpoint:
            return
        if pages < INLINE_FACTOR * self._autocheckpoint and now - file.big_commit_at < QUIET_S:
            self.checkpointer.request(file)
            return
        try:
            checkpoint(conn)
        except apsw.Error as exc:
            log.warning("sqlite: checkpoint of %s failed (retried after the next commit): %s", file.path, exc)

    def _file(self, name_of_file: str) -> ObjectFile:
        with self._lock:
            found = self._files.get(name_of_file)
            if found is None:
                found = ObjectFile(os.path.join(self.path, name_of_file))
                self._files[name_of_file] = found
            return found

    @contextlib.contextmanager
    def _using(self, file: ObjectFile, create_as: str | None = None) -> Iterator[apsw.Connection | None]:
        """Hold ``file``'s connection (None: no such object and ``create_as`` not given);
        SQLite errors come out as :class:`StorageError`, a full disk as :class:`StorageFull`."""
        try:
            with file.lock:
                if self._closed:
                    raise StorageError(f"sqlite: {self.path} is closed")
                conn = file.open(create_as)
                if conn is not None:
                    with self._lock:
                        self._open[file.path] = file
                        self._open.move_to_end(file.path)
                yield conn
        except apsw.FullError as exc:
            raise StorageFull(f"storage is full (SQLite: {exc}) writing {file.path}: nothing was "
                              f"written and reads keep working. Free disk space, or delete "
                              f"databases (`dolite rm`) (see docs/OPERATIONS.md)") from exc
        except apsw.Error as exc:
            raise StorageError(f"sqlite: {file.path}: {exc}") from exc
        self._trim()

    def _trim(self) -> None:
        """Close the least recently used idle connections beyond ``max_open`` (a file in
        use by another thread is skipped, never waited for)."""
        with self._lock:
            for path, file in list(self._open.items()):
                if len(self._open) <= self._max_open:
                    return
                if file.lock.acquire(blocking=False):
                    try:
                        file.close()
                    finally:
                        file.lock.release()
                    del self._open[path]

    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    def object(self, name: str) -> SqliteStorage:
        return SqliteStorage(self, name)

    def names(self) -> list[str]:
        names = []
        for entry in sorted(os.listdir(self.path)):
            if not entry.endswith(SUFFIX):
                continue
            with self._using(self._file(entry)) as conn:
                if conn is None:
                    continue
                row = conn.execute("SELECT (SELECT name FROM object), EXISTS (SELECT 1 FROM kv)").fetchone()
            if row[0] is not None and row[1]:
                names.append(row[0])
        return sorted(names)

    def drop(self, name: str) -> None:
        """Delete every key of ``name``. On a full file system the delete needs room for its
        WAL frames: the ballast file is given up for it (taken again when the store is next
        opened)."""
        self._ballast.retry_with_room(lambda: self._drop(name))

    def _drop(self, name: str) -> None:
        with self._using(self._file(file_name(name))) as conn:
            if conn is None:
                return
            with _write_transaction(conn):
                conn.execute("DELETE FROM kv")
            conn.execute("PRAGMA incremental_vacuum").fetchall()  # a row per page freed: step to the end
            _give_back_wal(conn)

    def close(self) -> None:
        from dolite.storage import forget_shared

        forget_shared(f"sqlite:{os.path.realpath(self.path)}")
        self.checkpointer.stop()
        with self._lock:
            self._closed = True
            files = list(self._open.values())
            self._open.clear()
        for file in files:
            with file.lock:
                file.close()


def open_url(url: str) -> SqliteNamespace:
    """``sqlite:PATH[?max_open=64][&autocheckpoint=1000]``; one namespace per directory per
    process. ``max_open``: connections kept open (each holds 3 descriptors); ``autocheckpoint``:
    WAL pages past which the WAL is checkpointed: inline after a small commit, on a background
    thread after a big one (0: only when the last connection closes)."""
    from dolite.storage import shared, url_options

    path, options = url_options(url)
    path = path.removeprefix("//")
    if not path:
        raise InvalidURL(f"{url!r}: sqlite URLs need a directory, e.g. sqlite:./data")
    unknown = set(options) - {"max_open", "autocheckpoint"}
    if unknown:
        raise InvalidURL(f"{url!r}: unknown sqlite option(s) {', '.join(sorted(unknown))}")
    max_open = _count(options.get("max_open", str(DEFAULT_MAX_OPEN)), "max_open", 1)
    autocheckpoint = _count(options.get("autocheckpoint", str(DEFAULT_AUTOCHECKPOINT)), "autocheckpoint", 0)
    real = os.path.realpath(path)
    return shared(f"sqlite:{real}", lambda: SqliteNamespace(path, url=url, max_open=max_open,
                                                            autocheckpoint=autocheckpoint),
                  {"max_open": max_open, "autocheckpoint": autocheckpoint})


def _count(value: str, name: str, least: int) -> int:
    if not value.isdigit() or int(value) < least:
        raise InvalidURL(f"option {name}={value!r} is not a whole number >= {least}")
    return int(value)
