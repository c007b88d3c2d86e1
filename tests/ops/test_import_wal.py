"""Import reads a WAL-mode database as SQLite sees it: its -wal's committed frames count."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess

import pytest

import dolite
from dolite.ops import snapshot
from dolite.storage import open_storage


def _wal_database(path, rows: int = 300) -> sqlite3.Connection:
    """A WAL database whose newest rows live only in its -wal: the returned writer stays
    open with autocheckpoint off, so nothing reaches the main file."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the table itself is in the main file
    writer.execute("PRAGMA wal_autocheckpoint=0")
    for i in range(rows):
        writer.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}" * 10,))
    assert os.path.getsize(f"{path}-wal") > 0
    return writer


def _count(ns, name: str) -> int:
    conn = dolite.connect(name, storage=ns, create=False)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


def test_import_includes_committed_wal_frames_of_an_open_writer(tmp_path):
    src = tmp_path / "app.db"
    writer = _wal_database(src)
    try:
        ns = open_storage("memory:")
        imported = snapshot.import_file(ns, "app", src)
        assert _count(ns, "app") == 300
        assert imported.wal_pages > 0
        assert any("-wal" in note and "included" in note for note in imported.notes)
        # The writer goes on undisturbed, and its source was never changed by the import.
        writer.execute("INSERT INTO t(v) VALUES ('after')")
        assert writer.execute("SELECT count(*) FROM t").fetchone() == (301,)
    finally:
        writer.close()


def test_import_of_a_plain_file_says_nothing_about_wal(tmp_path):
    src = tmp_path / "plain.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    imported = snapshot.import_file(open_storage("memory:"), "plain", src)
    assert imported.wal_pages == 0 and imported.notes == []


def test_a_stream_of_a_wal_mode_main_file_is_imported_with_a_warning(tmp_path):
    src = tmp_path / "app.db"
    writer = _wal_database(src)
    try:
        ns = open_storage("memory:")
        imported = snapshot.import_file(ns, "streamed", io.BytesIO(src.read_bytes()))
        assert _count(ns, "streamed") == 0  # the main file alone: the rows are in the -wal
        assert any("not included" in note for note in imported.notes)
    finally:
        writer.close()


def test_wal_database_in_a_read_only_folder(tmp_path):
    """No -shm can be created beside the file: SQLite's view is read from a private copy."""
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    writer = _wal_database(src_dir / "app.db")
    writer.close()  # closing checkpoints and deletes the -wal: make a new one that stays
    writer = _wal_database(src_dir / "app2.db")
    os.remove(src_dir / "app2.db-shm")  # a crashed writer's leftovers: -wal, no -shm
    readonly = tmp_path / "ro"
    readonly.mkdir()
    try:
        subprocess.run(["mount", "--bind", "-o", "ro", str(src_dir), str(readonly)], check=True,
                       capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        writer.close()
        pytest.skip(f"cannot make a read-only bind mount here: {exc}")
    try:
        with pytest.raises(OSError):
            (readonly / "probe").write_bytes(b"")
        ns = open_storage("memory:")
        imported = snapshot.import_file(ns, "ro", readonly / "app2.db")
        assert _count(ns, "ro") == 300 and imported.wal_pages > 0
    finally:
        writer.close()  # first: SQLite defers closing our descriptors while it holds locks
        subprocess.run(["umount", str(readonly)], check=True)
