"""The two clients of the Durable Object benchmark, each counting what it costs.

* :class:`RequestCounter` is told of every answer (by the ``do+http`` backend's
  ``observers``, or by :class:`NativeSql`) and counts requests, body bytes, and the billed
  rows each answer reports: the storage Worker's ``x-dolite-rows: read=N,written=M`` header,
  or the native route's ``rowsRead``/``rowsWritten``.
* :class:`NativeSql` sends SQL to the benchmark build's ``NativeSqlObject``, through the same
  HTTP client as the ``do+http`` backend, so neither side gains from its client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from dolite.cloudflare.cost import Usage
from dolite.storage import open_storage
from dolite.storage.http_client import KeepAliveClient, Reply

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

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.usage + other.usage, self.bytes_sent + other.bytes_sent,
                     self.bytes_received + other.bytes_received)


def parse_rows_header(value: str) -> tuple[int, int]:
    """``(read, written)`` from ``read=N,written=M``; ValueError if it is anything else."""
    fields = dict(part.split("=", 1) for part in value.split(","))
    if set(fields) != {"read", "written"}:
        raise ValueError(f"malformed {ROWS_HEADER}: {value!r}")
    return int(fields["read"]), int(fields["written"])


class RequestCounter:
    """Counts requests, body bytes and billed rows of the answers it is shown (:meth:`saw`).

    ``uncounted`` is the number of answers that reported no rows (the storage Worker's drop,
    or a route that does not count): the row totals do not include them.
    """

    def __init__(self, *, rows_from_header: bool = True):
        self.requests = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.rows_read = 0
        self.rows_written = 0
        self.uncounted = 0
        self.rows_from_header = rows_from_header
        self.by_op: dict[str, int] = {}  # "POST commit" -> requests (method, last path segment)

    def saw(self, method: str, path: str, sent: int, reply: Reply) -> None:
        """One request of ``sent`` body bytes and its answer."""
        self.requests += 1
        self.bytes_sent += sent
        op = f"{method} {path.rsplit('/', 1)[-1]}"
        self.by_op[op] = self.by_op.get(op, 0) + 1
        self.bytes_received += len(reply.content)
        if not self.rows_from_header:
            return
        header = reply.headers.get(ROWS_HEADER)
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
    counter = RequestCounter()
    namespace.observers.append(counter.saw)
    return namespace, counter


class NativeSql:
    """The benchmark baseline client: SQL sent to the Worker's ``NativeSqlObject``."""

    def __init__(self, base_url: str, secret: str, name: str):
        self.client = KeepAliveClient(
            base_url, {"authorization": f"Bearer {secret}", "content-type": "application/json"}, timeout=60)
        self.counter = RequestCounter(rows_from_header=False)
        self.path = f"/v1/native/{quote(name, safe='')}/sql"

    def _send(self, body: dict) -> dict:
        content = json.dumps(body, separators=(",", ":")).encode()
        reply = self.client.request("POST", self.path, content)
        self.counter.saw("POST", self.path, len(content), reply)
        if reply.status != 200:
            raise RuntimeError(f"native SQL refused: {reply.status} {reply.text[:300]}")
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
