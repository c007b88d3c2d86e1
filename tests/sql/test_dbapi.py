"""dolite.connect behaves like stdlib sqlite3 (PEP 249), on every backend."""

from __future__ import annotations

import pytest

import dolite
from dolite.sql import dbapi


@pytest.fixture
def conn(storage_url):
    c = dolite.connect("shop", storage=storage_url)
    yield c
    c.close()


def test_create_insert_select(conn):
    cur = conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB, r REAL)")
    assert cur.description is None
    cur = conn.execute("INSERT INTO t(v, b, r) VALUES (?, ?, ?)", ["x", b"\x00\x01", 1.5])
    assert cur.rowcount == 1 and cur.lastrowid == 1
    conn.commit()
    cur = conn.execute("SELECT id, v, b, r FROM t")
    assert [d[0] for d in cur.description] == ["id", "v", "b", "r"]
    assert cur.fetchall() == [(1, "x", b"\x00\x01", 1.5)]


def test_executemany_rowcount_and_fetch_variants(conn):
    conn.execute("CREATE TABLE t(n)")
    cur = conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
    assert cur.rowcount == 10
    conn.commit()
    cur = conn.execute("SELECT n FROM t ORDER BY n")
    assert cur.fetchone() == (0,)
    assert cur.fetchmany(3) == [(1,), (2,), (3,)]
    assert [r[0] for r in cur] == list(range(4, 10))
    assert conn.execute("UPDATE t SET n = n + 1 WHERE n < 5").rowcount == 5
    assert conn.execute("SELECT * FROM t WHERE n = ?", (100,)).fetchone() is None


def test_rollback_discards(conn):
    conn.execute("CREATE TABLE t(n)")
    conn.commit()
    conn.execute("INSERT INTO t VALUES (1)")
    assert conn.in_transaction
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_context_manager_commits_or_rolls_back(conn):
    conn.execute("CREATE TABLE t(n UNIQUE)")
    with conn:
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(dbapi.IntegrityError):
        with conn:
            conn.execute("INSERT INTO t VALUES (2)")
            conn.execute("INSERT INTO t VALUES (1)")
    assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]


def test_malformed_sql_is_a_clear_error_and_changes_nothing(conn):
    conn.execute("CREATE TABLE t(n)")
    conn.commit()
    with pytest.raises(dbapi.OperationalError, match="syntax error"):
        conn.execute("INSERT INTO t VALUES (1,,2)")
    with pytest.raises(dbapi.OperationalError, match="no such table"):
        conn.execute("SELECT * FROM missing")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_commit_survives_reopen(storage_url):
    c = dolite.connect("persist", storage=storage_url)
    c.execute("CREATE TABLE t(v)")
    c.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 300)
    c.commit()
    c.execute("INSERT INTO t VALUES ('uncommitted')")
    c.close()
    again = dolite.connect("persist", storage=storage_url, create=False)
    assert again.execute("SELECT count(*) FROM t").fetchone() == (300,)
    assert again.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    again.close()


def test_missing_database_and_bad_names(storage_url):
    with pytest.raises(dolite.DatabaseNotFound, match="nope"):
        dolite.connect("nope", storage=storage_url, create=False)
    for bad in ["", "a/b", "..", "a..b", "x" * 200, ".hidden", "sp ace"]:
        with pytest.raises(dolite.InvalidName):
            dolite.connect(bad, storage=storage_url)


def test_raw_apsw_connection_is_reachable(conn):
    import apsw

    assert isinstance(conn.raw, apsw.Connection)
    assert conn.raw.execute("SELECT 41 + 1").fetchall() == [(42,)]


def test_wal_mode_is_refused_clearly(conn):
    conn.execute("CREATE TABLE t(n)")
    conn.commit()
    with pytest.raises(dolite.NotSupportedError, match="WAL"):  # refused, not quietly ignored
        conn.execute("PRAGMA journal_mode=WAL")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "memory"
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_closing_the_last_connection_frees_the_database_state(storage_url):
    from dolite.storage import open_storage
    from dolite.sql.vfs import vfs_for

    ns = open_storage(storage_url)
    vfs = vfs_for(ns)
    first = dolite.connect("freed", storage=ns)
    second = dolite.connect("freed", storage=ns)
    first.execute("CREATE TABLE t(v)")
    first.commit()
    assert vfs.databases["freed"].connections == 2
    first.close()
    first.close()  # closing twice is harmless
    assert vfs.databases["freed"].connections == 1
    second.close()
    assert "freed" not in vfs.databases
    with pytest.raises(dolite.DatabaseNotFound):
        dolite.connect("never-made", storage=ns, create=False)
    assert "never-made" not in vfs.databases


def test_row_shapes_follow_each_cursor_factory_and_text_factory(conn):
    """Descriptions and row shapes are remembered per query shape: a change of
    row_factory or text_factory, or an unhashable factory, still takes effect."""

    class Unhashable:
        __hash__ = None

        def __call__(self, cursor, row):
            return list(row)

    conn.execute("CREATE TABLE s(a, b)")
    conn.execute("INSERT INTO s VALUES ('x', 1)")
    assert conn.execute("SELECT a, b FROM s").fetchone() == ("x", 1)
    conn.row_factory = dolite.Row
    row = conn.execute("SELECT a, b FROM s").fetchone()
    assert (row["a"], row["b"]) == ("x", 1)
    conn.row_factory = Unhashable()
    assert conn.execute("SELECT a, b FROM s").fetchone() == ["x", 1]
    conn.row_factory = None
    conn.text_factory = bytes
    cursor = conn.execute("SELECT a, b FROM s")
    assert cursor.fetchone() == (b"x", 1) and [d[0] for d in cursor.description] == ["a", "b"]
