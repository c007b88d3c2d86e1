"""The server side of "the HTTP DB-API behaves like the local one" (issue #11 item 4):
savepoints in sessions, connection settings for one request or session, large results
paged on one snapshot (``page_rows`` / ``continue``), published limits. Over a real
``dolite serve``, through the HTTP driver and the raw API."""

from __future__ import annotations

import itertools

import pytest

import dolite
from tests.server.conftest import start_with_second_admin

OTHER = "other-token-2"  # a second admin token: state must not leak from one token to another
MAX_BODY, MAX_STATEMENTS, MAX_RESULT = 65536, 50, 200_000
_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_with_second_admin(tmp_path_factory.mktemp("compat"), OTHER, "--max-body", str(MAX_BODY),
                                  "--max-statements", str(MAX_STATEMENTS), "--max-result", str(MAX_RESULT),
                                  "--session-timeout", "5")
    yield srv
    srv.stop()


@pytest.fixture
def connect(server):
    """Open HTTP DB-API connections to a fresh database (closed after the test)."""
    name, opened = f"compat{next(_names)}", []

    def open_(token: str | None = None, **options):
        conn = dolite.connect(f"{server.url}/{name}", token=token or server.token, **options)
        opened.append(conn)
        return conn

    open_.database = name
    yield open_
    for conn in opened:
        conn.close()


def _query(http, path: str, body: dict, status: int = 200) -> dict:
    answer = http.post(path, json=body)
    assert answer.status_code == status, answer.text
    return answer.json()


# -- savepoints ----------------------------------------------------------------------------

SAVEPOINT_SCRIPT = [
    "CREATE TABLE t(v INTEGER UNIQUE)",
    "INSERT INTO t VALUES (1)",       # opens the transaction (a session over HTTP)
    "SAVEPOINT a",
    "INSERT INTO t VALUES (2)",
    "SAVEPOINT b",
    "INSERT INTO t VALUES (3)",
    "ROLLBACK TO b",
    "INSERT INTO t VALUES (4)",
    "RELEASE a",
    "SAVEPOINT c",
    "INSERT INTO t VALUES (5)",
    "ROLLBACK TRANSACTION TO SAVEPOINT c",
    "RELEASE SAVEPOINT c",
]


def _run_savepoints(conn) -> list:
    for sql in SAVEPOINT_SCRIPT:
        conn.execute(sql)
    with pytest.raises(dolite.IntegrityError):
        conn.execute("INSERT INTO t VALUES (4)")  # a failed statement keeps the savepoints
    conn.execute("SAVEPOINT d")
    conn.execute("INSERT INTO t VALUES (6)")
    conn.execute("ROLLBACK TO d")
    conn.commit()
    return conn.execute("SELECT v FROM t ORDER BY v").fetchall()


def test_savepoints_over_http_give_the_rows_of_the_local_driver(connect):
    local = dolite.connect("sp", storage=f"memory:compat-sp{next(_names)}")
    try:
        expected = _run_savepoints(local)
    finally:
        local.close()
    assert expected == [(1,), (2,), (4,)]
    assert _run_savepoints(connect()) == expected


def test_sqlalchemy_begin_nested_over_http(server, connect):
    sa = pytest.importorskip("sqlalchemy")
    import dolite.sqlalchemy  # noqa: F401  (registers sqlite+dolite+http)
    connect()  # creates the database
    engine = sa.create_engine(f"sqlite+dolite+http://127.0.0.1:{server.port}/{connect.database}?token={server.token}")
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TABLE t(v)"))
        conn.commit()
        with conn.begin():
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            with conn.begin_nested():
                conn.execute(sa.text("INSERT INTO t VALUES (2)"))
            nested = conn.begin_nested()
            conn.execute(sa.text("INSERT INTO t VALUES (3)"))
            nested.rollback()
        assert conn.execute(sa.text("SELECT v FROM t ORDER BY v")).all() == [(1,), (2,)]
    engine.dispose()


@pytest.mark.parametrize("sql", ["RELEASE dolite_request", "ROLLBACK TO dolite_request",
                                 'RELEASE "DOLITE_REQUEST"', "SAVEPOINT dolite_request"])
