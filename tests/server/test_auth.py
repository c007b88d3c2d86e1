"""Bearer tokens and scopes (the app in-process, with the token options of ``dolite serve``),
and ``dolite serve`` refusing to start publicly without a token or on a bad token file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dolite.server.auth import Auth
from tests.server.conftest import ROOT, Server, free_port, in_process

TOKENS = {"tokens": [
    {"token": "admin-token-1", "scopes": {"*": "admin"}},
    {"token": "reader-token", "scopes": {"*": "read"}},
    {"token": "shop-writer-token", "scopes": {"shop": "write"}},
]}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """The app as ``dolite serve --token admin-token-1 --token-file tokens.json`` builds it,
    with databases ``shop`` and ``other``; its client sends no token unless told."""
    path = tmp_path_factory.mktemp("auth")
    (path / "tokens.json").write_text(json.dumps(TOKENS))
    with in_process(f"lmdb:{path}/data", Auth.from_options("admin-token-1", path / "tokens.json")) as client:
        for name in ("shop", "other"):
            call(client, "POST", "/v1/databases", "admin-token-1", json={"name": name})
            call(client, "POST", f"/v1/databases/{name}/query", "admin-token-1", json={"sql": "CREATE TABLE t(v)"})
        yield client


def call(srv, method, path, token=None, raw_header=None, **kwargs):
    headers = {"Authorization": raw_header} if raw_header else ({"Authorization": f"Bearer {token}"} if token else {})
    return srv.request(method, path, headers=headers, **kwargs)


def code(r):
    return r.status_code, r.json()["error"]["code"]


@pytest.mark.parametrize("header", [None, "Bearer", "Basic YWRtaW46YWRtaW4=", "admin-token-1"])
def test_missing_or_malformed_token_is_401(srv, header):
    r = call(srv, "POST", "/v1/databases/shop/query", raw_header=header, json={"sql": "SELECT 1"})
    assert code(r) == (401, "unauthorized") and "Bearer" in r.headers["www-authenticate"]


@pytest.mark.parametrize("token", ["wrong", "admin-token-2", "admin-token-1x", "ADMIN-TOKEN-1"])
def test_wrong_token_is_401(srv, token):
    assert code(call(srv, "POST", "/v1/databases/shop/query", token, json={"sql": "SELECT 1"})) == (401, "unauthorized")
    assert code(call(srv, "GET", "/v1/databases", token)) == (401, "unauthorized")
    assert code(call(srv, "GET", "/metrics", token)) == (401, "unauthorized")


def test_scopes(srv):
    q = {"sql": "INSERT INTO t VALUES (1)"}
    assert call(srv, "POST", "/v1/databases/shop/query", "reader-token", json={"sql": "SELECT * FROM t"}).status_code == 200
    assert code(call(srv, "POST", "/v1/databases/shop/query", "reader-token", json=q)) == (403, "forbidden")
    assert code(call(srv, "POST", "/v1/databases/shop/query", "reader-token",
                     json={"sql": "PRAGMA user_version = 3"})) == (403, "forbidden")
    assert call(srv, "POST", "/v1/databases/shop/query", "shop-writer-token", json=q).status_code == 200
    assert code(call(srv, "POST", "/v1/databases/other/query", "shop-writer-token", json=q)) == (403, "forbidden")
    assert code(call(srv, "POST", "/v1/databases", "shop-writer-token", json={"name": "new"})) == (403, "forbidden")
    assert code(call(srv, "DELETE", "/v1/databases/shop", "shop-writer-token")) == (403, "forbidden")
    assert code(call(srv, "POST", "/v1/databases/shop/import", "reader-token", content=b"x")) == (403, "forbidden")
    assert call(srv, "GET", "/v1/databases", "shop-writer-token").json() == {"databases": ["shop"]}
    assert set(call(srv, "GET", "/v1/databases", "reader-token").json()["databases"]) == {"shop", "other"}
    # A read-only session cannot write either.
    sid = call(srv, "POST", "/v1/databases/shop/sessions", "reader-token").json()["session"]
    r = call(srv, "POST", f"/v1/databases/shop/sessions/{sid}/query", "reader-token", json=q)
    assert code(r) == (403, "forbidden")
    call(srv, "POST", f"/v1/databases/shop/sessions/{sid}/rollback", "reader-token")
    r = call(srv, "POST", "/v1/databases/shop/query", "admin-token-1", json={"sql": "SELECT count(*) FROM t"})
    assert r.json()["rows"] == [[1]]
    assert call(srv, "GET", "/healthz").status_code == 200  # health needs no token


def test_refuses_public_address_without_token(tmp_path):
    cmd = [sys.executable, "-m", "dolite.server", "--storage", f"lmdb:{tmp_path}/d", "--host", "0.0.0.0",
           "--port", str(free_port())]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "without a token" in run.stderr


def test_bad_token_file_is_refused(tmp_path):
    (tmp_path / "t.json").write_text('{"tokens": [{"token": "short"}]}')
    server = Server(f"lmdb:{tmp_path}/d", "--token-file", str(tmp_path / "t.json"), token=None)
    run = subprocess.run(server.command(), cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "token file" in run.stderr
