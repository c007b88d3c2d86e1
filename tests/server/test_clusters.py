"""Clusters over HTTP against a real ``dolite serve``: create, routed queries, atomic
batches across shards, fan-out, scopes on the cluster name, errors, metrics."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.server.conftest import Server

TOKENS = {"tokens": [
    {"token": "admin-token-1", "scopes": {"*": "admin"}},
    {"token": "bank-reader", "scopes": {"bank": "read"}},
    {"token": "bank-writer", "scopes": {"bank": "write"}},
]}
KEYS = ["alice", "bob", "carol", "dave", "erin", "frank"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    path = tmp_path_factory.mktemp("clusters")
    (path / "tokens.json").write_text(json.dumps(TOKENS))
    server = Server(f"lmdb:{path}/data", "--token-file", str(path / "tokens.json"), "--max-statements", "20",
                    "--statement-timeout", "1", token="admin-token-1", log=path / "server.log").start()
    with server.http() as http:
        assert http.post("/v1/clusters", json={"name": "bank", "shards": 4}).status_code == 201
        q = query(http, {"all": True, "sql": "CREATE TABLE acct(id TEXT PRIMARY KEY, bal INTEGER NOT NULL)"})
        assert q.status_code == 200, q.text
        for key in KEYS:
            assert query(http, {"key": key, "sql": "INSERT INTO acct VALUES (?, 100)", "params": [key]}).status_code == 200
    yield server
    server.stop()


def query(http: httpx.Client, body: dict, name: str = "bank") -> httpx.Response:
    return http.post(f"/v1/clusters/{name}/query", json=body)


def as_token(srv, token: str) -> httpx.Client:
    return srv.http(token)


def balances(http) -> dict:
    r = query(http, {"all": True, "sql": "SELECT id, bal FROM acct"})
    assert r.status_code == 200, r.text
    return dict(map(tuple, r.json()["rows"]))


def code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_create_list_info_and_refusals(srv):
    with srv.http() as http:
        assert code(http.post("/v1/clusters", json={"name": "bank", "shards": 4})) == (409, "already_exists")
        assert code(http.post("/v1/clusters", json={"name": "x", "shards": "4"})) == (400, "bad_request")
        assert code(http.post("/v1/clusters", json={"name": "x"})) == (400, "bad_request")
        assert http.get("/v1/clusters").json() == {"clusters": ["bank"]}
        info = http.get("/v1/clusters/bank").json()
        assert [s["name"] for s in info["shards"]] == [f"bank.s{i}" for i in range(4)]
        assert sum(s["slots"] for s in info["shards"]) == info["slots"] == 1024
        assert all(s["in_doubt"] == [] and s["size"] > 0 for s in info["shards"])
        assert code(http.get("/v1/clusters/nope")) == (404, "database_not_found")
        assert code(query(http, {"key": "a", "sql": "SELECT 1"}, "nope")) == (404, "database_not_found")
    with as_token(srv, "bank-writer") as writer:
        assert code(writer.post("/v1/clusters", json={"name": "bank2", "shards": 2})) == (403, "forbidden")


def test_a_routed_query_runs_on_the_shard_of_its_key(srv):
    with srv.http() as http:
        shards = set()
        for key in KEYS:
            r = query(http, {"key": key, "sql": "SELECT bal FROM acct WHERE id = ?", "params": [key]})
            assert r.status_code == 200, r.text
            assert r.json()["rows"] == [[100]] or r.json()["rows"][0][0] >= 0
            shards.add(r.json()["shard"])
            # the row is on the shard named, and only there
            other = query(http, {"key": key + "-elsewhere", "sql": "SELECT count(*) FROM acct WHERE id = ?",
                                 "params": [key]}).json()
            assert other["rows"] == [[1 if other["shard"] == r.json()["shard"] else 0]]
        assert len(shards) > 1


def test_a_batch_across_shards_is_atomic(srv):
    with srv.http() as http:
        before = balances(http)
        move = [{"key": "alice", "sql": "UPDATE acct SET bal = bal - 10 WHERE id = 'alice'"},
                {"key": "bob", "sql": "UPDATE acct SET bal = bal + 10 WHERE id = 'bob'"}]
        shards = {query(http, {"key": k, "sql": "SELECT 1"}).json()["shard"] for k in ("alice", "bob")}
        assert len(shards) == 2  # the test needs two shards
        failing = move + [{"key": "carol", "sql": "UPDATE acct SET bal = NULL WHERE id = 'carol'"}]
        r = query(http, {"batch": failing})
        assert code(r) == (400, "constraint")
        assert "batch[2]" in r.json()["error"]["message"] or "NOT NULL" in r.json()["error"]["message"]
        assert balances(http) == before  # nothing changed on any shard
        r = query(http, {"batch": move})
        assert r.status_code == 200, r.text
        assert [x["rows_changed"] for x in r.json()["results"]] == [1, 1]
        after = balances(http)
        assert (after["alice"], after["bob"]) == (before["alice"] - 10, before["bob"] + 10)
        assert sum(after.values()) == sum(before.values())
        metrics = http.get("/metrics").text
        line = next(x for x in metrics.splitlines() if x.startswith("dolite_cluster_cross_shard_commits_total"))
        assert float(line.split()[-1]) >= 1
        assert "dolite_cluster_2pc_seconds_count" in metrics and "dolite_cluster_in_doubt_resolutions_total" in metrics


def test_fan_out_reads_every_shard_and_writes_all_or_none(srv):
    with srv.http() as http:
        r = query(http, {"all": True, "sql": "SELECT id FROM acct ORDER BY id"})
        body = r.json()
        assert body["columns"] == ["id"] and body["shards"] == 4
        assert sorted(row[0] for row in body["rows"]) == sorted(KEYS)
        # a write on every shard is one transaction: it fails on a shard that has the row -> none
        r = query(http, {"all": True, "sql": "INSERT INTO acct VALUES ('alice', 1)"})
        assert code(r) == (400, "constraint")
        assert sorted(row[0] for row in query(http, {"all": True, "sql": "SELECT id FROM acct"}).json()["rows"]) == sorted(KEYS)
        assert query(http, {"all": True, "sql": "CREATE TABLE IF NOT EXISTS notes(v)"}).status_code == 200
        counts = query(http, {"all": True, "sql": "SELECT count(*) FROM sqlite_schema WHERE name = 'notes'"})
        assert counts.json()["rows"] == [[1]] * 4


def test_scopes_on_the_cluster_name(srv):
    with as_token(srv, "bank-reader") as reader:
        assert query(reader, {"key": "alice", "sql": "SELECT bal FROM acct WHERE id = 'alice'"}).status_code == 200
        assert query(reader, {"all": True, "sql": "SELECT count(*) FROM acct"}).status_code == 200
        assert reader.get("/v1/clusters/bank").status_code == 200
        assert reader.get("/v1/clusters").json() == {"clusters": ["bank"]}
        for body in ({"key": "alice", "sql": "UPDATE acct SET bal = 0"},
                     {"all": True, "sql": "DELETE FROM acct"},
                     {"batch": [{"key": "bob", "sql": "SELECT 1"}, {"key": "alice", "sql": "DELETE FROM acct"}]}):
            r = query(reader, body)
            assert code(r) == (403, "forbidden"), r.text
        assert code(reader.get("/v1/databases/bank.s0")) == (403, "forbidden")  # the shard's own name
    with as_token(srv, "bank-writer") as writer:
        assert query(writer, {"key": "zed", "sql": "INSERT INTO acct VALUES ('zed', 0)"}).status_code == 200
        assert query(writer, {"key": "zed", "sql": "DELETE FROM acct WHERE id = 'zed'"}).status_code == 200
    with srv.http() as http:
        assert "zed" not in balances(http) and balances(http)["alice"] >= 0
    assert httpx.post(srv.url + "/v1/clusters/bank/query", json={"key": "a", "sql": "SELECT 1"}).status_code == 401


@pytest.mark.parametrize("body, expected", [
    ({"key": "a", "sql": "COMMIT"}, (400, "transaction_control")),
    ({"batch": [{"key": "a", "sql": "SELECT 1"}, {"key": "b", "sql": "  begin"}]}, (400, "transaction_control")),
    ({"key": "a", "sql": "ATTACH 'bank.s1' AS other"}, (403, "sql_not_allowed")),
    ({"key": "a", "sql": "CREATE TEMP TABLE t(v)"}, (403, "sql_not_allowed")),
    ({"key": "a", "sql": "PRAGMA recursive_triggers = 1"}, (403, "sql_not_allowed")),
    ({"key": "a", "sql": "SELECT 1; DELETE FROM acct"}, (400, "bad_statement")),
    ({"key": 1.5, "sql": "SELECT 1"}, (400, "bad_value")),
    ({"sql": "SELECT 1"}, (400, "bad_value")),
    ({"all": 1, "sql": "SELECT 1"}, (400, "bad_value")),
    ({"batch": [{"key": "a", "sql": "SELECT 1"}] * 21}, (400, "bad_value")),
    ({"key": "a", "sql": "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
                         "SELECT count(*) FROM r"}, (400, "time_limit")),
])
def test_refusals_change_nothing(srv, body, expected):
    with srv.http() as http:
        before = balances(http)
        r = query(http, body)
        assert code(r) == expected, r.text
        assert balances(http) == before