def test_a_user_cannot_use_the_servers_own_savepoint(server, connect, sql):
    conn = connect()
    conn.execute("CREATE TABLE t(v)")
    with server.http() as http:
        session = f"/v1/databases/{connect.database}/sessions/" + _query(
            http, f"/v1/databases/{connect.database}/sessions", {}, 201)["session"]
        _query(http, session + "/query", {"sql": "INSERT INTO t VALUES (1)"})
        error = _query(http, session + "/query", {"sql": sql}, 400)["error"]
        assert error["code"] == "transaction_control" and "dolite_request" in error["message"]
        _query(http, session + "/query", {"sql": "INSERT INTO t VALUES (2)"})  # the session goes on
        _query(http, session + "/commit", {})
    assert conn.execute("SELECT v FROM t ORDER BY v").fetchall() == [(1,), (2,)]


@pytest.mark.parametrize("body, status", [
    ({"sql": "SAVEPOINT a; INSERT INTO t VALUES (9)"}, 400),  # not alone in its request
    ({"batch": [{"sql": "SAVEPOINT a"}]}, 400),               # in a batch: its wrapping would end it
    ({"sql": "SAVEPOINT a -- alone\n;"}, 200),               # alone (then rolled back to below)
])
def test_savepoints_only_as_a_session_request_of_their_own(server, connect, body, status):
    connect().execute("CREATE TABLE t(v)")
    db = f"/v1/databases/{connect.database}"
    with server.http() as http:
        _query(http, db + "/query", {"sql": "SAVEPOINT a"}, 400)  # outside a session: the request is the transaction
        session = f"{db}/sessions/" + _query(http, db + "/sessions", {}, 201)["session"]
        _query(http, session + "/query", {"sql": "INSERT INTO t VALUES (1)"})
        _query(http, session + "/query", body, status)
        _query(http, session + "/query", {"sql": "INSERT INTO t VALUES (2)"})
        # only the savepoint sent alone was left open; nothing of a refused request ran
        _query(http, session + "/query", {"sql": "ROLLBACK TO a"}, status)
        _query(http, session + "/commit", {})
        rows = _query(http, db + "/query", {"sql": "SELECT v FROM t ORDER BY v"})["rows"]
    assert rows == ([[1]] if status == 200 else [[1], [2]])


# -- connection settings for one request or session ----------------------------------------


def test_recursive_triggers_last_one_request_and_do_not_leak(server, connect):
    connect()  # creates the database
    db = f"/v1/databases/{connect.database}/query"
    recurse = [
        {"sql": "PRAGMA recursive_triggers=on"},
        {"sql": "CREATE TABLE IF NOT EXISTS n(i)"},
        {"sql": "CREATE TRIGGER IF NOT EXISTS up AFTER INSERT ON n WHEN new.i < 5 "
                "BEGIN INSERT INTO n VALUES (new.i + 1); END"},
        {"sql": "INSERT INTO n VALUES (1)"},
        {"sql": "SELECT count(*) FROM n"},
        {"sql": "PRAGMA recursive_triggers"},
    ]
    with server.http() as admin, server.http(OTHER) as other:
        results = _query(admin, db, {"batch": recurse})["results"]
        assert results[4]["rows"] == [[5]] and results[5]["rows"] == [[1]]
        assert _query(admin, db, {"sql": "PRAGMA recursive_triggers=on"})["rows"] == []
        assert _query(other, db, {"sql": "PRAGMA recursive_triggers"})["rows"] == [[0]]
        results = _query(other, db, {"batch": recurse[3:]})["results"]  # the trigger fires once: no recursion
        assert results[1]["rows"] == [[5 + 2]] and results[2]["rows"] == [[0]]


def test_a_sessions_settings_last_until_it_ends(server, connect):
    connect()
    db = f"/v1/databases/{connect.database}"
    with server.http() as admin, server.http(OTHER) as other:
        session = f"{db}/sessions/" + _query(admin, db + "/sessions", {}, 201)["session"]
        _query(admin, session + "/query", {"sql": "PRAGMA recursive_triggers = 1"})
        _query(admin, session + "/query", {"sql": "PRAGMA defer_foreign_keys = 1"})
        assert _query(admin, session + "/query", {"sql": "PRAGMA recursive_triggers"})["rows"] == [[1]]
        _query(admin, session + "/rollback", {})
        assert _query(other, db + "/query", {"sql": "PRAGMA recursive_triggers"})["rows"] == [[0]]
        assert _query(other, db + "/query", {"sql": "PRAGMA defer_foreign_keys"})["rows"] == [[0]]
        # foreign_keys cannot change inside a transaction (SQLite ignores it there): refused, not ignored
        assert _query(admin, db + "/query", {"sql": "PRAGMA foreign_keys = on"}, 403)["error"]["code"] == \
            "sql_not_allowed"


