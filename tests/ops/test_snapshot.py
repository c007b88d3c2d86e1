"""Whole-file import/export: byte-identical round trips, bounded memory, bad input."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import dolite
from dolite.ops import admin, snapshot
from dolite.storage import open_storage


def _sqlite_file(path, rows: int, width: int = 200) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(f"""
        CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB);
        CREATE INDEX t_v ON t(v);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
        INSERT INTO t SELECT i, printf('%08d', i * 7919 % {rows}), randomblob({width}) FROM n;
    """)
    conn.commit()
    conn.close()


def _sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _dump(path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_import_export_roundtrip_is_identical(storage_url, tmp_path):
    src, out = tmp_path / "src.sqlite", tmp_path / "out.sqlite"
    _sqlite_file(src, 3000)
    ns = open_storage(storage_url)
    imported = snapshot.import_file(ns, "imported", src)
    assert imported.head.size == src.stat().st_size and imported.notes == []
    snapshot.export_file(ns, "imported", out)
    assert _sha(out) == _sha(src)
    assert _dump(out) == _dump(src)
    conn = dolite.connect("imported", storage=ns)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (3000,)
    conn.close()


def test_base64_json_export_and_reimport(tmp_path):
    ns = open_storage("memory:")
    src = tmp_path / "src.sqlite"
    _sqlite_file(src, 500)
    snapshot.import_file(ns, "a", src)
    snapshot.export_file(ns, "a", tmp_path / "a.json", base64_json=True)
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["encoding"] == "base64" and doc["size"] == src.stat().st_size
    snapshot.import_file(ns, "b", tmp_path / "a.json")
    snapshot.export_file(ns, "b", tmp_path / "b.sqlite")
    assert _sha(tmp_path / "b.sqlite") == _sha(src)


def test_bad_input_is_refused_and_stores_nothing(tmp_path):
    ns = open_storage("memory:")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(snapshot.NotASQLiteFile, match="not a SQLite database"):
        snapshot.import_file(ns, "junk", junk)
    with pytest.raises(snapshot.NotASQLiteFile, match="no such file"):
        snapshot.import_file(ns, "junk", tmp_path / "missing.sqlite")
    broken = tmp_path / "broken.sqlite"
    _sqlite_file(broken, 2000)
    data = bytearray(broken.read_bytes())
    data[4096 * 3: 4096 * 3 + 64] = b"\xff" * 64  # wreck a b-tree page
    broken.write_bytes(bytes(data))
    with pytest.raises(snapshot.NotASQLiteFile, match="integrity_check"):
        snapshot.import_file(ns, "broken", broken)
    assert admin.list_databases(ns) == []
    with pytest.raises(dolite.DatabaseNotFound):
        snapshot.export_file(ns, "broken", tmp_path / "x.sqlite")


def test_import_refuses_to_overwrite_unless_asked(tmp_path):
    ns = open_storage("memory:")
    src = tmp_path / "src.sqlite"
    _sqlite_file(src, 100)
    snapshot.import_file(ns, "once", src)
    with pytest.raises(FileExistsError):
        snapshot.import_file(ns, "once", src)
    snapshot.import_file(ns, "once", src, replace=True)
    assert admin.check(ns, "once").ok


def test_200mb_import_and_export_in_bounded_memory(tmp_path):
    """A 200 MB file goes in and out chunk by chunk: peak memory stays far below it."""
    src, out = tmp_path / "big.sqlite", tmp_path / "back.sqlite"
    _sqlite_file(src, 200_000, width=1000)
    size = src.stat().st_size
    assert size > 200_000_000
    # Peak anonymous memory (LMDB's file-backed map pages are not held memory).
    script = textwrap.dedent(f"""
        import threading, time
        from dolite.ops import snapshot
        peak = [0]
        def sample():
            while True:
                for line in open("/proc/self/status"):
                    if line.startswith("RssAnon:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
                time.sleep(0.02)
        threading.Thread(target=sample, daemon=True).start()
        from dolite.storage import open_storage
        from dolite.sql.vfs import vfs_for
        ns = open_storage("lmdb:{tmp_path}/store")
        vfs_for(ns, cache_bytes=8 << 20)  # the verify pass reads every page through the cache
        snapshot.import_file(ns, "big", {str(src)!r})
        snapshot.export_file(ns, "big", {str(out)!r})
        time.sleep(0.05)
        print(peak[0])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    peak_rss = int(proc.stdout.split()[-1])
    assert peak_rss < 100_000_000, f"peak anonymous RSS {peak_rss / 1e6:.0f} MB for a {size / 1e6:.0f} MB file"
    assert _sha(out) == _sha(src)
