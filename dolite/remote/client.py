"""Talk to a ``dolite serve`` over HTTP: :class:`Client` (sync), :class:`AsyncClient`, and a
DB-API 2.0 driver (:func:`connect`, in :mod:`dolite.remote.httpdbapi`)::

    client = Client("http://127.0.0.1:8787", token="s3cret")
    client.create("shop")
    client.batch("shop", ["CREATE TABLE t(v)", ("INSERT INTO t VALUES (?)", [b"\\x00"])])
    client.query("shop", "SELECT v FROM t").rows        # [(b'\\x00',)]
    with client.session("shop") as s:                   # one transaction across calls
        s.query("UPDATE t SET v = v || 'x'")

Values round-trip exactly: blobs as bytes, 64-bit integers, infinities (see dolite.remote.wire).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import httpx

from dolite.errors import (
    Conflict,
    DatabaseNotFound,
    DoliteError,
    InvalidName,
    LeaseHeld,
)
from dolite.remote.wire import decode_value, encode_params


class ServiceError(DoliteError):
    """The server refused a request: ``status`` (HTTP), ``code`` and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{message} [{status} {code}]")
        self.status, self.code, self.message = status, code, message


class LeaseHeldError(ServiceError, LeaseHeld):
    """Another server process is serving the database (retry later)."""


class ConflictError(ServiceError, Conflict):
    """A commit was fenced, or the database changed under a session."""


class NotFoundError(ServiceError, DatabaseNotFound):
    """No such database."""


class InvalidNameError(ServiceError, InvalidName):
    """The database name is invalid."""


_BY_CODE = {"lease_held": LeaseHeldError, "conflict": ConflictError,
            "database_not_found": NotFoundError, "invalid_name": InvalidNameError}


def raise_for(response: httpx.Response) -> None:
    """Raise the ServiceError behind an error response."""
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except Exception:  # noqa: BLE001 - not our JSON (a proxy?): keep what there is
        code, message = "http_error", response.text[:500] or response.reason_phrase
    raise _BY_CODE.get(code, ServiceError)(response.status_code, code, message)


@dataclass(frozen=True)
class Result:
    """The result of one statement."""

    columns: list[str]
    rows: list[tuple]
    rows_changed: int
    last_insert_rowid: int
    duration_ms: float = 0.0

    @classmethod
    def decode(cls, doc: dict) -> Result:
        return cls(list(doc["columns"]), [tuple(decode_value(v) for v in row) for row in doc["rows"]],
                   doc["rows_changed"], doc["last_insert_rowid"], doc.get("duration_ms", 0.0))


def statement(item: Any) -> dict:
    """``"SQL"``, ``("SQL", params)`` or ``{"sql": ..., "params": ...}`` in wire form."""
    if isinstance(item, str):
        return {"sql": item, "params": []}
    if isinstance(item, dict):
        return {"sql": item["sql"], "params": encode_params(item.get("params"))}
    sql, params = item
    return {"sql": sql, "params": encode_params(params)}


def _results(doc: dict) -> list[Result]:
    return [Result.decode(r) for r in doc["results"]]


def _db(name: str) -> str:
    from urllib.parse import quote

    return f"/v1/databases/{quote(name, safe='')}"


