"""Checkpoints of a ``sqlite:`` store's WAL files, off the commit path.

SQLite's own auto-checkpoint runs inside the commit that crosses ``wal_autocheckpoint``
pages: that commit also copies the whole WAL into the database file and syncs it. For a
bulk commit that is about a third of its time (7 MB of chunks: ~22 ms to append and sync
the WAL, ~14 ms more to checkpoint it). Here a big commit (``BIG_COMMIT_PAGES`` or more)
that leaves ``autocheckpoint`` pages or more in its WAL only asks a background thread to checkpoint that file once no commit
has reached it for ``QUIET_S`` (the page store's calls of one big commit come back to
back), on the file's connection and holding its lock, so the checkpoint completes and the
WAL restarts from its beginning. Small commits checkpoint inline as SQLite's would: for a
stream of single-row commits, deferring measured slower (a longer WAL). Measured alternatives: checkpointing at once held up the
rest of a multi-call commit; a second connection checkpointing while commits went on never
completed, the WAL could not restart, and single-row commits ran 15% slower.

Invariants:

- a checkpoint never touches durability: a commit is durable once its WAL frames are
  synced, and SQLite resets the WAL only after the database file holding them is synced;
- the WAL stays bounded: a commit that finds ``INLINE_FACTOR`` times ``autocheckpoint``
  pages (the thread fell behind, failed, or a reader held it back) checkpoints inline, as
  SQLite's auto-checkpoint would;
- at most one thread per store, started on first need; ``close`` finishes the checkpoint in
  flight and stops it (the last connection to close a file checkpoints what is left).
"""

from __future__ import annotations

import logging
import threading
import time

import apsw

from dolite.storage.sqlite_files import ObjectFile

INLINE_FACTOR = 16  # WAL pages, in multiples of ``autocheckpoint`` (64 MiB by default), past which
# every commit checkpoints itself
BIG_COMMIT_PAGES = 64  # WAL pages (256 KiB at 4 KiB) a commit adds to count as big
QUIET_S = 0.005  # how long a file sees no commit before the thread checkpoints it
log = logging.getLogger("dolite.storage")


def checkpoint(conn: apsw.Connection) -> None:
    """Copy what the WAL holds into the database file (``PASSIVE``: no waiting)."""
    conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)


class Checkpointer:
    """Checkpoints the files it is asked to, one at a time, on a daemon thread."""

    def __init__(self, name: str):
        self._name = name
        self._wanted: dict[ObjectFile, None] = {}  # files asked for, oldest first
        self._busy = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self.done = 0  # checkpoints run
        self.failed = 0  # checkpoints that raised (logged; the next commits retry inline)

    def request(self, file: ObjectFile) -> None:
        """Checkpoint ``file`` soon (a request already pending for it counts once)."""
        with self._changed:
            if self._stopped:
                return
            self._wanted[file] = None
            if self._thread is None or not self._thread.is_alive():  # (not alive: a forked child)
                self._thread = threading.Thread(target=self._run, name=f"dolite-checkpoint {self._name}",
                                                daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every request so far is done; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._wanted and not self._busy, timeout)

    def stop(self) -> None:
        """Finish the checkpoint in flight, drop the rest, and end the thread."""
        with self._changed:
            self._stopped = True
            self._wanted.clear()
            thread = self._thread
            self._changed.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._busy = False
                self._changed.notify_all()
                self._changed.wait_for(lambda: self._wanted or self._stopped)
                if self._stopped:
                    return
                file = next(iter(self._wanted))
                del self._wanted[file]
                self._busy = True
                while (wait := file.last_commit + QUIET_S - time.monotonic()) > 0:
                    if self._changed.wait_for(lambda: self._stopped, wait):
                        return
            self._checkpoint(file)

    def _checkpoint(self, file: ObjectFile) -> None:
        with file.lock:
            if file.conn is None:
                return  # closed since, which checkpointed it
            try:
                checkpoint(file.conn)
                self.done += 1
            except apsw.Error as exc:
                self.failed += 1
                log.warning("sqlite: background checkpoint of %s failed (commits will checkpoint "
                            "inline past %dx the threshold): %s", file.path, INLINE_FACTOR, exc)