def test_sqlite_utils_over_http(connect):
    sqlite_utils = pytest.importorskip("sqlite_utils")
    db = sqlite_utils.Database(connect())
    dogs = db["dogs"]
    dogs.insert_all([{"id": 1, "name": "Cleo", "age": 4}, {"id": 2, "name": "Pancakes", "age": 2}], pk="id")
    dogs.upsert({"id": 1, "name": "Cleo", "weight": 12.5}, pk="id", alter=True)
    assert list(dogs.rows) == [{"id": 1, "name": "Cleo", "age": 4, "weight": 12.5},
                               {"id": 2, "name": "Pancakes", "age": 2, "weight": None}]


# -- large results -------------------------------------------------------------------------

ROWS, WIDTH = 20_000, 1000  # 20 MB of text: about a hundred pages of MAX_RESULT


def test_a_large_result_pages_by_continuation_on_one_snapshot(connect):
    conn = connect()
    conn.execute("CREATE TABLE big(i INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO big WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?) "
                 "SELECT i, printf('%.*c', ?, 'x') FROM c", [ROWS, WIDTH])
    conn.commit()
    assert conn.max_page_rows > 0  # learnt from /healthz
    cur = conn.execute("SELECT i, v, i FROM big ORDER BY i")  # a duplicate name: kept as is
    assert [d[0] for d in cur.description] == ["i", "v", "i"]
    first = cur.fetchmany(10)
    writer = connect(OTHER)
    writer.execute("DELETE FROM big WHERE i > ?", [ROWS // 2])
    writer.execute("INSERT INTO big VALUES (?, 'new')", [ROWS + 1])
    writer.commit()
    rest = cur.fetchall()
    assert len(first) + len(rest) == ROWS  # the write in between is not seen
    assert [r[0] for r in first + rest] == list(range(1, ROWS + 1))
    assert {len(r[1]) for r in first + rest} == {WIDTH}
    assert writer.execute("SELECT count(*) FROM big").fetchone() == (ROWS // 2 + 1,)


def test_paged_queries_over_the_raw_api(server, connect):
    connect()
    db = f"/v1/databases/{connect.database}"
    sql = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 25) SELECT i FROM c"
    with server.http() as admin, server.http(OTHER) as other:
        page = _query(admin, db + "/query", {"sql": sql, "params": [], "page_rows": 10})
        assert page["columns"] == ["i"] and page["rows"] == [[i] for i in range(1, 11)]
        assert _query(other, db + "/query", {"continue": page["next"]}, 403)["error"]["code"] == "forbidden"
        page = _query(admin, db + "/query", {"continue": page["next"], "page_rows": 12})
        assert page["rows"] == [[i] for i in range(11, 23)]
        page = _query(admin, db + "/query", {"continue": page["next"]})
        assert page["rows"] == [[i] for i in range(23, 26)] and "next" not in page
        page = _query(admin, db + "/query", {"sql": "SELECT 1", "page_rows": 5})
        assert page["rows"] == [[1]] and "next" not in page
        for bad in ({"sql": sql, "page_rows": 0}, {"sql": sql, "page_rows": "10"},
                    {"continue": 5}, {"continue": "x", "sql": sql}):
            assert _query(admin, db + "/query", bad, 400)["error"]["code"] == "bad_request"
        assert _query(admin, db + "/query", {"continue": "no-such-thing"}, 404)["error"]["code"] == \
            "session_not_found"
        write = _query(admin, db + "/sessions", {}, 201)["session"]
        _query(admin, db + "/query", {"continue": write}, 404)  # a write session holds no paged result
        _query(admin, f"{db}/sessions/{write}/rollback", {})
        _query(admin, db + "/query", {"sql": "CREATE TABLE w(v)"})
        error = _query(admin, db + "/query", {"sql": "DELETE FROM w", "page_rows": 5}, 403)
        assert error["error"]["code"] == "forbidden"  # a paged query only reads


def test_limits_are_published_and_the_driver_takes_them(server, connect):
    with server.http() as http:
        limits = http.get("/healthz").json()["limits"]
    assert {k: limits[k] for k in ("max_statements", "max_body_bytes", "max_result_bytes")} == \
        {"max_statements": MAX_STATEMENTS, "max_body_bytes": MAX_BODY, "max_result_bytes": MAX_RESULT}
    conn = connect()
    assert (conn.max_statements, conn.max_body, conn.max_page_rows) == \
        (MAX_STATEMENTS, MAX_BODY, limits["max_page_rows"])
