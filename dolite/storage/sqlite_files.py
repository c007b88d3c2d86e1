"""The files of a ``sqlite:`` store: one SQLite database (WAL mode) per object.

An object's file name is its name with every byte outside ``[a-z0-9_.-]`` (and a leading
``.``) written as ``%XX`` (upper-case hex of its UTF-8 bytes), plus ``.db``: reversible,
never a path separator, never hidden, and distinct on case-insensitive file systems. A name
whose file name would pass ``MAX_FILE_NAME`` bytes gets ``~`` + its SHA-256 instead (``~``
never appears in an encoded name). Every file also records its object's name (table
``object``), so listing never needs to decode file names.

Schema of each file: ``kv(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID`` (keys as
UTF-8: byte order is code point order, the order of the contract) and ``object(name)``.
"""

from __future__ import annotations

import hashlib
import os
import threading

import apsw

SUFFIX = ".db"
MAX_FILE_NAME = 200  # bytes, well under the usual 255 (leaves room for -wal / -shm)
BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another process's write lock
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_.-")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS object(name TEXT NOT NULL);
INSERT INTO object(name) SELECT ? WHERE NOT EXISTS (SELECT 1 FROM object);
"""


def file_name(name: str) -> str:
    """The file (in the store's directory) holding object ``name``."""
    raw = name.encode("utf-8")
    encoded = "".join(chr(b) if b in _SAFE and not (i == 0 and b == 0x2E) else f"%{b:02X}"
                      for i, b in enumerate(raw))
    if not encoded or len(encoded) + len(SUFFIX) > MAX_FILE_NAME:
        encoded = "~" + hashlib.sha256(raw).hexdigest()
    return encoded + SUFFIX


class ObjectFile:
    """One object's database file and, while open, its connection.

    ``lock`` serializes every use of the connection (a transaction is per connection, so
    two threads must never interleave statements). ``conn`` is None until first used and
    again after ``close`` (the namespace closes idle files to bound open descriptors)."""

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self.conn: apsw.Connection | None = None
        self.wal_pages = 0  # pages in the WAL after the last commit (set by SQLite's WAL hook)
        self.wal_added = 0  # pages the commits since the namespace last looked added to it
        self.last_commit = 0.0  # time.monotonic() of the last commit through this process
        self.big_commit_at = -1.0  # time.monotonic() of the last big one (sqlite_checkpoint.py)

    def open(self, create_as: str | None) -> apsw.Connection | None:
        """The connection, opened if needed. Without ``create_as`` (the object's name) a
        missing file, or one whose schema is not written yet, is None: the object is empty."""
        if self.conn is None:
            if create_as is None and not os.path.exists(self.path):
                return None
            self.conn = self._connect(create_as)
        return self.conn

    def _connect(self, create_as: str | None) -> apsw.Connection | None:
        flags = apsw.SQLITE_OPEN_READWRITE | (apsw.SQLITE_OPEN_CREATE if create_as is not None else 0)
        try:
            conn = apsw.Connection(self.path, flags=flags, vfs="unix")
        except apsw.CantOpenError:
            return None  # removed since (or never created)
        try:
            conn.set_busy_timeout(BUSY_TIMEOUT_MS)
            if create_as is not None:
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes on a new file
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the namespace checkpoints (sqlite_checkpoint.py)
            conn.set_wal_hook(self._wal_hook)
            if create_as is not None:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(_SCHEMA, (create_as,))
                conn.execute("COMMIT")
            elif not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'kv'").fetchall():
                conn.close()
                return None
        except BaseException:
            conn.close()
            raise
        return conn

    def _wal_hook(self, _conn, _db, pages: int) -> int:
        self.wal_added += pages - self.wal_pages if pages >= self.wal_pages else pages  # else: restarted
        self.wal_pages = pages
        return apsw.SQLITE_OK

    def close(self) -> None:
        """Close the connection (the caller holds ``lock``); the last one to close a file
        checkpoints its WAL into it."""
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()
