"""The HTTP API's requests and answers, without I/O: the request layer both clients share.

:class:`endpoints` builds one :class:`Call` per API request: what is sent, how its answer
is read, and which :class:`dolite.Error` an error answer means (by its ``error.code``, via
:func:`dolite.errors.error_from_code`). :class:`dolite.remote.client.Client` and
:class:`~dolite.remote.client.AsyncClient` only send calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from dolite.errors import Error, NetworkError, SessionNotFound, error_from_code
from dolite.remote.wire import decode_value, encode_params, encode_value


@dataclass(frozen=True)
class Result:
    """The result of one statement."""

    columns: list[str]
    rows: list[tuple]
    rows_changed: int
    last_insert_rowid: int
    duration_ms: float = 0.0
    shard: str | None = None  # a cluster query's: the shard it ran on

    @classmethod
    def decode(cls, doc: dict) -> Result:
        return cls(list(doc["columns"]), [tuple(decode_value(v) for v in row) for row in doc["rows"]],
                   doc["rows_changed"], doc["last_insert_rowid"], doc.get("duration_ms", 0.0), doc.get("shard"))


def statement(item: Any) -> dict:
    """``"SQL"``, ``("SQL", params)`` or ``{"sql": ..., "params": ...}`` in wire form."""
    if isinstance(item, str):
        return {"sql": item, "params": []}
    if isinstance(item, dict):
        return {"sql": item["sql"], "params": encode_params(item.get("params"))}
    sql, params = item
    return {"sql": sql, "params": encode_params(params)}


def wire_size(entry: dict) -> int:
    """An upper bound of the bytes ``entry`` (a wire-form statement) takes in a request body."""
    return len(json.dumps(entry, ensure_ascii=True).encode()) + 2


def batches(entries: list[dict], max_statements: int, max_bytes: int) -> Iterator[list[dict]]:
    """``entries`` (wire-form statements), in order, cut into batches of at most
    ``max_statements`` whose body stays within ``max_bytes``. An entry over ``max_bytes``
    on its own is sent alone (the server refuses it: it cannot be split)."""
    batch: list[dict] = []
    size = len(b'{"batch":[]}')
    for entry in entries:
        grown = wire_size(entry)
        if batch and (len(batch) >= max_statements or size + grown > max_bytes):
            yield batch
            batch, size = [], len(b'{"batch":[]}')
        batch.append(entry)
        size += grown
    if batch:
        yield batch


def error_for(response: httpx.Response) -> Error | None:
    """The error an answer means (None for a success), built from its ``error.code``."""
    if response.status_code < 400:
        return None
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except Exception:  # noqa: BLE001 - not our JSON (a proxy?): keep what there is
        code, message = "http_error", response.text[:500] or response.reason_phrase
    return error_from_code(code, message, response.status_code)


def network_error(url: str, exc: httpx.HTTPError) -> NetworkError:
    return NetworkError(f"cannot reach the dolite server at {url}: {type(exc).__name__}: {exc}")


def _json(response: httpx.Response) -> Any:
    return response.json()


def _nothing(response: httpx.Response) -> None:
    return None


@dataclass(frozen=True)
class Call:
    """One API request and how to read its answer. ``allowed``: errors that mean the
    call's goal already holds (the answer is then None)."""

    method: str
    path: str
    options: dict = field(default_factory=dict)  # json=, params=, content= for httpx
    read: Callable[[httpx.Response], Any] = _json
    allowed: tuple[type[Error], ...] = ()

    def reply(self, response: httpx.Response) -> Any:
        error = error_for(response)
        if error is None:
            return self.read(response)
        if isinstance(error, self.allowed):
            return None
        raise error


def db_path(name: str) -> str:
    return f"/v1/databases/{quote(name, safe='')}"


def cluster_path(name: str) -> str:
    return f"/v1/clusters/{quote(name, safe='')}"


def keyed(key, sql: str, params: Iterable | dict = ()) -> dict:
    """A cluster statement in wire form: routed by ``key`` (str, int or bytes)."""
    return {"key": encode_value(key), **statement((sql, params))}


