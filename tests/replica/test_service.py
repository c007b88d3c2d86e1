"""Replicas whose remote is a real ``dolite serve`` subprocess: POST .../changesets, pull
by export, the policies, exactly once, the refusals, metrics, and a replica that writes
while the service is stopped, is killed -9, and syncs once the service is back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import apsw
import httpx
import pytest

import dolite
from dolite.errors import NetworkError, NotSupportedError
from dolite.remote.client import Client
from dolite.sql.optimistic import ConflictingRows
from tests.server.conftest import ROOT, TOKEN, Server

READ_TOKEN = "replica-read-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("service")
    tokens = tmp / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"token": READ_TOKEN, "scopes": {"*": "read"}}]}))
    srv = Server(f"lmdb:{tmp}/remote", "--token-file", str(tokens)).start()
    yield srv
    srv.stop()


def new_database(url: str) -> str:
    name = f"db-{uuid.uuid4().hex[:8]}"
    with Client(url, TOKEN) as client:
        client.create(name)
        client.batch(name, ["CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)",
                            "INSERT INTO t VALUES (1, 'a'), (2, 'b')"])
    return name


def remote_rows(url: str, name: str, table: str = "t") -> list[tuple]:
    with Client(url, TOKEN) as client:
        return client.query(name, f"SELECT * FROM {table} ORDER BY 1").rows


def write_remote(url: str, name: str, sql: str) -> None:
    with Client(url, TOKEN) as client:
        client.query(name, sql)


def open_replica(url: str, name: str, **options):
    return dolite.replica(name, remote=url, local=f"memory:{uuid.uuid4().hex}", token=TOKEN, **options)


def local_update(replica, sql: str) -> None:
    conn = replica.connect()
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("policy, expected", [
    ("ours", [(1, "local"), (2, "b"), (3, "new")]),
    ("theirs", [(1, "remote"), (2, "b"), (3, "new")]),
])
def test_sync_through_the_service_under_each_policy(server, policy, expected):
    name = new_database(server.url)
    r = open_replica(server.url, name, on_conflict=policy)
    local_update(r, "UPDATE t SET v = 'local' WHERE k = 1")
    local_update(r, "INSERT INTO t VALUES (3, 'new')")
    write_remote(server.url, name, "UPDATE t SET v = 'remote' WHERE k = 1")
    assert r.sync()["pushed"] == 2
    assert r.pending() == []
    assert remote_rows(server.url, name) == expected
    assert r.connect().execute("SELECT * FROM t ORDER BY k").fetchall() == expected
    r.close()


def test_abort_answers_the_conflicting_rows_and_keeps_the_transaction_pending(server):
    name = new_database(server.url)
    r = open_replica(server.url, name)
    local_update(r, "UPDATE t SET v = x'00ff' WHERE k = 1")
    write_remote(server.url, name, "UPDATE t SET v = 'remote' WHERE k = 1")
    with pytest.raises(ConflictingRows) as raised:
        r.sync()
    assert raised.value.pending == 1
    assert [(c.table, c.key, c.kind, c.reason, c.stored, c.ours) for c in raised.value.conflicts] == [
        ("t", (1,), "update", "changed", {"k": 1, "v": "remote"}, {"k": 1, "v": b"\x00\xff"})]
    assert [p.seq for p in r.pending()] == [1]
    assert remote_rows(server.url, name) == [(1, "remote"), (2, "b")]
    r.sync(on_conflict="theirs")
    assert r.pending() == []
    assert r.connect().execute("SELECT * FROM t ORDER BY k").fetchall() == [(1, "remote"), (2, "b")]
    r.close()


def test_a_callable_policy_cannot_cross_http(server):
    name = new_database(server.url)
    with pytest.raises(NotSupportedError, match="callable"):
        open_replica(server.url, name, on_conflict=lambda conflict: "ours")
    r = open_replica(server.url, name)
    local_update(r, "UPDATE t SET v = 'local' WHERE k = 1")
    with pytest.raises(NotSupportedError, match="callable"):
        r.sync(on_conflict=lambda conflict: "ours")
    assert len(r.pending()) == 1
    assert remote_rows(server.url, name) == [(1, "a"), (2, "b")]
    r.close()


def test_pull_writes_only_the_changed_chunks(server):
    name = new_database(server.url)
    write_remote(server.url, name, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) "
                                   "INSERT INTO t SELECT i + 10, printf('%.3000d', i) FROM n")
    r = open_replica(server.url, name)
    total = r._local_db.store.read_head().chunk_count
    assert r.sync()["chunks"] == 0  # nothing changed: no download either
    write_remote(server.url, name, "UPDATE t SET v = 'changed' WHERE k = 100")
    copied = r.sync()["chunks"]
    assert 0 < copied < total // 10
    conn = r.connect()
    assert conn.execute("SELECT v FROM t WHERE k = 100").fetchone() == ("changed",)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    r.close()


def _changeset_of(name: str, url: str, sql: str) -> bytes:
    r = open_replica(url, name)
    local_update(r, sql)
    changeset = r.pending()[0].changeset
    r.close()
    return changeset


def test_the_route_applies_a_changeset_exactly_once_and_refuses_bad_requests(server):
    name = new_database(server.url)
    changeset = _changeset_of(name, server.url, "INSERT INTO t VALUES (9, 'once')")
    path = f"/v1/databases/{name}/changesets"
    binary = {"Content-Type": "application/octet-stream"}
    params = {"replica": "r1", "seq": "5", "on_conflict": "abort"}
    with server.http() as http:
        first = http.post(path, params=params, content=changeset, headers=binary)
        assert first.status_code == 200 and first.json()["applied"] is True, first.text
        again = http.post(path, params=params, content=changeset, headers=binary)  # its reply was lost
        assert again.status_code == 200 and again.json()["applied"] is False
        refusals = [
            ({**params, "on_conflict": "mine"}, changeset, binary, 400, "bad_request"),
            ({"seq": "6", "on_conflict": "abort"}, changeset, binary, 400, "bad_request"),
            ({**params, "seq": "0"}, changeset, binary, 400, "bad_request"),
            ({**params, "retries": "3"}, changeset, binary, 400, "bad_request"),
            ({**params, "seq": "7"}, changeset, {"Content-Type": "application/json"}, 400, "bad_request"),
            ({**params, "seq": "7"}, b"not a changeset", binary, 400, "bad_request"),
            ({**params, "seq": "7"}, b"", binary, 400, "bad_request"),
            ({**params, "seq": "7"}, changeset.replace(b"once", b"\xff\xfeon"), binary, 400, "bad_request"),
        ]
        for query, body, headers, status, code in refusals:
            answer = http.post(path, params=query, content=body, headers=headers)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (query, answer.text)
    with server.http(READ_TOKEN) as http:
        answer = http.post(path, params={**params, "seq": "8"}, content=changeset, headers=binary)
        assert answer.status_code == 403
    assert remote_rows(server.url, name) == [(1, "a"), (2, "b"), (9, "once")]
    with Client(server.url, TOKEN) as client:
        marks = client.query(name, "SELECT replica, seq FROM _dolite_replicas").rows
    assert marks == [("r1", 5)]


def test_a_changeset_may_not_forge_the_replicas_marks(server):
    name = new_database(server.url)
    r = open_replica(server.url, name)
    local_update(r, "INSERT INTO t VALUES (5, 'e')")
    r.sync()  # the marks table now exists, and the local copy has it
    conn = r.connect()
    conn.execute("UPDATE _dolite_replicas SET seq = 1000")
    with pytest.raises(NotSupportedError, match="reserved"):
        conn.commit()  # refused locally: it could never be pushed
    assert r.pending() == []
    assert conn.execute("SELECT seq FROM _dolite_replicas").fetchall() == [(1,)]
    r.close()
    raw = apsw.Connection(":memory:")  # a client of the route that is not a dolite replica
    raw.execute("CREATE TABLE _dolite_replicas(replica TEXT PRIMARY KEY, seq INTEGER NOT NULL, synced REAL)")
    session = apsw.Session(raw, "main")
    session.attach()
    raw.execute("INSERT INTO _dolite_replicas VALUES ('someone-else', 1000, NULL)")
    with server.http() as http:
        answer = http.post(f"/v1/databases/{name}/changesets", content=session.changeset(),
                           params={"replica": "forger", "seq": "1", "on_conflict": "ours"},
                           headers={"Content-Type": "application/octet-stream"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "not_supported")
    with Client(server.url, TOKEN) as client:
        assert client.query(name, "SELECT seq FROM _dolite_replicas").rows == [(1,)]


def test_the_service_exports_replica_metrics(server):
    name = new_database(server.url)
    r = open_replica(server.url, name, on_conflict="ours")
    local_update(r, "UPDATE t SET v = 'local' WHERE k = 1")
    write_remote(server.url, name, "UPDATE t SET v = 'remote' WHERE k = 1")
    r.sync()
    r.close()
    text = httpx.get(server.url + "/metrics", headers=server.headers()).text
    assert 'dolite_changesets_total{outcome="applied"}' in text
    assert 'dolite_changeset_conflicts_total{policy="ours"}' in text
    assert "dolite_replica_lag_seconds_count" in text
    assert "dolite_optimistic_rebases_total" in text


# -- the service stopped, the replica killed -9, the service back -----------------------------

WRITER = """
import sys
import dolite

