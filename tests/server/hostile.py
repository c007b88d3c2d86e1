"""Helpers for the hostile-client tests: a server with scoped tokens and small limits, raw
sockets, the server's RSS, slow SQL."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx

from tests.server.conftest import Server

ADMIN, READER, WRITER, PROBE = "admin-token-1", "reader-token", "writer-token", "probe-token"
TOKENS = {"tokens": [
    {"token": ADMIN, "scopes": {"*": "admin"}},
    {"token": READER, "scopes": {"*": "read"}},
    {"token": WRITER, "scopes": {"*": "write"}},
    {"token": PROBE, "scopes": {"probe": "read"}},  # an unrelated client
]}
# A statement that runs for a while (about a second on a slow core) and returns one row.
SLOW = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 4000000) SELECT count(*) FROM c"


def temp_hog(rows: int, size: int) -> str:
    """A read-only SELECT whose sort needs ``rows * size`` bytes of temporary storage."""
    return (f"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {rows}) "
            f"SELECT length(b) FROM (SELECT randomblob({size}) AS b FROM c ORDER BY b) LIMIT 1")


def start(path: Path, *args: str) -> Server:
    (path / "tokens.json").write_text(json.dumps(TOKENS))
    return Server(f"lmdb:{path}/data", "--token-file", str(path / "tokens.json"), *args,
                  token=ADMIN, log=path / "server.log").start()


def rss_bytes(server: Server) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def call(server: Server, method: str, path: str, token: str | None = ADMIN, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    return httpx.request(method, server.url + path, headers=headers, timeout=30, **kwargs)


def sql(server: Server, db: str, statement: str, token: str = ADMIN, params=None) -> httpx.Response:
    body = {"sql": statement} if params is None else {"sql": statement, "params": params}
    return call(server, "POST", f"/v1/databases/{db}/query", token, json=body)


def code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def raw_socket(server: Server, data: bytes = b"", timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    if data:
        sock.sendall(data)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (socket.timeout if it does not)."""
    out = b""
    while piece := sock.recv(65536):
        out += piece
    return out


def json_body(raw: bytes) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), head
    return json.loads(body)
