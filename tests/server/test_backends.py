"""The service on every storage backend: a real ``dolite serve`` over memory, LMDB and a
real workerd Durable Object, answering the same requests the same way."""

from __future__ import annotations

import pytest

from tests.backends import BACKENDS, backend_url
from tests.server.conftest import Server


@pytest.mark.parametrize("backend", sorted(b for b in BACKENDS if b != "memory"))
def test_queries_batches_and_restart_on_each_backend(request, tmp_path, backend):
    url = backend_url(request, backend, tmp_path)
    server = Server(url, log=tmp_path / "server.log").start()
    try:
        with server.http() as http:
            assert http.post("/v1/databases", json={"name": "shop"}).status_code == 201
            batch = {"batch": [
                {"sql": "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, b BLOB)"},
                {"sql": "INSERT INTO items(name, price) VALUES (?, ?)", "params": ["apple", 0.5]},
                {"sql": "INSERT INTO items(name, price) VALUES (?, ?)", "params": ["pear", 0.75]},
            ]}
            assert http.post("/v1/databases/shop/query", json=batch).status_code == 200
            failing = {"batch": [
                {"sql": "INSERT INTO items(name) VALUES ('kept?')"},
                {"sql": "INSERT INTO missing VALUES (1)"},
            ]}
            response = http.post("/v1/databases/shop/query", json=failing)
            assert response.status_code == 400 and "error" in response.json()
        server.stop()
        server.start()  # a new process: everything acknowledged is in storage
        with server.http() as http:
            rows = http.post("/v1/databases/shop/query",
                             json={"sql": "SELECT name, price FROM items ORDER BY id"}).json()["rows"]
            assert rows == [["apple", 0.5], ["pear", 0.75]]
            check = http.post("/v1/databases/shop/query", json={"sql": "PRAGMA integrity_check"}).json()
            assert check["rows"] == [["ok"]]
    finally:
        server.stop()
