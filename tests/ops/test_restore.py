"""Point-in-time restore: back to any retained version, in place or into a copy."""

from __future__ import annotations

import pytest

import dolite
from dolite.ops import admin, restore
from dolite.storage import open_storage


def _history(ns, name: str, steps: int) -> dict[int, list]:
    """Commit ``steps`` changes; return each version's full table content."""
    conn = dolite.connect(name, storage=ns)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    conn.commit()
    seen = {}
    for i in range(steps):
        if i % 3 == 2:
            conn.execute("DELETE FROM t WHERE id % 2 = 0")
        else:
            conn.executemany("INSERT INTO t(v) VALUES (?)", [(f"{i}-{j}" * 20,) for j in range(50)])
        conn.commit()
        seen[conn.database.store.read_head().version] = conn.execute("SELECT * FROM t ORDER BY id").fetchall()
    conn.close()
    return seen


def _content(ns, name: str) -> list:
    conn = dolite.connect(name, storage=ns, create=False)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return conn.execute("SELECT * FROM t ORDER BY id").fetchall()
    finally:
        conn.close()


def test_restore_in_place_to_each_version(storage_url):
    ns = open_storage(storage_url)
    seen = _history(ns, "hist", 8)
    for version in sorted(seen)[:-1:2]:
        new = restore.restore(ns, "hist", version=version)
        assert new.version > max(seen)
        assert _content(ns, "hist") == seen[version]


def test_restore_by_time_and_into_a_copy(storage_url):
    ns = open_storage(storage_url)
    seen = _history(ns, "timed", 5)
    versions = dict(restore.retained_versions(ns, "timed"))
    target = sorted(seen)[1]
    assert restore.version_at(ns, "timed", versions[target]) == target
    restore.restore(ns, "timed", at=versions[target], into="timed-copy")
    assert _content(ns, "timed-copy") == seen[target]
    assert _content(ns, "timed") == seen[max(seen)]  # the source is untouched
    with pytest.raises(FileExistsError):
        restore.restore(ns, "timed", version=target, into="timed-copy")


def test_versions_past_retention_are_refused(storage_url):
    ns = open_storage(storage_url)
    conn = dolite.connect("short", storage=ns, retention=0)
    conn.execute("CREATE TABLE t(v)")
    for i in range(5):
        conn.execute("INSERT INTO t VALUES (?)", [i])
        conn.commit()
    conn.database.store.collect_garbage()
    conn.close()
    with pytest.raises(dolite.SnapshotExpired):
        restore.restore(ns, "short", version=1)
    with pytest.raises(dolite.SnapshotExpired):
        restore.restore(ns, "short", at=0.0)


def test_a_copy_killed_midway_leaves_no_database_under_the_new_name():
    """restore --into / fork write the new database whole before its head: a failure at
    any storage operation leaves nothing visible (an empty database used to appear first)."""
    import uuid

    from dolite.storage import open_storage
    from tests.torture.faulty import FaultyNamespace

    inner = open_storage(f"memory:{uuid.uuid4().hex}")
    conn = dolite.connect("src", storage=inner, isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (randomblob(600000))")  # more chunks than one call takes
    conn.close()
    failures = 0
    for at in [*range(1, 400, 9), None]:
        ns = FaultyNamespace(inner)
        ns.faults.arm(at, "fail")
        try:
            restore.restore(ns, "src", version=2, into=f"copy{at}")
        except dolite.StorageError:
            failures += 1
            assert f"copy{at}" not in admin.list_databases(inner), at
            continue
        break
    assert failures > 3
    copy = dolite.connect(f"copy{at}", storage=inner, create=False)
    assert copy.execute("SELECT length(v) FROM t").fetchone() == (600000,)
    copy.close()
