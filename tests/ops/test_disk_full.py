"""A full store (file system out of space, or the LMDB map at its size) says so, changes
nothing, keeps serving reads, and can be got out of: drop a database, or gc its history."""

from __future__ import annotations

import subprocess

import pytest

import dolite
from dolite.errors import StorageError
from dolite.ops import admin
from dolite.storage import open_storage
from dolite.errors import StorageFull


def _fill(ns, name: str, rows_per_commit: int = 50) -> int:
    """Commit rows into ``name`` until the store refuses; return the rows committed."""
    conn = dolite.connect(name, storage=ns)
    conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.commit()
    committed = 0
    try:
        for _ in range(100_000):
            conn.executemany("INSERT INTO t(v) VALUES (randomblob(100))", [()] * rows_per_commit)
            conn.commit()
            committed += rows_per_commit
        raise AssertionError("the store never filled up")
    except StorageError as exc:
        conn.rollback()
        full = exc if isinstance(exc, StorageFull) else exc.__cause__ or exc.__context__
        assert isinstance(full, StorageFull), repr(exc)
        assert "storage is full" in str(exc) and "dolite rm" in str(exc)
        return committed
    finally:
        conn.close()


def _count(ns, name: str) -> int:
    conn = dolite.connect(name, storage=ns, create=False)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


def _can_write(ns, name: str) -> bool:
    conn = dolite.connect(name, storage=ns)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
        conn.execute("INSERT INTO t(v) VALUES (randomblob(100))")
        conn.commit()
        return True
    except StorageError:
        return False
    finally:
        conn.close()


@pytest.fixture
def tmpfs(tmp_path):
    """A 4 MB file system of its own (skipped where mounting is not permitted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("scheme", ["lmdb", "sqlite"])
def test_enospc_is_reported_as_full_reads_keep_working_and_rm_frees_room(tmpfs, scheme):
    ns = open_storage(f"{scheme}:{tmpfs}/store")
    try:
        assert _can_write(ns, "app")
        committed = _fill(ns, "big")
        assert ("ENOSPC" if scheme == "lmdb" else "disk is full") in _full_error(ns, "app")
        assert _count(ns, "big") == committed  # reads keep working, nothing half-written
        admin.drop(ns, "big")
        assert admin.list_databases(ns) == ["app"]
        assert _can_write(ns, "app")
    finally:
        ns.close()


def test_map_full_is_reported_and_a_larger_map_lets_a_drop_through(tmp_path):
    store = tmp_path / "store"
    ns = open_storage(f"lmdb:{store}?map_size=8m")
    try:
        assert _can_write(ns, "app")
        committed = _fill(ns, "big")
        assert "LMDB map full" in _full_error(ns, "app")
        assert _count(ns, "big") == committed
        dropped = True
        try:
            admin.drop(ns, "big")  # may find too few free pages: then it refuses cleanly
        except StorageFull as exc:
            assert "map_size" in str(exc) and _count(ns, "big") == committed
            dropped = False
    finally:
        ns.close()
    ns = open_storage(f"lmdb:{store}?map_size=9m")  # the way out when not one page is free
    try:
        if not dropped:
            admin.drop(ns, "big")
        assert admin.list_databases(ns) == ["app"] and _can_write(ns, "app")
    finally:
        ns.close()


def test_gc_of_history_frees_room_on_a_full_store(tmp_path):
    ns = open_storage(f"lmdb:{tmp_path}/store?map_size=8m")
    try:
        conn = dolite.connect("app", storage=ns)
        conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        conn.execute("INSERT INTO t(v) VALUES (randomblob(200000))")
        conn.commit()
        with pytest.raises(StorageError, match="storage is full"):
            for _ in range(1000):  # rewrite the same rows: old versions pile up (retention)
                conn.execute("UPDATE t SET v = randomblob(200000)")
                conn.commit()
        conn.rollback()
        conn.close()
        assert admin.gc(ns, "app") == 0  # every version is inside the retention window
        assert admin.gc(ns, "app", drop_history=True) > 0
        assert _can_write(ns, "app") and _count(ns, "app") == 2
    finally:
        ns.close()


def _full_error(ns, name: str) -> str:
    conn = dolite.connect(name, storage=ns)
    try:
        with pytest.raises(StorageError, match="storage is full") as caught:
            conn.execute("INSERT INTO t(v) VALUES (randomblob(100000))")
            conn.commit()
        conn.rollback()
        return str(caught.value)
    finally:
        conn.close()


def test_map_size_option_is_checked():
    from dolite.errors import InvalidURL
    from dolite.storage.lmdb_space import parse_size

    assert parse_size("64k", "map_size") == 65536 and parse_size("2GiB", "map_size") == 2 << 30
    with pytest.raises(InvalidURL, match="not a size"):
        open_storage("lmdb:/tmp/never?map_size=lots")
