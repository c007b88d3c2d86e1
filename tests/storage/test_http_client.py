"""The do+http backend's keep-alive HTTP client against small local servers (no workerd)."""

from __future__ import annotations

import http.server
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from dolite.errors import StorageError
from dolite.storage.durable_object import DurableObjectNamespace, encode_records
from dolite.storage.http_client import HttpxClient, KeepAliveClient, http_client


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with its method, path and body; ``close`` in the path closes."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        reply = f"{self.command} {self.path} ".encode() + body
        self.send_response(200)
        self.send_header("content-length", str(len(reply)))
        self.send_header("x-seen-connections", str(id(self.connection)))
        if "close" in self.path:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echo():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_requests_carry_path_query_headers_and_body_and_go_out_at_once(echo):
    client = KeepAliveClient(echo + "/base", {"authorization": "Bearer s"}, timeout=10)
    reply = client.request("POST", "/v1/x", b"payload", {"start": "a/b\x00", "limit": "3"})
    assert reply.status == 200 and reply.content == b"POST /base/v1/x?start=a%2Fb%00&limit=3 payload"
    # headers, then body: Nagle's algorithm must not hold the body back for an ACK
    (conn,) = client._idle
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_connections_are_reused_and_a_closed_one_is_replaced(echo):
    client = KeepAliveClient(echo, {}, timeout=10)
    first = client.request("GET", "/a").headers["x-seen-connections"]
    assert client.request("GET", "/b").headers["x-seen-connections"] == first  # kept alive
    client.request("GET", "/close")  # the server closes after answering: not pooled
    assert client.request("GET", "/c").content == b"GET /c "
    # A pooled connection the server closed while idle is noticed before it carries a request.
    conn = client._idle[-1]
    conn.sock.shutdown(socket.SHUT_RD)
    assert client.request("POST", "/d", b"x").content == b"POST /d x"


def test_threads_share_the_pool(echo):
    client = KeepAliveClient(echo, {}, timeout=10)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: client.request("POST", f"/{i}", str(i).encode()).content, range(64)))
    assert replies == [f"POST /{i} {i}".encode() for i in range(64)]
    assert 1 <= len(client._idle) <= 8
    client.close()
    assert client._idle == []


def test_silence_is_a_timeout_and_a_refusal_is_unreachable():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        ns = DurableObjectNamespace(f"http://127.0.0.1:{silent.getsockname()[1]}", "s", timeout=0.3)
        with pytest.raises(StorageError, match="timed out"):
            ns.object("x").put({"k": b"v"})
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    ns = DurableObjectNamespace(f"http://127.0.0.1:{port}", "s", timeout=5)
    with pytest.raises(StorageError, match="unreachable"):
        ns.object("x").get(["k"])


def test_observers_see_every_answer(echo):
    ns = DurableObjectNamespace(echo, "s")
    seen = []
    ns.observers.append(lambda method, path, sent, reply: seen.append((method, path, sent, reply.status)))
    with pytest.raises(StorageError):  # the echo is no Worker: its answer is not a record list
        ns.object("o").get(["k"])
    assert seen == [("POST", "/v1/objects/o/get", len(encode_records([("k", None)])), 200)]


def test_a_proxy_in_the_environment_is_followed_through_httpx(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert isinstance(http_client("http://worker.example:8787", {}, 5), HttpxClient)
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.delenv("http_proxy", raising=False)
    assert isinstance(http_client("http://worker.example:8787", {}, 5), KeepAliveClient)


class _CountingSocket:
    def __init__(self, sock):
        self.sock, self.writes = sock, []

    def sendall(self, data):
        self.writes.append(bytes(data))
        return self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_a_request_and_its_body_are_one_write(echo):
    """Headers and body go out together: one system call and one packet less per call."""
    client = KeepAliveClient(echo, {"x-test": "1"}, timeout=10)
    try:
        assert client.request("POST", "/a", b"first").content == b"POST /a first"
        conn = client._idle[0]
        counting = conn.sock = _CountingSocket(conn.sock)
        body = b"\x00\xffbody" * 1000
        reply = client.request("POST", "/b", body)
        assert reply.status == 200 and reply.content == b"POST /b " + body
        assert len(counting.writes) == 1 and counting.writes[0].endswith(b"\r\n\r\n" + body)
        assert client.request("POST", "/c", b"").content == b"POST /c "  # an empty body too
        assert len(counting.writes) == 2 and counting.writes[1].endswith(b"\r\n\r\n")
    finally:
        client.close()
