"""Reading a SQLite file on disk as SQLite sees it, -wal included.

A database in WAL mode keeps committed transactions in its ``-wal`` file until a
checkpoint copies them into the main file; copying the main file alone silently loses
them. :func:`sqlite_view` opens the file read-only through SQLite (stdlib ``sqlite3``, so
this module needs neither APSW nor the rest of dolite) and, inside one read transaction:

* if the ``-wal`` holds frames, copies the database with SQLite's backup API into a
  private temporary file (the only way to materialize pages that live in the WAL, since
  ``sqlite_dbpage`` is not compiled into the stdlib or APSW builds) and counts the pages
  that differ from the main file;
* otherwise hands out the main file itself, read while the read transaction holds off
  writers (rollback mode) or checkpoints (WAL mode), so the copy is never torn.

If SQLite cannot open the file read-only in place (a WAL database in a read-only folder
whose ``-shm`` does not exist), the main file and its ``-wal`` are copied to a private
folder first and read there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import quote

from dolite.errors import DoliteError

SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_HEADER_BYTES = 32
BUSY_TIMEOUT = 5.0


class SourceUnreadable(DoliteError):
    """SQLite cannot give a consistent view of the source file (locked, hot journal...)."""


@dataclass
class SourceView:
    """The bytes of a database as SQLite sees it, and what it took to get them."""

    file: BinaryIO
    size: int
    wal_pages: int = 0  # pages whose current content was in the -wal, not the main file
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def sqlite_view(path: str | os.PathLike) -> Iterator[SourceView]:
    """The database at ``path`` as SQLite sees it (see the module docstring). A file that
    is not a SQLite database is handed out as it is, for the caller to judge."""
    path = os.fspath(path)
    with open(path, "rb") as main:
        if main.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            main.seek(0)
            yield SourceView(main, _size(main))
            return
        main.seek(0)
        with contextlib.ExitStack() as stack:
            try:
                conn = stack.enter_context(_read_transaction(path))
            except _CannotOpenInPlace as exc:
                if _nonempty(path + "-journal"):
                    raise SourceUnreadable(f"{path}: has a hot journal (a writer stopped mid-transaction) "
                                           f"and SQLite cannot roll it back here: {exc}") from exc
                if not _wal_has_frames(path):
                    yield SourceView(main, _size(main))  # no -wal: the main file is the database
                    return
                copy = _private_copy(path, stack.enter_context(tempfile.TemporaryDirectory()))
                conn = stack.enter_context(_read_transaction(copy))
                path = copy
            if not _wal_has_frames(path):
                yield SourceView(main, _size(main))
                return
            yield _materialize(conn, path, stack.enter_context(tempfile.TemporaryDirectory()), stack)


class _CannotOpenInPlace(Exception):
    pass


@contextlib.contextmanager
def _read_transaction(path: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection to ``path`` inside an open read transaction."""
    try:
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True,
                               timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.OperationalError as exc:
        raise _CannotOpenInPlace(str(exc)) from exc
    try:
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "unable to open" in text or "readonly" in text:
                raise _CannotOpenInPlace(str(exc)) from exc
            raise SourceUnreadable(f"{path}: SQLite cannot read it consistently: {exc}") from exc
        except sqlite3.DatabaseError:
            pass  # damaged: the caller reads the raw bytes and its integrity check decides
        yield conn
    finally:
        conn.close()


def _wal_has_frames(path: str) -> bool:
    return _nonempty(path + "-wal", WAL_HEADER_BYTES)


def _nonempty(path: str, more_than: int = 0) -> bool:
    try:
        return os.path.getsize(path) > more_than
    except OSError:
        return False


def _private_copy(path: str, folder: str) -> str:
    """Copy the main file and its -wal into ``folder``, where SQLite may create a -shm."""
    copy = os.path.join(folder, "source.db")
    shutil.copyfile(path + "-wal", copy + "-wal")  # the -wal first: it only ever grows
    shutil.copyfile(path, copy)
    return copy


def _materialize(conn: sqlite3.Connection, path: str, folder: str,
                 stack: contextlib.ExitStack) -> SourceView:
    """Copy the database ``conn`` reads (WAL included) into a file in ``folder``, opened
    for reading until ``stack`` closes."""
    target = os.path.join(folder, "snapshot.db")
    dest = sqlite3.connect(target, isolation_level=None)
    try:
        conn.backup(dest)
        dest.execute("PRAGMA journal_mode=DELETE")  # everything in the main file
    except sqlite3.DatabaseError as exc:
        raise SourceUnreadable(f"{path}: SQLite cannot read it consistently: {exc}") from exc
    finally:
        dest.close()
    snapshot = stack.enter_context(open(target, "rb"))
    page_size = int.from_bytes(_header(snapshot)[16:18], "big") or 1
    page_size = 65536 if page_size == 1 else page_size
    changed = _pages_differing(snapshot, path, page_size)
    view = SourceView(snapshot, _size(snapshot), changed)
    view.notes.append(f"{os.path.basename(path)} is in WAL mode and its -wal holds committed "
                      f"transactions not yet checkpointed: read through SQLite, so they are "
                      f"included ({changed} page(s) came from the -wal)")
    return view


def _header(f: BinaryIO) -> bytes:
    f.seek(0)
    header = f.read(100)
    f.seek(0)
    return header


def _pages_differing(snapshot: BinaryIO, main_path: str, page_size: int) -> int:
    """Pages of ``snapshot`` whose bytes differ from (or are missing in) the main file."""
    changed = 0
    with open(main_path, "rb") as main:
        while page := snapshot.read(page_size):
            changed += main.read(page_size) != page
    snapshot.seek(0)
    return changed


def _size(f: BinaryIO) -> int:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    return size
