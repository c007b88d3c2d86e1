"""Connection-level defences uvicorn does not have: slow clients and too many connections.

* :class:`GuardedH11Protocol` (uvicorn's h11 protocol): refuses connections beyond
  ``max_connections`` with a JSON 503, closes a connection whose request head (request line
  and headers) has not fully arrived ``header_timeout`` seconds after the connection opened
  or the previous response was sent (a JSON 408), and answers a malformed request (a bad
  Content-Length, say) with the service's JSON error shape instead of plain text.
* :class:`BodyTimeoutMiddleware` (ASGI): a request body must arrive by a deadline that
  starts at ``seconds`` and grows with what was received at ``min_rate`` bytes/s, else a
  JSON 408 and the connection is closed.

uvicorn's own ``timeout_keep_alive`` covers idle keep-alive connections.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from http import HTTPStatus

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from dolite.errors import BadRequest, BodyTimedOut, HeaderTimeout, RequestError, TooManyConnections


@dataclass(frozen=True)
class BodyTimeout:
    seconds: float = 30.0        # to receive the body, plus ...
    min_rate: int = 64 << 10     # ... one second per this many bytes received


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000
    header_timeout: float = 10.0


def _error_bytes(error: RequestError) -> bytes:
    return json.dumps({"error": {"code": error.code, "message": str(error)}}).encode()


class GuardedH11Protocol(H11Protocol):
    """See the module docstring. Build with ``functools.partial(GuardedH11Protocol,
    limits=ConnectionLimits(...))`` as uvicorn's ``http`` protocol class."""

    def __init__(self, *args, limits: ConnectionLimits, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(TooManyConnections(f"the server has {self.limits.max_connections} connections open: "
                                            "retry later"))
            return
        self._arm_head_timer()

    def connection_lost(self, exc) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()  # the request head is in

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()

    def send_400_response(self, msg: str) -> None:
        self._refuse(BadRequest(f"malformed HTTP request: {msg}"))

    # -- helpers -------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._refuse(HeaderTimeout(f"the request head did not arrive within {self.limits.header_timeout:g}s"))

    def _refuse(self, error: RequestError) -> None:
        """Answer ``error`` in the service's JSON shape and close, whatever h11's state."""
        body = _error_bytes(error)
        status = error.http_status
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n" % (status, HTTPStatus(status).phrase.encode(), len(body)))
        if status == 503:
            head += b"retry-after: 1\r\n"
        self.transport.write(head + b"\r\n" + body)
        self.transport.close()


class BodyTimeoutMiddleware:
    """See the module docstring (ASGI middleware)."""

    def __init__(self, app, timeout: BodyTimeout):
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.timeout
        state = {"started": None, "received": 0, "done": False}

        async def timed_receive():
            if state["done"]:
                return await receive()  # after the body: waiting for a disconnect is not slow
            if state["started"] is None:
                state["started"] = time.monotonic()  # the clock starts when the app reads
            left = state["started"] + limit.seconds + state["received"] / limit.min_rate - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.001))
            except TimeoutError:
                raise BodyTimedOut(f"the request body arrived slower than allowed "
                                   f"({limit.seconds:g}s plus 1s per {limit.min_rate} bytes)",
                                   headers={"Connection": "close"}) from None
            state["received"] += len(message.get("body", b""))
            state["done"] = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)
