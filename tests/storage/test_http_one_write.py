"""The do+http client sends a request with a body in one write (headers and body
together), not two: one system call and one packet less per storage call."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dolite.storage.http_client import KeepAliveClient


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _CountingSocket:
    def __init__(self, sock):
        self.sock, self.writes = sock, []

    def sendall(self, data):
        self.writes.append(bytes(data))
        return self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_request_and_its_body_are_one_write(server):
    client = KeepAliveClient(server, {"x-test": "1"}, timeout=10)
    try:
        assert client.request("POST", "/a", b"first").content == b"first"
        conn = client._idle[0]
        counting = conn.sock = _CountingSocket(conn.sock)
        body = b"\x00\xffbody" * 1000
        reply = client.request("POST", "/b", body)
        assert reply.status == 200 and reply.content == body
        assert len(counting.writes) == 1 and counting.writes[0].endswith(b"\r\n\r\n" + body)
        assert client.request("POST", "/c", b"").content == b""  # an empty body too
        assert len(counting.writes) == 2 and counting.writes[1].endswith(b"\r\n\r\n")
    finally:
        client.close()
