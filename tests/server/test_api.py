"""Queries, batches, values, errors and bounds: the app in-process (``app_http``); the
Python client and DB-API driver against a real server process (they take a URL)."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest


def query(http, db, sql, params=(), status=200):
    r = http.post(f"/v1/databases/{db}/query", json={"sql": sql, "params": list(params)})
    assert r.status_code == status, r.text
    return r.json()


def batch(http, db, statements, status=200):
    body = {"batch": [{"sql": s, "params": list(p)} for s, *rest in statements for p in [rest[0] if rest else []]]}
    r = http.post(f"/v1/databases/{db}/query", json=body)
    assert r.status_code == status, r.text
    return r.json()


def error(response, status, code=None):
    assert response.status_code == status, response.text
    doc = response.json()
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}
    if code:
        assert doc["error"]["code"] == code, doc
    return doc["error"]


def count(http, db, table="t"):
    return query(http, db, f"SELECT count(*) FROM {table}")["rows"][0][0]


def test_query_result_shape(app_http, app_db):
    query(app_http, app_db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    r = query(app_http, app_db, "INSERT INTO t(v) VALUES (?), (?)", ["a", "b"])
    assert r["rows_changed"] == 2 and r["last_insert_rowid"] == 2 and r["duration_ms"] >= 0
    r = query(app_http, app_db, "SELECT id, v FROM t ORDER BY id")
    assert r["columns"] == ["id", "v"] and r["rows"] == [[1, "a"], [2, "b"]] and r["rows_changed"] == 0
    r = query(app_http, app_db, "SELECT * FROM t WHERE 0")
    assert r["columns"] == ["id", "v"] and r["rows"] == []


def test_values_round_trip_exactly(app_http, app_db):
    big = 2**63 - 1
    r = query(app_http, app_db, "SELECT ?, ?, ?, ?, ?, 9007199254740993, 1e999, x'00ff'",
              [{"type": "blob", "base64": "AAEC"}, {"type": "integer", "value": str(big)}, 2**53 - 1, None, "é\u2603"])
    assert r["rows"] == [[{"type": "blob", "base64": "AAEC"}, {"type": "integer", "value": str(big)}, 2**53 - 1,
                          None, "é\u2603", {"type": "integer", "value": "9007199254740993"},
                          {"type": "float", "value": "Infinity"}, {"type": "blob", "base64": "AP8="}]]
    r = app_http.post(f"/v1/databases/{app_db}/query", json={"sql": "SELECT :a + :b", "params": {":a": 1, "b": 2}})
    assert r.json()["rows"] == [[3]]


def test_batch_is_one_transaction(app_http, app_db):
    r = batch(app_http, app_db, [("CREATE TABLE t(id INTEGER PRIMARY KEY, v UNIQUE)",),
                                 ("INSERT INTO t(v) VALUES (1)",), ("SELECT count(*) FROM t",)])
    assert [x["rows"] for x in r["results"]] == [[], [], [[1]]]
    # The third statement fails: the first two must leave no trace.
    e = error(app_http.post(f"/v1/databases/{app_db}/query", json={"batch": [
        {"sql": "INSERT INTO t(v) VALUES (2)"}, {"sql": "UPDATE t SET v = v + 100"},
        {"sql": "INSERT INTO t(v) VALUES (101)"}]}), 400, "constraint")
    assert "batch[2]" in e["message"]
    assert query(app_http, app_db, "SELECT v FROM t")["rows"] == [[1]]
    error(app_http.post(f"/v1/databases/{app_db}/query", json={"batch": [
        {"sql": "INSERT INTO t(v) VALUES (3)"}, {"sql": "SELEC oops"}]}), 400, "sql_error")
    assert count(app_http, app_db) == 1


@pytest.mark.parametrize("sql, status, code", [
    ("ATTACH DATABASE '/tmp/dolite-attack.db' AS x", 403, "sql_not_allowed"),
    ("DETACH DATABASE main", 403, "sql_not_allowed"),
    ("VACUUM INTO '/tmp/dolite-attack.db'", 403, "sql_not_allowed"),
    ("SELECT load_extension('/tmp/evil.so')", 403, "sql_not_allowed"),
    ("PRAGMA journal_mode = WAL", 403, "sql_not_allowed"),
    ("PRAGMA synchronous = OFF", 403, "sql_not_allowed"),
    ("PRAGMA writable_schema = 1", 403, "sql_not_allowed"),
    ("PRAGMA temp_store_directory = '/tmp'", 403, "sql_not_allowed"),
    ("PRAGMA mmap_size = 1000000", 403, "sql_not_allowed"),
    ("BEGIN", 400, "transaction_control"),
    ("COMMIT", 400, "transaction_control"),
    ("SAVEPOINT s", 400, "transaction_control"),
    ("CREATE TEMP TRIGGER tt AFTER INSERT ON t BEGIN SELECT 1; END", 403, "sql_not_allowed"),
])
def test_authorizer_refusals(app_http, app_db, sql, status, code, tmp_path):
    query(app_http, app_db, "CREATE TABLE t(v)")
    error(app_http.post(f"/v1/databases/{app_db}/query", json={"sql": sql}), status, code)
    assert not __import__("os").path.exists("/tmp/dolite-attack.db")
    assert query(app_http, app_db, "PRAGMA journal_mode")["rows"] == [["memory"]]
    query(app_http, app_db, "INSERT INTO t VALUES (1)")
    assert count(app_http, app_db) == 1


def test_vacuum_and_harmless_pragmas_work(app_http, app_db):
    batch(app_http, app_db, [("CREATE TABLE t(v)",), ("INSERT INTO t VALUES (randomblob(5000))",)])
    query(app_http, app_db, "DELETE FROM t")
    query(app_http, app_db, "VACUUM")
    assert query(app_http, app_db, "PRAGMA integrity_check")["rows"] == [["ok"]]
    assert query(app_http, app_db, "PRAGMA table_info(t)")["rows"][0][1] == "v"
    query(app_http, app_db, "PRAGMA user_version = 7")
    assert query(app_http, app_db, "PRAGMA user_version")["rows"] == [[7]]


@pytest.mark.parametrize("body, code", [
    (b"{not json", "bad_json"),
    (b"\xff\xfe", "bad_json"),
    (b"[1, 2]", "bad_request"),
    (b'{"sql": 5}', "bad_request"),
    (b'{"sql": ""}', "bad_request"),
    (b'{"sql": "SELECT 1", "params": "x"}', "bad_request"),
    (b'{"sql": "SELECT ?", "params": [{"type": "blob", "base64": "!!"}]}', "bad_request"),
    (b'{"sql": "SELECT ?", "params": [99999999999999999999999]}', "bad_request"),
    (b'{"sql": "SELECT ?", "params": [{"nested": [1]}]}', "bad_request"),
    (b'{"sql": "SELECT 1", "extra": 1}', "bad_request"),
    (b'{"batch": []}', "bad_request"),
    (b'{"batch": [{"sql": "SELECT 1"}], "sql": "x"}', "bad_request"),
    (b'{"sql": "SELECT ?", "params": ["\\ud800"]}', "bad_value"),
    (b'{"sql": "SELECT ?, ?", "params": [1]}', "bad_statement"),
    (b'{"sql": "SELECT 1; SELECT 2"}', "multiple_statements"),
    (b'{"sql": "SELECT nope FROM nowhere"}', "sql_error"),
    (b'{"sql": "SELECT CAST(x\'ff\' AS TEXT)"}', "bad_value"),
    (b"[" * 100000 + b"]" * 100000, None),
])
def test_bad_requests_are_json_400(app_http, app_db, body, code):
    r = app_http.post(f"/v1/databases/{app_db}/query", content=body, headers={"content-type": "application/json"})
    error(r, 413 if len(body) > 65536 else 400, code)
    assert query(app_http, app_db, "SELECT 1")["rows"] == [[1]]


@pytest.mark.parametrize("name", ["a..b", ".hidden", "-x", "a" * 129, "sp ace", "semi;colon", "%2e%2e"])
def test_bad_names(app_http, name):
    r = app_http.post(f"/v1/databases/{name}/query", json={"sql": "SELECT 1"})
    error(r, 400, "invalid_name")
    error(app_http.post("/v1/databases", json={"name": name}), 400, "invalid_name")


def test_slash_and_traversal_never_reach_a_database(app_http):
    for path in ["/v1/databases/a/b/query", "/v1/databases/../query", "/v1/databases/a%2Fb/query",
                 "/v1/databases//query"]:
        r = app_http.post(path, json={"sql": "SELECT 1"})
        assert r.status_code in (400, 404), (path, r.text)
        assert "error" in r.json()
    error(app_http.post("/v1/databases", json={"name": "a/b"}), 400, "invalid_name")
    error(app_http.post("/v1/databases", json={"name": ""}), 400, "invalid_name")


def test_bounds(app_http, app_db):
    query(app_http, app_db, "CREATE TABLE t(v)")
    error(app_http.post(f"/v1/databases/{app_db}/query", json={"sql": "SELECT ?", "params": ["x" * 70000]}),
          413, "body_too_large")
    error(app_http.post(f"/v1/databases/{app_db}/query", json={"batch": [{"sql": "SELECT 1"}] * 51}),
          400, "bad_request")
    # A result over the limit is refused, and a write that produced it is rolled back.
    error(app_http.post(f"/v1/databases/{app_db}/query", json={
        "sql": "INSERT INTO t WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 100000) "
                "SELECT i FROM r RETURNING v"}), 413, "result_too_large")
    assert count(app_http, app_db) == 0
    error(app_http.post(f"/v1/databases/{app_db}/query", json={
        "sql": "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"}),
        400, "time_limit")
    error(app_http.post(f"/v1/databases/{app_db}/query", json={"sql": "SELECT zeroblob(100000000)"}), 400)
    assert query(app_http, app_db, "SELECT 1")["rows"] == [[1]]


def test_database_lifecycle(app_http):
    name = "lifecycle-db"
    app_http.delete(f"/v1/databases/{name}")
    error(app_http.post(f"/v1/databases/{name}/query", json={"sql": "SELECT 1"}), 404, "database_not_found")
    assert app_http.post("/v1/databases", json={"name": name}).status_code == 201
    error(app_http.post("/v1/databases", json={"name": name}), 409, "already_exists")
    query(app_http, name, "CREATE TABLE t(v)")
    assert name in app_http.get("/v1/databases").json()["databases"]
    info = app_http.get(f"/v1/databases/{name}").json()
    assert info["name"] == name and info["version"] >= 1 and info["size"] > 0
    assert app_http.delete(f"/v1/databases/{name}").json() == {"deleted": name}
    assert name not in app_http.get("/v1/databases").json()["databases"]
    error(app_http.get(f"/v1/databases/{name}"), 404, "database_not_found")
    error(app_http.delete(f"/v1/databases/{name}"), 404, "database_not_found")
    assert app_http.post("/v1/databases", json={"name": name}).status_code == 201  # fresh and empty
    error(app_http.post(f"/v1/databases/{name}/query", json={"sql": "SELECT * FROM t"}), 400, "sql_error")


def test_export_and_import(app_http, app_db, tmp_path):
    fill = "INSERT INTO t WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 3000) SELECT i FROM r"
    batch(app_http, app_db, [("CREATE TABLE t(v)",), (fill,)])
    r = app_http.get(f"/v1/databases/{app_db}/export")
    assert r.status_code == 200 and r.content.startswith(b"SQLite format 3\x00")
    path = tmp_path / "x.sqlite"
    path.write_bytes(r.content)
    assert sqlite3.connect(path).execute("SELECT count(*), sum(v) FROM t").fetchone() == (3000, 4501500)
    target = app_db[:80] + "-copy"
    app_http.delete(f"/v1/databases/{target}")
    r = app_http.post(f"/v1/databases/{target}/import", content=path.read_bytes())
    assert r.status_code == 201, r.text
    assert query(app_http, target, "SELECT count(*) FROM t")["rows"] == [[3000]]
    error(app_http.post(f"/v1/databases/{target}/import", content=path.read_bytes()), 409, "already_exists")
    error(app_http.post(f"/v1/databases/{target}/import?replace=true", content=b"not a database at all"),
          400, "not_sqlite")
    assert query(app_http, target, "SELECT count(*) FROM t")["rows"] == [[3000]]
    error(app_http.get("/v1/databases/no-such-db/export"), 404, "database_not_found")


def test_sessions(app_http, app_db):
    query(app_http, app_db, "CREATE TABLE t(v)")
    sid = app_http.post(f"/v1/databases/{app_db}/sessions").json()["session"]
    path = f"/v1/databases/{app_db}/sessions/{sid}"
    assert app_http.post(path + "/query", json={"sql": "INSERT INTO t VALUES (1)"}).status_code == 200
    error(app_http.post(path + "/query", json={"sql": "INSERT INTO nope VALUES (1)"}), 400, "sql_error")
    assert app_http.post(path + "/query", json={"sql": "SELECT count(*) FROM t"}).json()["rows"] == [[1]]
    assert app_http.post(path + "/commit").json() == {"committed": True}
    error(app_http.post(path + "/commit"), 404, "session_not_found")
    assert count(app_http, app_db) == 1
    sid = app_http.post(f"/v1/databases/{app_db}/sessions").json()["session"]
    app_http.post(f"/v1/databases/{app_db}/sessions/{sid}/query", json={"sql": "DELETE FROM t"})
    assert app_http.post(f"/v1/databases/{app_db}/sessions/{sid}/rollback").status_code == 200
    assert count(app_http, app_db) == 1
    # An abandoned session is rolled back after its idle timeout and frees the database.
    sid = app_http.post(f"/v1/databases/{app_db}/sessions").json()["session"]
    app_http.post(f"/v1/databases/{app_db}/sessions/{sid}/query", json={"sql": "DELETE FROM t"})
    assert count(app_http, app_db) == 1  # waits for the session to idle out (3 s)
    error(app_http.post(f"/v1/databases/{app_db}/sessions/{sid}/commit"), 404, "session_not_found")


def test_health_metrics_openapi_and_json_404(app_http, app_db):
    query(app_http, app_db, "CREATE TABLE t(v)")
    query(app_http, app_db, "INSERT INTO t VALUES (1)")
    health = app_http.get("/healthz").json()
    assert health["status"] == "ok" and "max_statements" in health["limits"]
    text = app_http.get("/metrics").text
    for metric in ["dolite_request_seconds_bucket", "dolite_commit_seconds_bucket", "dolite_bytes_written_total",
                   "dolite_chunks_written_total", "dolite_chunks_read_total", "dolite_bytes_read_total",
                   "dolite_cache_hits_total", "dolite_conflicts_total", "dolite_object_loads_total"]:
        assert metric in text
    spec = app_http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/v1/databases/{name}/query" in spec["paths"]
    error(app_http.get("/nowhere"), 404, "not_found")
    error(app_http.put("/healthz"), 405, "method_not_allowed")
    json.dumps(spec)


def test_python_client_and_dbapi(server, db):
    import dolite
    from dolite.remote.client import Client, NotFoundError

    with Client(server.url, token=server.token) as client:
        client.batch(db, ["CREATE TABLE t(id INTEGER PRIMARY KEY, v)", ("INSERT INTO t(v) VALUES (?)", [b"\x00\x01"])])
        assert client.query(db, "SELECT v, ? FROM t", [2**62]).rows == [(b"\x00\x01", 2**62)]
        buf = io.BytesIO()
        assert client.export_to(db, buf) > 0 and buf.getvalue().startswith(b"SQLite format 3")
        with pytest.raises(NotFoundError):
            client.query("missing-db", "SELECT 1")
    conn = dolite.connect(f"{server.url}/{db}", token=server.token)
    cur = conn.execute("INSERT INTO t(v) VALUES (?)", ["x"])
    assert cur.rowcount == 1 and cur.lastrowid == 2 and conn.in_transaction
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)  # sees its own write
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    with conn:
        conn.executemany("INSERT INTO t(v) VALUES (?)", [[1], [2], [3]])
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (4,)
    assert conn.execute("SELECT id, v FROM t WHERE 0").description[0][0] == "id"
    with pytest.raises(dolite.IntegrityError):
        conn.execute("INSERT INTO t(id) VALUES (1)")
    conn.rollback()
    with pytest.raises(dolite.OperationalError):
        conn.execute("SELECT * FROM nowhere")
    conn.executescript("CREATE TABLE u(a); INSERT INTO u VALUES ('a;b'); INSERT INTO u VALUES (2);")
    assert conn.execute("SELECT a FROM u ORDER BY rowid").fetchall() == [("a;b",), (2,)]
    conn.close()


def test_async_client(server, db):
    import asyncio

    from dolite.remote.client import AsyncClient

    async def main():
        async with AsyncClient(server.url, token=server.token) as client:
            await client.query(db, "CREATE TABLE t(v)")
            await asyncio.gather(*(client.query(db, "INSERT INTO t VALUES (?)", [i]) for i in range(20)))
            async with await client.session(db) as s:
                await s.query("UPDATE t SET v = v + 1")
            return (await client.query(db, "SELECT count(*), sum(v) FROM t")).rows

    assert asyncio.run(main()) == [(20, 210)]
