"""Whole-file snapshots: export a stored database as a plain ``.sqlite`` file (or the
base64 JSON form whole-file Durable Object stores used), and import a SQLite file into
the store, streaming chunk by chunk.

Every function takes a storage URL or Namespace and a database name; the CLI and the
HTTP service are thin layers over them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

from dolite.errors import DoliteError
from dolite.names import validate_name
from dolite.pages import Head, PageStore
from dolite.storage import Namespace, open_storage

SQLITE_MAGIC = b"SQLite format 3\x00"
Progress = Callable[[int], None]  # called with bytes done since the last call


class NotASQLiteFile(DoliteError, ValueError):
    """The input is not a SQLite database file."""


def _store(storage: str | Namespace, name: str) -> PageStore:
    validate_name(name)
    namespace = open_storage(storage)
    return PageStore(namespace.object(name), name)


def iter_export(storage: str | Namespace, name: str, *, version: int | None = None) -> Iterator[bytes]:
    """Yield the database file's bytes, chunk by chunk, as of one committed version
    (the current one, or ``version`` if still retained). Checksums are verified."""
    store = _store(storage, name)
    head = store.read_head()
    if version is not None:
        head = version_head(store, head, version)
    store.pin(head)
    try:
        for c in range(-(-head.size // head.chunk_size)):
            valid = min(head.chunk_size, head.size - c * head.chunk_size)
            data = store.read_chunk(head, c, cache=False)[:valid]
            yield data + bytes(valid - len(data))
    finally:
        store.unpin(head)


def version_head(store: PageStore, current: Head, version: int) -> Head:
    """The head as it was at a retained ``version`` (for point-in-time reads)."""
    from dolite.errors import SnapshotExpired
    from dolite.pages.format import decode_record, log_key

    if version == current.version:
        return current
    if not 0 <= version < current.version:
        raise SnapshotExpired(f"{store.name}: no version {version} (current is {current.version})")
    raw = store.storage.get([log_key(version)]).get(log_key(version))
    if raw is None:
        raise SnapshotExpired(f"{store.name}: version {version} is older than the retention window")
    record = decode_record(raw, store.name)
    return Head(version=version, size=record["size"], chunk_size=current.chunk_size,
                retention=current.retention, time=record["time"])


def export_file(storage: str | Namespace, name: str, dest: str | os.PathLike | BinaryIO, *,
                base64_json: bool = False, progress: Progress | None = None) -> int:
    """Write database ``name`` to ``dest`` (a path or binary file); return bytes of data."""
    with _open_output(dest) as out:
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


@contextlib.contextmanager
def _open_output(dest):
    if hasattr(dest, "write"):
        yield dest
    else:
        with open(dest, "wb") as f:
            yield f


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
                progress: Progress | None = None) -> Head:
    """Import the SQLite file ``src`` as database ``name``, streaming it chunk by chunk in
    one atomic commit; then verify it with ``PRAGMA integrity_check``. A base64 JSON
    export is accepted too. Raise NotASQLiteFile (and store nothing) on bad input."""
    validate_name(name)
    namespace = open_storage(storage)
    with _open_input(src) as f:
        magic = f.read(len(SQLITE_MAGIC))
        f.seek(0)
        if magic[:1] == b"{":
            import io

            f = io.BytesIO(_decode_base64_json(f))
            magic = f.read(len(SQLITE_MAGIC))
            f.seek(0)
        size = _size_of(f)
        if magic != SQLITE_MAGIC and size:
            raise NotASQLiteFile(f"{_describe(src)} is not a SQLite database (bad header)")
        store = PageStore(namespace.object(name), name)
        if store.exists():
            if not replace:
                raise FileExistsError(f"database {name!r} already exists (use replace)")
            base = store.read_head()
        else:
            base = store.create(**({"chunk_size": chunk_size} if chunk_size else {}))
        ids = list(range(-(-size // base.chunk_size)))
        head = store.commit_stream(base, ids, _source_chunks(f, base.chunk_size, size, progress), size)
    store.close()
    _verify(namespace, name, created=base.version == 0)
    return head


def _verify(namespace: Namespace, name: str, created: bool) -> None:
    from dolite.sql.dbapi import connect

    conn = connect(name, storage=namespace, create=False)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchall()
    except Exception as exc:
        result = [(str(exc),)]
    finally:
        conn.close()
    if result != [("ok",)]:
        if created:
            namespace.drop(name)
        raise NotASQLiteFile(f"imported database {name!r} failed integrity_check: {result[:3]}")


def _decode_base64_json(f: BinaryIO) -> bytes:
    try:
        doc = json.load(f)
        return base64.b64decode(doc["data"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise NotASQLiteFile(f"not a dolite base64 JSON export: {exc}") from exc


@contextlib.contextmanager
def _open_input(src):
    if hasattr(src, "read"):
        yield src
    else:
        try:
            f = open(src, "rb")
        except FileNotFoundError as exc:
            raise NotASQLiteFile(f"{src}: no such file") from exc
        with f:
            yield f


def _size_of(f: BinaryIO) -> int:
    here = f.tell()
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(here)
    return size


def _describe(src) -> str:
    return str(src) if not hasattr(src, "read") else getattr(src, "name", "input")


