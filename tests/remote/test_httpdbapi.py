"""The HTTP DB-API driver behaves like the local one within the server's limits (issue #11
item 4): batches cut to fit, large results paged, transaction control, harmless pragmas."""

from __future__ import annotations

import pytest

import dolite
from dolite.errors import NotSupportedError, OperationalError, ResultTooLarge
from tests.service.conftest import Server

MAX_BODY, MAX_STATEMENTS, MAX_RESULT = 65536, 50, 200_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote")
    srv = Server(f"lmdb:{path}/data", "--max-body", str(MAX_BODY), "--max-statements", str(MAX_STATEMENTS),
                 "--max-result", str(MAX_RESULT), "--session-timeout", "5", log=path / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture
def connect(server, request):
    opened = []

    def open_(**options):
        name = request.node.name.replace("[", "-").replace("]", "")[:60]
        conn = dolite.connect(f"{server.url}/{name}", token=server.token, **options)
        opened.append(conn)
        return conn

    yield open_
    for conn in opened:
        conn.close()


def test_executescript_of_one_statement(connect):
    conn = connect()
    assert conn.executescript("SELECT 1;") is not None
    conn.executescript("CREATE TABLE t(v); INSERT INTO t VALUES (1)")
    assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]


def test_executemany_is_cut_into_batches_that_fit(connect):
    conn = connect(max_statements=MAX_STATEMENTS)  # body limit left at the default: learnt from 413
    conn.execute("CREATE TABLE t(i INTEGER, v TEXT)")
    rows = [(i, "x" * 2000) for i in range(300)]  # 600 KB: over the body limit, 6x the statements
    cur = conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
    assert cur.rowcount == 300 and conn.in_transaction
    conn.rollback()  # all batches ran in one session: all rolled back together
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    with conn:
        conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
    assert conn.execute("SELECT count(*), sum(i) FROM t").fetchone() == (300, sum(range(300)))
    assert conn.max_body < MAX_BODY * 2


def test_a_large_script_with_its_own_transaction(connect):
    conn = connect(max_statements=MAX_STATEMENTS)
    inserts = "".join(f"INSERT INTO t VALUES ({i}, '{'y' * 500}');\n" for i in range(400))
    conn.executescript(f"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(i, v);\n{inserts}COMMIT;")
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (400,)


def test_a_large_result_is_paged_in_order(connect):
    conn = connect(max_statements=MAX_STATEMENTS)
    conn.execute("CREATE TABLE t(i INTEGER PRIMARY KEY, v TEXT)")
    with conn:
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "z" * 200) for i in range(3000)])  # ~700 KB
    cur = conn.execute("SELECT i, v FROM t WHERE i >= ? ORDER BY i DESC;", [10])
    assert [d[0] for d in cur.description] == ["i", "v"]
    assert [row[0] for row in cur] == list(range(2999, 9, -1))
    named = conn.execute("SELECT v, i FROM t WHERE i < :n", {"n": 2500}).fetchall()
    assert len(named) == 2500 and named[-1][1] == 2499
    with pytest.raises(ResultTooLarge):  # not a SELECT: cannot be paged, nothing changed
        conn.execute("UPDATE t SET v = v RETURNING v")
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (3000,)


def test_a_paged_result_inside_a_transaction_sees_its_writes(connect):
    conn = connect(max_statements=MAX_STATEMENTS)
    conn.execute("CREATE TABLE t(v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("w" * 300,)] * 1000)
    assert conn.in_transaction
    assert len(conn.execute("SELECT v FROM t").fetchall()) == 1000
    conn.rollback()


def test_transaction_control_as_sql(connect):
    conn = connect(isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    conn.execute("BEGIN IMMEDIATE")
    assert conn.in_transaction
    with pytest.raises(OperationalError, match="within a transaction"):
        conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("ROLLBACK")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (2)")
    conn.execute("END TRANSACTION t1")
    assert conn.execute("SELECT v FROM t").fetchall() == [(2,)]
    with pytest.raises(OperationalError, match="no transaction is active"):
        conn.execute("COMMIT")


def test_savepoint_is_refused_clearly_until_the_server_allows_it(connect):
    conn = connect()
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(NotSupportedError, match="SAVEPOINT"):
        conn.execute("SAVEPOINT sp")
    conn.commit()  # the transaction goes on
    assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]
    with pytest.raises(NotSupportedError):
        conn.execute("SAVEPOINT sp")
    assert not conn.in_transaction


def test_connection_pragmas_sqlalchemy_and_sqlite_utils_send(connect):
    conn = connect()
    assert conn.execute("PRAGMA read_uncommitted").fetchone() == (0,)
    conn.execute("PRAGMA read_uncommitted = 1")
    assert conn.execute("PRAGMA read_uncommitted").fetchone() == (1,)
    conn.execute("PRAGMA recursive_triggers = off")  # what the server runs with
    conn.execute("PRAGMA foreign_keys=OFF;")
    with pytest.raises(NotSupportedError, match="recursive_triggers"):
        conn.execute("PRAGMA recursive_triggers = on")
