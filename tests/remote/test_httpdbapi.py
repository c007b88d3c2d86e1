"""The HTTP DB-API driver behaves like the local one within the server's limits (issue #11
item 4): batches cut to fit, large results paged, transaction control, savepoints,
connection pragmas (held for the connection's life, as with sqlite3)."""

from __future__ import annotations

import itertools

import pytest

import dolite
from dolite.errors import NotSupportedError, OperationalError, ResultTooLarge
from tests.server.conftest import start_with_second_admin

MAX_BODY, MAX_STATEMENTS, MAX_RESULT = 65536, 50, 200_000
OTHER = "other-token-remote"  # a second admin token: a setting must not reach its requests
_local_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_with_second_admin(tmp_path_factory.mktemp("remote"), OTHER, "--max-body", str(MAX_BODY),
                                  "--max-statements", str(MAX_STATEMENTS), "--max-result", str(MAX_RESULT),
                                  "--session-timeout", "5")
    yield srv
    srv.stop()


@pytest.fixture
def connect(server, request):
    """Open HTTP connections (``token``: the admin token unless given) to the test's database."""
    opened = []

    def open_(token: str | None = None, **options):
        name = request.node.name.replace("[", "-").replace("]", "")[:60]
        conn = dolite.connect(f"{server.url}/{name}", token=token or server.token, **options)
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


def local_connection(**options):
    """The local driver on a fresh in-memory database: what the HTTP driver must match."""
    n = next(_local_names)
    return dolite.connect(f"local{n}", storage=f"memory:remote-local{n}", **options)


def _savepoints(conn) -> list:
    conn.execute("CREATE TABLE t(v)")
    conn.execute("SAVEPOINT outer_sp")  # outside a transaction: begins one, as in SQLite
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("SAVEPOINT sp")
    conn.execute("INSERT INTO t VALUES (2)")
    conn.execute("ROLLBACK TO sp")
    conn.execute("INSERT INTO t VALUES (3)")
    conn.execute("RELEASE sp")
    conn.execute("RELEASE outer_sp")
    conn.execute("INSERT INTO t VALUES (4)")
    conn.execute("SAVEPOINT last")
    conn.execute("INSERT INTO t VALUES (5)")
    conn.execute("ROLLBACK TRANSACTION TO SAVEPOINT last")
    conn.execute("COMMIT")
    assert not conn.in_transaction
    with pytest.raises(OperationalError, match="no such savepoint"):
        conn.execute("RELEASE sp")
    return conn.execute("SELECT v FROM t ORDER BY v").fetchall()


def test_savepoints_give_the_rows_of_the_local_driver(connect):
    local = local_connection()
    try:
        expected = _savepoints(local)
    finally:
        local.close()
    assert expected == [(1,), (3,), (4,)]
    assert _savepoints(connect()) == expected


RECURSIVE_TRIGGER = ("CREATE TRIGGER up AFTER INSERT ON n WHEN new.i < 5 "
                     "BEGIN INSERT INTO n VALUES (new.i + 1); END")


def _recursive_triggers(conn) -> list:
    """Counts of rows a recursive trigger leaves after ``PRAGMA recursive_triggers=on`` is
    sent once, as sqlite-utils sends it when it opens a database."""
    seen = [conn.execute("PRAGMA recursive_triggers").fetchone()]
    conn.execute("PRAGMA recursive_triggers=on")
    conn.execute("CREATE TABLE n(i)")
    conn.execute(RECURSIVE_TRIGGER)
    conn.execute("INSERT INTO n VALUES (1)")  # autocommit: 1..5
    seen.append(conn.execute("SELECT count(*) FROM n").fetchone())
    conn.executemany("INSERT INTO n VALUES (?)", [(3,), (4,)])  # autocommit, batched: 3..5, 4..5
    seen.append(conn.execute("SELECT count(*) FROM n").fetchone())
    conn.execute("BEGIN")  # a later transaction (a server-side session over HTTP)
    conn.execute("INSERT INTO n VALUES (2)")
    seen += [conn.execute("SELECT count(*) FROM n").fetchone(), conn.execute("PRAGMA recursive_triggers").fetchone()]
    conn.execute("COMMIT")
    conn.execute("PRAGMA recursive_triggers = off")
    conn.execute("INSERT INTO n VALUES (1)")  # fires once: no recursion any more
    seen += [conn.execute("SELECT count(*) FROM n").fetchone(), conn.execute("PRAGMA recursive_triggers").fetchone()]
    return seen