def _headers(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


class Client:
    """A synchronous client of one server (``url`` like ``http://127.0.0.1:8787``)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0, **httpx_options):
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=_headers(token), timeout=timeout, **httpx_options)

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        raise_for(response)
        return response

    def health(self) -> dict:
        return self._call("GET", "/healthz").json()

    def metrics(self) -> str:
        return self._call("GET", "/metrics").text

    def databases(self) -> list[str]:
        return self._call("GET", "/v1/databases").json()["databases"]

    def create(self, name: str) -> dict:
        return self._call("POST", "/v1/databases", json={"name": name}).json()

    def info(self, name: str) -> dict:
        return self._call("GET", _db(name)).json()

    def delete(self, name: str) -> None:
        self._call("DELETE", _db(name))

    def query(self, name: str, sql: str, params: Iterable | dict = ()) -> Result:
        return Result.decode(self._call("POST", _db(name) + "/query", json=statement((sql, params))).json())

    def batch(self, name: str, statements: Iterable) -> list[Result]:
        """Run ``statements`` as one transaction (all or nothing)."""
        body = {"batch": [statement(s) for s in statements]}
        return _results(self._call("POST", _db(name) + "/query", json=body).json())

    def session(self, name: str) -> Session:
        """Open a server-side transaction on ``name`` (it holds the database until it ends)."""
        doc = self._call("POST", _db(name) + "/sessions").json()
        return Session(self, name, doc["session"])

    def export_to(self, name: str, dest: str | os.PathLike | BinaryIO) -> int:
        """Download database ``name`` as a ``.sqlite`` file; return the bytes written."""
        with self.http.stream("GET", _db(name) + "/export") as response:
            if response.status_code >= 400:
                response.read()
                raise_for(response)
            out = dest if hasattr(dest, "write") else open(dest, "wb")
            try:
                total = 0
                for piece in response.iter_bytes():
                    out.write(piece)
                    total += len(piece)
                return total
            finally:
                if out is not dest:
                    out.close()

    def import_from(self, name: str, src: str | os.PathLike | BinaryIO, *, replace: bool = False) -> dict:
        """Upload a SQLite file as database ``name``."""
        params = {"replace": "true"} if replace else {}
        if hasattr(src, "read"):
            return self._call("POST", _db(name) + "/import", content=_pieces(src), params=params).json()
        with open(src, "rb") as f:
            return self._call("POST", _db(name) + "/import", content=_pieces(f), params=params).json()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pieces(f: BinaryIO, size: int = 1 << 16):
    while piece := f.read(size):
        yield piece


class Session:
    """An open server-side transaction. Commits on a clean ``with`` exit, else rolls back."""

    def __init__(self, client: Client, name: str, sid: str):
        self.client, self.name, self.id = client, name, sid
        self.path = f"{_db(name)}/sessions/{sid}"
        self.open = True

    def query(self, sql: str, params: Iterable | dict = ()) -> Result:
        return Result.decode(self.client._call("POST", self.path + "/query", json=statement((sql, params))).json())

    def batch(self, statements: Iterable) -> list[Result]:
        body = {"batch": [statement(s) for s in statements]}
        return _results(self.client._call("POST", self.path + "/query", json=body).json())

    def commit(self) -> None:
        self.open = False
        self.client._call("POST", self.path + "/commit")

    def rollback(self) -> None:
        if self.open:
            self.open = False
            try:
                self.client._call("POST", self.path + "/rollback")
            except ServiceError as exc:
                if exc.code != "session_not_found":
                    raise

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.open:
            self.commit()
        else:
            self.rollback()


class AsyncClient:
    """The asynchronous twin of :class:`Client` (same methods, awaitable)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0, **httpx_options):
        self.url = url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.url, headers=_headers(token), timeout=timeout, **httpx_options)

    async def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = await self.http.request(method, path, **kwargs)
        raise_for(response)
        return response

    async def health(self) -> dict:
        return (await self._call("GET", "/healthz")).json()

    async def databases(self) -> list[str]:
        return (await self._call("GET", "/v1/databases")).json()["databases"]

    async def create(self, name: str) -> dict:
        return (await self._call("POST", "/v1/databases", json={"name": name})).json()

    async def info(self, name: str) -> dict:
        return (await self._call("GET", _db(name))).json()

    async def delete(self, name: str) -> None:
        await self._call("DELETE", _db(name))

    async def query(self, name: str, sql: str, params: Iterable | dict = ()) -> Result:
        response = await self._call("POST", _db(name) + "/query", json=statement((sql, params)))
        return Result.decode(response.json())

    async def batch(self, name: str, statements: Iterable) -> list[Result]:
        body = {"batch": [statement(s) for s in statements]}
        return _results((await self._call("POST", _db(name) + "/query", json=body)).json())

    async def session(self, name: str) -> AsyncSession:
        doc = (await self._call("POST", _db(name) + "/sessions")).json()
        return AsyncSession(self, name, doc["session"])

    async def export_to(self, name: str, dest: str | os.PathLike | BinaryIO) -> int:
        async with self.http.stream("GET", _db(name) + "/export") as response:
            if response.status_code >= 400:
                await response.aread()
                raise_for(response)
            out = dest if hasattr(dest, "write") else open(dest, "wb")
            try:
                total = 0
                async for piece in response.aiter_bytes():
                    out.write(piece)
                    total += len(piece)
                return total
            finally:
                if out is not dest:
                    out.close()

    async def import_from(self, name: str, src: str | os.PathLike | BinaryIO, *, replace: bool = False) -> dict:
        if hasattr(src, "read"):
            data = src.read()
        else:
            with open(src, "rb") as f:
                data = f.read()
        params = {"replace": "true"} if replace else {}
        return (await self._call("POST", _db(name) + "/import", content=data, params=params)).json()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


class AsyncSession:
    """The asynchronous twin of :class:`Session` (``async with``)."""

    def __init__(self, client: AsyncClient, name: str, sid: str):
        self.client, self.name, self.id = client, name, sid
        self.path = f"{_db(name)}/sessions/{sid}"
        self.open = True

    async def query(self, sql: str, params: Iterable | dict = ()) -> Result:
        response = await self.client._call("POST", self.path + "/query", json=statement((sql, params)))
        return Result.decode(response.json())

    async def batch(self, statements: Iterable) -> list[Result]:
        body = {"batch": [statement(s) for s in statements]}
        return _results((await self.client._call("POST", self.path + "/query", json=body)).json())

    async def commit(self) -> None:
        self.open = False
        await self.client._call("POST", self.path + "/commit")

    async def rollback(self) -> None:
        if self.open:
            self.open = False
            try:
                await self.client._call("POST", self.path + "/rollback")
            except ServiceError as exc:
                if exc.code != "session_not_found":
                    raise

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.open:
            await self.commit()
        else:
            await self.rollback()


def connect(url: str, token: str | None = None, **options):
    """DB-API 2.0 connection to ``http(s)://HOST:PORT/DATABASE``: see :mod:`dolite.remote.httpdbapi`."""
    from dolite.remote.httpdbapi import connect as _connect

    return _connect(url, token=token, **options)
