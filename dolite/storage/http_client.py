"""The ``do+http`` backend's HTTP client: keep-alive HTTP/1.1 on :mod:`http.client`.

One storage call is one request, so the client's own cost is paid on every commit. This one
does little per request (no cookies, redirects, event hooks or URL objects) and sends at
once (TCP_NODELAY), headers and body in one write. Connections are pooled and shared by threads;
an idle connection the server has closed is noticed before it is reused. Nothing is ever
retried: a request whose answer is lost may have been applied, and only the caller (the page
store, which fences every write) can decide what that means.

:func:`http_client` picks it, or :class:`HttpxClient` when the caller passes an httpx
transport (tests) or the environment names an HTTP proxy for the URL (http.client does not
follow ``HTTP(S)_PROXY``; httpx does).
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode, urlsplit

import httpx

MAX_IDLE = 32


@dataclass(frozen=True)
class Reply:
    """A whole HTTP answer: status, headers (names in lower case) and body."""

    status: int
    reason: str
    headers: dict[str, str]
    content: bytes

    def json(self):
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class HttpFailure(Exception):
    """No answer: the server was unreachable, the connection broke, or it timed out."""

    def __init__(self, message: str, *, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


class Client(Protocol):
    def request(self, method: str, path: str, body: bytes | None = None,
                params: dict[str, str] | None = None) -> Reply: ...

    def close(self) -> None: ...


def http_client(base_url: str, headers: dict[str, str], timeout: float,
                transport: httpx.BaseTransport | None = None) -> Client:
    """The client for ``base_url`` (``http://`` or ``https://``, optionally with a path)."""
    if transport is not None or _proxied(base_url):
        return HttpxClient(base_url, headers, timeout, transport)
    return KeepAliveClient(base_url, headers, timeout)


def _proxied(base_url: str) -> bool:
    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies()
    return parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or "")


def _target(path: str, params: dict[str, str] | None) -> str:
    return f"{path}?{urlencode(params)}" if params else path


class KeepAliveClient:
    """Pooled keep-alive connections to one origin. Thread-safe: a request takes an idle
    connection (or opens one) and gives it back only after reading the whole answer."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float, max_idle: int = MAX_IDLE):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = dict(headers)
        self._timeout = timeout
        self._max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: bytes | None = None,
                params: dict[str, str] | None = None) -> Reply:
        conn = self._take()
        try:
            conn.request(method, self._prefix + _target(path, params), body=body or b"", headers=self._headers)
            answer = conn.getresponse()
            reply = Reply(answer.status, answer.reason, {k.lower(): v for k, v in answer.getheaders()},
                          answer.read())
        except TimeoutError as exc:
            conn.close()
            raise HttpFailure(f"timed out after {self._timeout:g} s ({exc})", timed_out=True) from exc
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise HttpFailure(f"{type(exc).__name__}: {exc}") from exc
        if answer.will_close:
            conn.close()
        else:
            self._give_back(conn)
        return reply

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._open()
            if _still_open(conn.sock):
                return conn
            conn.close()

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _open(self) -> http.client.HTTPConnection:
        if self._tls is not None:
            return _NoDelayHTTPS(self._host, self._port, timeout=self._timeout, context=self._tls)
        return _NoDelayHTTP(self._host, self._port, timeout=self._timeout)


def _still_open(sock: socket.socket | None) -> bool:
    """An idle keep-alive connection has nothing to read: if its socket is readable, the
    server closed it (or sent something unasked), and it must not carry a request."""
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return not poller.poll(0)
        return not select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        return False


class _NoDelay:
    """Connections that send at once (TCP_NODELAY), a request with a bytes body in one
    write: http.client writes the headers and the body apart, two packets (and two system
    calls) where one does."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_output(self, message_body=None, encode_chunked=False) -> None:
        if not isinstance(message_body, bytes) or encode_chunked:
            super()._send_output(message_body, encode_chunked)
            return
        self._buffer.extend((b"", message_body))  # request line, headers, blank line, body
        message = b"\r\n".join(self._buffer)
        del self._buffer[:]
        self.send(message)


class _NoDelayHTTP(_NoDelay, http.client.HTTPConnection):
    pass


class _NoDelayHTTPS(_NoDelay, http.client.HTTPSConnection):
    pass


class HttpxClient:
    """The same interface over httpx: for an injected transport, or through a proxy."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float,
                 transport: httpx.BaseTransport | None = None):
        self.base_url = base_url
        self._client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport,
                                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=MAX_IDLE))

    def request(self, method: str, path: str, body: bytes | None = None,
                params: dict[str, str] | None = None) -> Reply:
        try:
            answer = self._client.request(method, path, content=body, params=params)
        except httpx.TimeoutException as exc:
            raise HttpFailure(f"timed out ({exc})", timed_out=True) from exc
        except httpx.HTTPError as exc:
            raise HttpFailure(str(exc)) from exc
        return Reply(answer.status_code, answer.reason_phrase, dict(answer.headers), answer.content)

    def close(self) -> None:
        self._client.close()
