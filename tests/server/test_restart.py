"""kill -9 the server under load, restart it: every acknowledged write is there."""

from __future__ import annotations

import threading
import time

import httpx

from tests.server.conftest import Server


def test_kill_9_under_load_loses_no_acknowledged_write(tmp_path):
    storage = f"lmdb:{tmp_path}/data"
    srv = Server(storage, log=tmp_path / "server.log").start()
    with srv.http() as http:
        for name in ("one", "two"):
            assert http.post("/v1/databases", json={"name": name}).status_code == 201
            assert http.post(f"/v1/databases/{name}/query",
                             json={"sql": "CREATE TABLE t(id TEXT PRIMARY KEY, pad BLOB)"}).status_code == 200
    acked: dict[str, set[str]] = {"one": set(), "two": set()}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(k: int) -> None:
        name = ("one", "two")[k % 2]
        i = 0
        with srv.http() as http:
            while not stop.is_set() and i < 100_000:
                ids = [f"w{k}-{i + j}" for j in range(1 + k % 3)]
                body = {"batch": [{"sql": "INSERT INTO t VALUES (?, randomblob(300))", "params": [x]} for x in ids]}
                i += len(ids)
                try:
                    r = http.post(f"/v1/databases/{name}/query", json=body)
                except httpx.HTTPError:
                    return  # the server died mid-request: that batch was never acknowledged
                if r.status_code == 200:
                    with lock:
                        acked[name].update(ids)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    srv.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert sum(len(v) for v in acked.values()) > 50

    again = Server(storage, log=tmp_path / "server2.log").start()  # takes over the dead process's leases
    try:
        with again.http() as http:
            for name, ids in acked.items():
                r = http.post(f"/v1/databases/{name}/query", json={"sql": "SELECT id FROM t"})
                assert r.status_code == 200, r.text
                stored = {row[0] for row in r.json()["rows"]}
                assert ids <= stored, f"{len(ids - stored)} acknowledged rows lost in {name}"
                assert len(stored - ids) <= 6 * 3  # at most the batches in flight at the kill
                check = http.post(f"/v1/databases/{name}/query", json={"sql": "PRAGMA integrity_check"})
                assert check.json()["rows"] == [["ok"]]
                assert http.post(f"/v1/databases/{name}/query",
                                 json={"sql": "INSERT INTO t VALUES ('after', NULL)"}).status_code == 200
    finally:
        again.stop()
