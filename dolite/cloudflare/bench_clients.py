"""The two clients of the Durable Object benchmark, each counting what it costs.

* :class:`RequestCounter` hooks an ``httpx.Client`` (the ``do+http`` backend's own, or the
  native client's) and counts requests, body bytes, and the billed rows each answer reports:
  the storage Worker's ``x-dolite-rows: read=N,written=M`` header, or the native route's
  ``rowsRead``/``rowsWritten`` (added by :class:`NativeSql`).
* :class:`NativeSql` sends SQL to the benchmark build's ``NativeSqlObject``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from dolite.cloudflare.cost import Usage
from dolite.storage import open_storage

ROWS_HEADER = "x-dolite-rows"


@dataclass(frozen=True)
class Tally:
    """What a client has sent so far: billed usage and request body bytes."""

    usage: Usage
    bytes_sent: int
    bytes_received: int

    def __sub__(self, other: Tally) -> Tally:
        return Tally(self.usage - other.usage, self.bytes_sent - other.bytes_sent,
                     self.bytes_received - other.bytes_received)


def parse_rows_header(value: str) -> tuple[int, int]:
    """``(read, written)`` from ``read=N,written=M``; ValueError if it is anything else."""
    fields = dict(part.split("=", 1) for part in value.split(","))
    if set(fields) != {"read", "written"}:
        raise ValueError(f"malformed {ROWS_HEADER}: {value!r}")
    return int(fields["read"]), int(fields["written"])


class RequestCounter:
    """Counts requests, body bytes and billed rows on an ``httpx.Client`` via its event hooks.

    ``uncounted`` is the number of answers that reported no rows (the storage Worker's drop,
    or a route that does not count): the row totals do not include them.
    """

    def __init__(self, client: httpx.Client, *, rows_from_header: bool = True):
        self.requests = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.rows_read = 0
        self.rows_written = 0
        self.uncounted = 0
        self.rows_from_header = rows_from_header
        self.by_op: dict[str, int] = {}  # "POST commit" -> requests (method, last path segment)
        hooks = client.event_hooks
        hooks.setdefault("request", []).append(self._on_request)
        hooks.setdefault("response", []).append(self._on_response)
        client.event_hooks = hooks

    def _on_request(self, request: httpx.Request) -> None:
        self.requests += 1
        self.bytes_sent += len(request.content)
        op = f"{request.method} {request.url.path.rsplit('/', 1)[-1]}"
        self.by_op[op] = self.by_op.get(op, 0) + 1

    def _on_response(self, response: httpx.Response) -> None:
        response.read()  # the client reads it anyway; reading here lets us count it
        self.bytes_received += len(response.content)
        if not self.rows_from_header:
            return
        header = response.headers.get(ROWS_HEADER)
        if header is None:
            self.uncounted += 1
            return
        self.add_rows(*parse_rows_header(header))

    def add_rows(self, read: int, written: int) -> None:
        self.rows_read += read
        self.rows_written += written

    def snapshot(self) -> Tally:
        return Tally(Usage(self.requests, self.rows_read, self.rows_written), self.bytes_sent,
                     self.bytes_received)


def counted_namespace(url: str):
    """A ``do+http`` namespace whose HTTP requests, bytes and billed rows are counted."""
    namespace = open_storage(url)
    # The backend sends every storage call through this one client (see durable_object.py).
    return namespace, RequestCounter(namespace._client)


class NativeSql:
    """The benchmark baseline client: SQL sent to the Worker's ``NativeSqlObject``."""

    def __init__(self, base_url: str, secret: str, name: str):
        self.client = httpx.Client(
            base_url=base_url,
            headers={"authorization": f"Bearer {secret}"},
            timeout=60,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )
        self.counter = RequestCounter(self.client, rows_from_header=False)
        self.path = f"/v1/native/{quote(name, safe='')}/sql"

    def _send(self, body: dict) -> dict:
        reply = self.client.post(self.path, content=json.dumps(body, separators=(",", ":")),
                                 headers={"content-type": "application/json"})
        if reply.status_code != 200:
            raise RuntimeError(f"native SQL refused: {reply.status_code} {reply.text[:300]}")
        answer = reply.json()
        self.counter.add_rows(answer["rowsRead"], answer["rowsWritten"])
        return answer

    def execute(self, sql: str, params: list | tuple = ()) -> list[list]:
        return self._send({"sql": sql, "params": list(params)})["rows"]

    def batch(self, statements: list[tuple[str, list] | tuple[str, list, int]]) -> list[list]:
        """Run ``(sql, params[, expect_rows])`` statements in one transaction; the last one's rows.

        A statement with ``expect_rows`` must return exactly that many rows, or the whole
        batch rolls back and this raises (the Worker answers 409).
        """
        body = []
        for sql, params, *expect in statements:
            body.append({"sql": sql, "params": list(params)} | ({"expectRows": expect[0]} if expect else {}))
        return self._send({"batch": body})["rows"]

    def close(self) -> None:
        self.client.close()
