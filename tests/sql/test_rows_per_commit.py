"""A single-row commit through SQL writes one chunk and the head (issue #15): SQLite
rewrites page 1 on every commit only to bump its change counter, which the VFS replaces
on every read anyway (sql/vfs.py), so that write is dropped; other connections still see
every commit."""

from __future__ import annotations

import uuid

import pytest

import dolite
from dolite.sql.freshness import HOT_STATEMENTS
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


class WriteCounting:
    """One object of a namespace, counting the calls that write (issue #15: read-only
    work must not take or renew the write lease)."""

    def __init__(self, namespace):
        self.namespace, self.url, self.limits = namespace, namespace.url + "#counting", namespace.limits
        self.writes: list[list[str]] = []

    def object(self, name):
        inner, writes = self.namespace.object(name), self.writes

        class Counted:
            limits = inner.limits

            def commit(self, puts, deletes=(), expect=None):
                writes.append(sorted(puts))
                return inner.commit(puts, deletes, expect)

            def __getattr__(self, attr):
                return getattr(inner, attr)
        return Counted()

    def __getattr__(self, attr):
        return getattr(self.namespace, attr)


def _one_row_database() -> str:
    url = f"memory:{uuid.uuid4().hex}"
    conn = dolite.connect("db", storage=url, isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    return url


@pytest.mark.parametrize("exclusive", [False, True])
def test_read_only_work_writes_nothing(exclusive):
    counting = WriteCounting(open_storage(_one_row_database()))
    reader = dolite.connect("db", storage=counting, exclusive=exclusive, create=False)
    for _ in range(3):
        assert reader.execute("SELECT v FROM t").fetchall() == [(1,)]
    reader.close()
    assert counting.writes == []
    writer = dolite.connect("db", storage=counting, exclusive=exclusive, isolation_level=None)
    writer.execute("INSERT INTO t VALUES (2)")  # a write takes the lease, as it must
    assert any("lease" in keys for keys in counting.writes)
    writer.close()


def test_a_hot_exclusive_reader_takes_the_lease_once_and_then_reads_without_io():
    counting = WriteCounting(open_storage(_one_row_database()))
    reader = dolite.connect("db", storage=counting, exclusive=True, create=False)
    for _ in range(HOT_STATEMENTS):
        reader.execute("SELECT v FROM t").fetchall()
    assert counting.writes == []  # cold: a head read a statement, no write
    reader.execute("SELECT v FROM t").fetchall()
    assert [keys for keys in counting.writes] == [["lease"]]  # hot: one lease write...
    store = reader.database.store
    reads = store.stats["chunks_read"]
    for _ in range(20):
        assert reader.execute("SELECT v FROM t").fetchall() == [(1,)]
    assert store.still_newest(reader._freshness.seen) and store.stats["chunks_read"] == reads
    reader.close()
