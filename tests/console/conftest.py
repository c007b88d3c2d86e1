"""A real ``dolite serve`` with an admin and a read-only token, shared by the console tests."""

from __future__ import annotations

import json
import os

import pytest

from tests.server.conftest import Server

ADMIN = "console-admin-token"
READER = "console-read-token"


@pytest.fixture(scope="package")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("console")
    tokens = path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"token": ADMIN, "scopes": {"*": "admin"}},
                                             {"token": READER, "scopes": {"*": "read"}}]}))
    srv = Server(f"lmdb:{path}/data", "--token-file", str(tokens), token=None, log=path / "server.log")
    (path / "backups").mkdir()
    srv.backups = f"file://{path}/backups"
    before = os.environ.get("DOLITE_BACKUP_TARGET")
    os.environ["DOLITE_BACKUP_TARGET"] = srv.backups  # the server compares each database with it
    try:
        srv.start()
    finally:
        if before is None:
            del os.environ["DOLITE_BACKUP_TARGET"]
        else:
            os.environ["DOLITE_BACKUP_TARGET"] = before
    srv.token = ADMIN  # Server.http() and headers() default to the admin token
    yield srv
    srv.stop()


@pytest.fixture
def admin(server):
    with server.http(ADMIN) as client:
        yield client


@pytest.fixture
def reader(server):
    with server.http(READER) as client:
        yield client


def make_database(admin, name: str, rows: int = 0) -> None:
    """Create ``name`` (dropping any earlier one) with a table ``items`` of ``rows`` rows,
    written in three commits so the database has several versions."""
    admin.delete(f"/v1/databases/{name}")
    assert admin.post("/v1/databases", json={"name": name}).status_code == 201
    batches = [[{"sql": "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL)"},
                {"sql": "CREATE INDEX items_name ON items(name)"}],
               [{"sql": "INSERT INTO items(name, price) VALUES (?, ?)", "params": [f"item {i}", i / 4]}
                for i in range(rows // 2)],
               [{"sql": "INSERT INTO items(name, price) VALUES (?, ?)", "params": [f"item {i}", i / 4]}
                for i in range(rows // 2, rows)]]
    for batch in batches:
        if batch:
            response = admin.post(f"/v1/databases/{name}/query", json={"batch": batch})
            assert response.status_code == 200, response.text


def corrupt_a_chunk(server, name: str) -> None:
    """Flip bytes inside the newest stored version of chunk 1 of ``name`` (its checksum fails)."""
    from dolite.pages.format import chunk_prefix
    from dolite.storage import open_storage

    namespace = open_storage(server.storage)
    try:
        obj = namespace.object(name)
        key, raw = next(reversed(obj.list(prefix=chunk_prefix(1)).items()))
        broken = bytearray(raw)
        broken[-100] ^= 0xFF
        obj.put({key: bytes(broken)})
    finally:
        namespace.close()