def _one(response: httpx.Response) -> Result:
    return Result.decode(response.json())


def _many(response: httpx.Response) -> list[Result]:
    return [Result.decode(r) for r in response.json()["results"]]


class endpoints:  # noqa: N801 - a namespace of builders, read as ``endpoints.query(...)``
    """Every request of the API. ``at`` is the path of a database or of a session."""

    @staticmethod
    def health() -> Call:
        return Call("GET", "/healthz")

    @staticmethod
    def metrics() -> Call:
        return Call("GET", "/metrics", read=lambda response: response.text)

    @staticmethod
    def databases() -> Call:
        return Call("GET", "/v1/databases", read=lambda response: response.json()["databases"])

    @staticmethod
    def create(name: str) -> Call:
        return Call("POST", "/v1/databases", {"json": {"name": name}})

    @staticmethod
    def info(name: str) -> Call:
        return Call("GET", db_path(name))

    @staticmethod
    def delete(name: str) -> Call:
        return Call("DELETE", db_path(name), read=_nothing)

    @staticmethod
    def export(name: str) -> Call:
        return Call("GET", db_path(name) + "/export")

    @staticmethod
    def import_(name: str, content, replace: bool) -> Call:
        params = {"replace": "true"} if replace else {}
        return Call("POST", db_path(name) + "/import", {"content": content, "params": params})

    @staticmethod
    def query(at: str, sql: str, params: Iterable | dict = ()) -> Call:
        return Call("POST", at + "/query", {"json": statement((sql, params))}, read=_one)

    @staticmethod
    def batch(at: str, statements: Iterable) -> Call:
        return endpoints.encoded_batch(at, [statement(s) for s in statements])

    @staticmethod
    def encoded_batch(at: str, entries: list[dict]) -> Call:
        """A batch of statements already in wire form (see :func:`statement`)."""
        return Call("POST", at + "/query", {"json": {"batch": entries}}, read=_many)

    @staticmethod
    def session(name: str, mode: str | None = None) -> Call:
        """``mode``: "read" (a pinned snapshot that never blocks writers), "write", or the
        server's default for the token (None)."""
        params = {} if mode is None else {"mode": mode}
        return Call("POST", db_path(name) + "/sessions", {"params": params},
                    read=lambda response: response.json()["session"])

    @staticmethod
    def commit(at: str) -> Call:
        return Call("POST", at + "/commit", read=_nothing)

    @staticmethod
    def rollback(at: str) -> Call:
        """A session already gone (idled out, rolled back) is as good as rolled back."""
        return Call("POST", at + "/rollback", read=_nothing, allowed=(SessionNotFound,))

    # -- clusters (docs/CLUSTERS.md) ------------------------------------------------------

    @staticmethod
    def clusters() -> Call:
        return Call("GET", "/v1/clusters", read=lambda response: response.json()["clusters"])

    @staticmethod
    def create_cluster(name: str, shards: int) -> Call:
        return Call("POST", "/v1/clusters", {"json": {"name": name, "shards": shards}})

    @staticmethod
    def cluster_info(name: str) -> Call:
        return Call("GET", cluster_path(name))

    @staticmethod
    def cluster_query(name: str, sql: str, params: Iterable | dict = (), *, key) -> Call:
        """One statement on the shard that holds ``key``."""
        return Call("POST", cluster_path(name) + "/query", {"json": keyed(key, sql, params)}, read=_one)

    @staticmethod
    def cluster_batch(name: str, statements: Iterable) -> Call:
        """``[(key, sql, params), ...]`` as one transaction, atomic across shards."""
        entries = [keyed(*item) for item in statements]
        return Call("POST", cluster_path(name) + "/query", {"json": {"batch": entries}}, read=_many)

    @staticmethod
    def cluster_all(name: str, sql: str, params: Iterable | dict = ()) -> Call:
        """``sql`` on every shard: a read concatenates every shard's rows (each shard's own
        snapshot); a write runs on every shard in one atomic transaction."""
        return Call("POST", cluster_path(name) + "/query", {"json": {"all": True, **statement((sql, params))}},
                    read=_one)
