"""Two ``dolite serve`` processes on one LMDB directory never both commit to one object."""

from __future__ import annotations

import itertools
import threading
import time

import httpx

from tests.server.conftest import Server


def q(srv, name, sql, params=()):
    return httpx.post(f"{srv.url}/v1/databases/{name}/query", headers=srv.headers(),
                      json={"sql": sql, "params": list(params)}, timeout=30)


def rows(srv, name, sql):
    r = q(srv, name, sql)
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def eventually(srv, name, sql):
    """Rows of ``sql`` once ``srv`` can get the lease (the other server idles it out)."""
    for _ in range(100):
        r = q(srv, name, sql)
        if r.status_code == 200:
            return r.json()["rows"]
        assert r.json()["error"]["code"] == "lease_held", r.text
        time.sleep(0.1)
    raise AssertionError("the lease never came free")


def pair(tmp_path, *args):
    a = Server(f"lmdb:{tmp_path}/data", *args, log=tmp_path / "a.log").start()
    b = Server(f"lmdb:{tmp_path}/data", *args, log=tmp_path / "b.log").start()
    return a, b


def test_second_server_is_refused_while_the_first_serves(tmp_path):
    a, b = pair(tmp_path)
    try:
        httpx.post(f"{a.url}/v1/databases", headers=a.headers(), json={"name": "shared"})
        assert q(a, "shared", "CREATE TABLE t(v)").status_code == 200
        assert q(a, "shared", "INSERT INTO t VALUES (1)").status_code == 200
        for response in [q(b, "shared", "INSERT INTO t VALUES (2)"), q(b, "shared", "SELECT * FROM t"),
                         httpx.delete(f"{b.url}/v1/databases/shared", headers=b.headers()),
                         httpx.post(f"{b.url}/v1/databases/shared/sessions", headers=b.headers()),
                         httpx.post(f"{b.url}/v1/databases/shared/import?replace=true", headers=b.headers(),
                                    content=b"")]:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "lease_held"
            assert "another dolite process" in response.json()["error"]["message"]
        assert rows(a, "shared", "SELECT v FROM t") == [[1]]
        # Another database is free for B to serve.
        httpx.post(f"{b.url}/v1/databases", headers=b.headers(), json={"name": "mine"})
        assert q(b, "mine", "CREATE TABLE t(v)").status_code == 200
        assert q(a, "mine", "SELECT 1").status_code == 503
    finally:
        a.stop()
        b.stop()


def test_stale_holder_reloads_and_is_refused_not_forked(tmp_path):
    a, b = pair(tmp_path, "--lease-ttl", "2", "--idle-timeout", "60")
    try:
        httpx.post(f"{a.url}/v1/databases", headers=a.headers(), json={"name": "shared"})
        assert q(a, "shared", "CREATE TABLE t(v)").status_code == 200
        assert q(a, "shared", "INSERT INTO t VALUES ('a1')").status_code == 200
        time.sleep(2.5)  # A keeps the object loaded, but its lease has run out
        assert q(b, "shared", "INSERT INTO t VALUES ('b1')").status_code == 200
        r = q(a, "shared", "INSERT INTO t VALUES ('a2')")
        assert r.status_code == 503 and r.json()["error"]["code"] == "lease_held"
        time.sleep(2.5)
        assert q(a, "shared", "INSERT INTO t VALUES ('a3')").status_code == 200
        # A sees B's write: it reloaded instead of serving its stale copy.
        assert rows(a, "shared", "SELECT v FROM t ORDER BY rowid") == [["a1"], ["b1"], ["a3"]]
        assert eventually(a, "shared", "PRAGMA integrity_check") == [["ok"]]
    finally:
        a.stop()
        b.stop()


def test_contending_servers_commit_exactly_the_acknowledged_writes(tmp_path):
    a, b = pair(tmp_path, "--lease-ttl", "3", "--idle-timeout", "0.3")
    servers = {"a": a, "b": b}
    try:
        httpx.post(f"{a.url}/v1/databases", headers=a.headers(), json={"name": "shared"})
        assert q(a, "shared", "CREATE TABLE t(id TEXT PRIMARY KEY)").status_code == 200
        time.sleep(1.2)  # A idles the object out
        acked: set[str] = set()
        refused = {"a": 0, "b": 0}
        lock = threading.Lock()
        counters = {"a": itertools.count(), "b": itertools.count()}

        def write_for(key: str, seconds: float) -> None:
            srv = servers[key]
            end = time.monotonic() + seconds
            with httpx.Client(headers=srv.headers(), timeout=30) as http:
                while time.monotonic() < end:
                    row = f"{key}-{next(counters[key])}"
                    r = http.post(f"{srv.url}/v1/databases/shared/query",
                                  json={"sql": "INSERT INTO t VALUES (?)", "params": [row]})
                    with lock:
                        if r.status_code == 200:
                            acked.add(row)
                        else:
                            assert r.status_code == 503 and r.json()["error"]["code"] == "lease_held", r.text
                            refused[key] += 1
                            time.sleep(0.02)

        for first, second in [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a")]:
            write_for(first, 0.3)  # takes the free lease
            both = [threading.Thread(target=write_for, args=(k, 0.3)) for k in (first, second)]
            for t in both:
                t.start()
            for t in both:
                t.join(60)
            time.sleep(1.2)  # the holder idles the object out and releases the lease
        for srv in (a, b):
            assert {row[0] for row in eventually(srv, "shared", "SELECT id FROM t")} == acked
        assert any(x.startswith("a-") for x in acked) and any(x.startswith("b-") for x in acked)
        assert refused["a"] > 0 and refused["b"] > 0
        assert eventually(a, "shared", "PRAGMA integrity_check") == [["ok"]]
    finally:
        a.stop()
        b.stop()