r = dolite.replica(sys.argv[3], remote=sys.argv[1], local=sys.argv[2], token=sys.argv[4])
conn = r.connect()
i = 0
while True:
    i += 1
    conn.execute("INSERT INTO t VALUES (?, 'offline')", [100 + i])
    conn.execute("UPDATE t SET v = ? WHERE k = 1", [f"local-{i}"])
    conn.commit()
    print(i, flush=True)  # acknowledged
"""


def write_until_killed(url: str, local: str, name: str, count: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", WRITER, url, local, name, TOKEN], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    acknowledged = 0
    while acknowledged < count:
        line = child.stdout.readline()
        assert line, child.stderr.read()
        acknowledged = int(line)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return acknowledged


@pytest.mark.parametrize("policy", ["ours", "theirs"])
def test_writes_while_the_service_is_stopped_survive_kill9_and_sync_after(tmp_path, policy):
    srv = Server(f"lmdb:{tmp_path}/remote").start()
    try:
        name, local = new_database(srv.url), f"lmdb:{tmp_path}/local"
        dolite.replica(name, remote=srv.url, local=local, token=TOKEN).close()  # the first copy
        srv.stop()
        with pytest.raises(NetworkError):
            dolite.replica(name, remote=srv.url, local=local, token=TOKEN).sync()
        acknowledged = write_until_killed(srv.url, local, name, 20)
        srv.start()
        write_remote(srv.url, name, "UPDATE t SET v = 'remote' WHERE k = 1")
        r = dolite.replica(name, remote=srv.url, local=local, token=TOKEN, on_conflict=policy)
        assert len(r.pending()) >= acknowledged
        r.sync()
        assert r.pending() == []
        rows = dict(remote_rows(srv.url, name))
        assert set(range(101, 101 + acknowledged)) <= set(rows)
        assert rows[1] == (f"local-{len(rows) - 2}" if policy == "ours" else "remote")
        assert dict(r.connect().execute("SELECT k, v FROM t").fetchall()) == rows
        r.close()
    finally:
        srv.stop()
