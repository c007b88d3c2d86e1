"""Whole-file snapshots: export a stored database as a plain ``.sqlite`` file (or the
base64 JSON form whole-file Durable Object stores used), and import a SQLite file into
the store, streaming chunk by chunk.

Every function takes a storage URL or Namespace and a database name; the CLI and the
HTTP service are thin layers over them. An export to a path appears only once complete
(see :func:`~dolite.ops.files.atomic_output`); an import from a path reads the database
as SQLite sees it, committed transactions still in its ``-wal`` included (see
:mod:`dolite.ops.sqlite_source`).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from dolite.errors import DoliteError
from dolite.names import validate_name
from dolite.ops.files import atomic_output
from dolite.ops.restore import restore
from dolite.ops.sqlite_source import SQLITE_MAGIC, SourceView, sqlite_view
from dolite.pages import Head, PageStore, open_store
from dolite.storage import Namespace, open_storage

Progress = Callable[[int], None]  # called with bytes done since the last call
WAL_MODE = b"\x02\x02"  # header bytes 18-19 of a database in WAL mode


class NotASQLiteFile(DoliteError, ValueError):
    """The input is not a SQLite database file."""


@dataclass(frozen=True)
class Imported:
    """What :func:`import_file` committed, and how it read the source."""

    head: Head
    wal_pages: int = 0  # pages taken from the source's -wal (committed, not checkpointed)
    notes: list[str] = field(default_factory=list)  # things the user should be told


def _store(storage: str | Namespace, name: str) -> PageStore:
    return open_store(storage, name, must_exist=False)


def iter_export(storage: str | Namespace, name: str, *, version: int | None = None) -> Iterator[bytes]:
    """Yield the database file's bytes, chunk by chunk, as of one committed version
    (the current one, or ``version`` if still retained). Checksums are verified."""
    store = _store(storage, name)
    head = store.pinned(store.read_head if version is None else lambda: store.version_head(version))
    try:
        for c in range(head.chunk_count):
            yield store.chunk_as_of(head, c)
    finally:
        store.unpin(head)


def export_file(storage: str | Namespace, name: str, dest: str | os.PathLike | BinaryIO, *,
                base64_json: bool = False, progress: Progress | None = None) -> int:
    """Write database ``name`` to ``dest`` (a path or binary file); return bytes of data.
    A path is written to a temporary file renamed over it on success: on failure it is
    left as it was."""
    with atomic_output(dest) as out:
        if base64_json:
            return _write_base64_json(storage, name, out, progress)
        total = 0
        for piece in iter_export(storage, name):
            out.write(piece)
            total += len(piece)
            if progress:
                progress(len(piece))
        return total


def _write_base64_json(storage, name: str, out: BinaryIO, progress: Progress | None) -> int:
    store = _store(storage, name)
    head = store.read_head()
    out.write(json.dumps({"name": name, "version": head.version, "size": head.size,
                          "encoding": "base64"})[:-1].encode() + b', "data": "')
    carry = b""
    total = 0
    for piece in iter_export(storage, name):
        total += len(piece)
        data = carry + piece
        cut = len(data) - len(data) % 3
        out.write(base64.b64encode(data[:cut]))
        carry = data[cut:]
        if progress:
            progress(len(piece))
    out.write(base64.b64encode(carry) + b'"}\n')
    return total


def _source_chunks(src: BinaryIO, chunk_size: int, size: int, progress: Progress | None):
    first = True
    for c in range(-(-size // chunk_size)):
        data = src.read(chunk_size)
        if first:
            # Our files are never in WAL mode: mark the header as rollback-journal.
            data = data[:18] + b"\x01\x01" + data[20:]
            first = False
        if progress:
            progress(len(data))
        yield c, data


def import_file(storage: str | Namespace, name: str, src: str | os.PathLike | BinaryIO, *,
                replace: bool = False, chunk_size: int | None = None,
                progress: Progress | None = None) -> Imported:
    """Import the SQLite file ``src`` as database ``name``, streaming it chunk by chunk in
    one atomic commit; then verify it with ``PRAGMA integrity_check``. A base64 JSON
    export is accepted too. Raise NotASQLiteFile (and store nothing) on bad input.

    A path is read as SQLite sees it: committed transactions still in its ``-wal`` are
    included, and the result's ``notes`` say so. A file object can carry no ``-wal``: if
    its header says WAL mode, ``notes`` warn that any ``-wal`` content was not included."""
    validate_name(name)
    namespace = open_storage(storage)
    with _open_source(src) as source:
        f, size, magic = source.file, source.size, _peek(source.file, len(SQLITE_MAGIC))
        if magic != SQLITE_MAGIC and size:
            raise NotASQLiteFile(f"{_describe(src)} is not a SQLite database (bad header)")
        store = PageStore(namespace.object(name), name)
        created = not store.exists()
        if not created:
            if not replace:
                raise FileExistsError(f"database {name!r} already exists (use replace)")
            base = store.read_head()
        else:
            base = store.create(**({"chunk_size": chunk_size} if chunk_size else {}))
        ids = list(range(-(-size // base.chunk_size)))
        head = store.commit_stream(base, ids, _source_chunks(f, base.chunk_size, size, progress), size)
    store.close()
    _verify(namespace, name, None if created else base)
    return Imported(head, source.wal_pages, source.notes)


@contextlib.contextmanager
def _open_source(src) -> Iterator[SourceView]:
    """The bytes to import: SQLite's view of a path, a decoded base64 JSON export, or a
    file object as given (with a note if it is a WAL-mode database's main file)."""
    if hasattr(src, "read"):
        yield _as_sqlite_bytes(SourceView(src, _size_of(src)), src)
        return
    if not os.path.isfile(src):
        raise NotASQLiteFile(f"{src}: no such file")
    with sqlite_view(src) as view:
        yield _as_sqlite_bytes(view, src)


def _as_sqlite_bytes(view: SourceView, src) -> SourceView:
    first = _peek(view.file, 20)
    if first[:1] == b"{":
        data = _decode_base64_json(view.file)
        return SourceView(io.BytesIO(data), len(data))
    if hasattr(src, "read") and first[:16] == SQLITE_MAGIC and first[18:20] == WAL_MODE:
        view.notes.append(f"{_describe(src)} is the main file of a WAL-mode database, given as a "
                          "stream: transactions still in its -wal file (if any) are not included; "
                          "import it by path, or checkpoint it first")
    return view


def _peek(f: BinaryIO, n: int) -> bytes:
    here = f.tell()
    data = f.read(n)
    f.seek(here)
    return data


def _verify(namespace: Namespace, name: str, replaced: Head | None) -> None:
    """Run integrity_check on the import; if it fails, undo it (drop the new database, or
    restore the one it replaced to its head ``replaced``) and raise NotASQLiteFile."""
    from dolite.sql.dbapi import connect

    conn = connect(name, storage=namespace, create=False)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
    except Exception as exc:
        result = [(str(exc),)]
    finally:
        conn.close()
    if result != [("ok",)]:
        if replaced is None:
            namespace.drop(name)
        elif replaced.version > 0:
            restore(namespace, name, version=replaced.version)
        else:
            _truncate(PageStore(namespace.object(name), name))  # it was empty: so again
        raise NotASQLiteFile(f"imported database {name!r} failed integrity_check: {result[:3]}")


def _truncate(store: PageStore) -> None:
    try:
        store.commit(store.read_head(), {}, 0)
    finally:
        store.close()


def _decode_base64_json(f: BinaryIO) -> bytes:
    try:
        doc = json.load(f)
        return base64.b64decode(doc["data"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise NotASQLiteFile(f"not a dolite base64 JSON export: {exc}") from exc


def _size_of(f: BinaryIO) -> int:
    here = f.tell()
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(here)
    return size


def _describe(src) -> str:
    return str(src) if not hasattr(src, "read") else getattr(src, "name", "input")


