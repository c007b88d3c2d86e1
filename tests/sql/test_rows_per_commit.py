"""A single-row commit through SQL writes one chunk and the head (issue #15): SQLite
rewrites page 1 on every commit only to bump its change counter, which the VFS replaces
on every read anyway (sql/vfs.py), so that write is dropped; other connections still see
every commit."""

from __future__ import annotations

import uuid

import pytest

import dolite
from dolite.storage import open_storage


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_single_row_commit_writes_one_chunk_and_the_head(exclusive):
    url = f"memory:{uuid.uuid4().hex}"
    conn = dolite.connect("db", storage=url, isolation_level=None, exclusive=exclusive)
    conn.execute("CREATE TABLE t(v)")
    other = dolite.connect("db", storage=url, isolation_level=None)
    obj = open_storage(url).object("db")
    for i in range(1, 6):
        before = set(obj.list())
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        added = set(obj.list()) - before
        assert len(added) == 1 and next(iter(added)).startswith("c/00000001/"), added
        assert other.execute("SELECT count(*) FROM t").fetchone() == (i,)
    conn.execute("CREATE TABLE u(v)")  # page 1 changed for real (the schema): written
    assert other.execute("SELECT count(*) FROM sqlite_master").fetchone() == (2,)
    conn.close()
    other.close()