def test_recursive_triggers_hold_for_the_connection_as_with_the_local_driver(connect):
    local = local_connection(isolation_level=None)
    try:
        expected = _recursive_triggers(local)
    finally:
        local.close()
    assert expected == [(0,), (5,), (10,), (14,), (1,), (16,), (0,)]
    assert _recursive_triggers(connect(isolation_level=None)) == expected


def test_a_connections_pragmas_do_not_reach_other_connections(connect):
    conn = connect()
    conn.execute("PRAGMA recursive_triggers=on")
    conn.execute("CREATE TABLE n(i)")
    conn.execute(RECURSIVE_TRIGGER)
    for other in (connect(), connect(OTHER)):  # the same token, another token
        assert other.execute("PRAGMA recursive_triggers").fetchone() == (0,)
        other.execute("DELETE FROM n")
        other.execute("INSERT INTO n VALUES (1)")
        assert other.execute("SELECT count(*) FROM n").fetchone() == (2,)  # the trigger fires once
        other.commit()
    conn.execute("INSERT INTO n VALUES (1)")
    assert conn.execute("SELECT count(*) FROM n").fetchone() == (2 + 5,)
    conn.rollback()
    assert conn.execute("PRAGMA recursive_triggers").fetchone() == (1,)


def _defer_foreign_keys(conn) -> list:
    """``defer_foreign_keys`` lasts until the next transaction ends (SQLite turns it off at
    each COMMIT and ROLLBACK), unlike ``recursive_triggers``."""
    conn.execute("CREATE TABLE t(v)")
    conn.execute("PRAGMA defer_foreign_keys = on")
    seen = [conn.execute("PRAGMA defer_foreign_keys").fetchone()]
    conn.execute("SELECT count(*) FROM t").fetchall()  # an autocommit transaction ends
    seen.append(conn.execute("PRAGMA defer_foreign_keys").fetchone())
    conn.execute("PRAGMA defer_foreign_keys = on")
    conn.execute("INSERT INTO t VALUES (1)")  # opens a transaction: the setting holds in it
    seen.append(conn.execute("PRAGMA defer_foreign_keys").fetchone())
    conn.commit()
    seen.append(conn.execute("PRAGMA defer_foreign_keys").fetchone())
    conn.execute("INSERT INTO t VALUES (2)")
    conn.execute("PRAGMA defer_foreign_keys = 1")  # inside a transaction
    seen.append(conn.execute("PRAGMA defer_foreign_keys").fetchone())
    conn.rollback()
    seen.append(conn.execute("PRAGMA defer_foreign_keys").fetchone())
    return seen


def test_defer_foreign_keys_lasts_one_transaction_as_with_the_local_driver(connect):
    local = local_connection()
    try:
        expected = _defer_foreign_keys(local)
    finally:
        local.close()
    assert expected == [(1,), (0,), (1,), (0,), (1,), (0,)]
    assert _defer_foreign_keys(connect()) == expected


def test_a_bad_pragma_value_is_refused_and_changes_nothing(connect):
    conn = connect()
    with pytest.raises(OperationalError, match="expected on/off"):
        conn.execute("PRAGMA recursive_triggers = sometimes")
    assert conn.execute("PRAGMA recursive_triggers").fetchone() == (0,)


def test_an_error_after_a_setting_reads_as_the_statements_own(connect):
    conn = connect(isolation_level=None)
    conn.execute("PRAGMA recursive_triggers=on")  # autocommit requests now carry it first
    conn.execute("CREATE TABLE u(v UNIQUE)")
    conn.execute("INSERT INTO u VALUES (1)")
    with pytest.raises(dolite.IntegrityError) as failed:
        conn.execute("INSERT INTO u VALUES (1)")
    assert str(failed.value).startswith("UNIQUE constraint failed")


def test_connection_pragmas_sqlalchemy_and_sqlite_utils_send(connect):
    conn = connect()
    assert conn.execute("PRAGMA read_uncommitted").fetchone() == (0,)
    conn.execute("PRAGMA read_uncommitted = 1")
    assert conn.execute("PRAGMA read_uncommitted").fetchone() == (1,)
    conn.execute("PRAGMA recursive_triggers = off")
    conn.execute("PRAGMA foreign_keys=OFF;")  # what the server runs with
    with pytest.raises(NotSupportedError, match="foreign_keys"):
        conn.execute("PRAGMA foreign_keys = on")
    conn.execute("PRAGMA recursive_triggers = on")  # sqlite-utils: now held for the connection
    assert conn.execute("PRAGMA recursive_triggers").fetchone() == (1,)
