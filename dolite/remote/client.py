"""Talk to a ``dolite serve`` over HTTP: :class:`Client` (sync) and :class:`AsyncClient`::

    client = Client("http://127.0.0.1:8787", token="s3cret")
    client.create("shop")
    client.batch("shop", ["CREATE TABLE t(v)", ("INSERT INTO t VALUES (?)", [b"\\x00"])])
    client.query("shop", "SELECT v FROM t").rows        # [(b'\\x00',)]
    with client.session("shop") as s:                   # one transaction across calls
        s.query("UPDATE t SET v = v || 'x'")

Values round-trip exactly: blobs as bytes, 64-bit integers, infinities (see dolite.remote.wire).
Every refusal is raised as the :class:`dolite.Error` subclass its code names (see
:mod:`dolite.errors`); a server that cannot be reached is a :class:`dolite.errors.NetworkError`.
The DB-API 2.0 driver over this client is :mod:`dolite.remote.httpdbapi`.

Both clients share one request layer, :mod:`dolite.remote.api` (what is sent, how the answer
is read, which error it means); only the send differs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, BinaryIO

import httpx

from dolite.errors import Conflict, DatabaseNotFound, Error, InvalidName, LeaseHeld
from dolite.remote.api import Call, Result, db_path, endpoints, network_error, statement

__all__ = ["AsyncClient", "AsyncSession", "Call", "Client", "Result", "Session", "statement"]

# Deprecated names of the errors this module used to define (now the one tree's classes).
ServiceError, LeaseHeldError, ConflictError = Error, LeaseHeld, Conflict
NotFoundError, InvalidNameError = DatabaseNotFound, InvalidName


def _pieces(f: BinaryIO, size: int = 1 << 16):
    while piece := f.read(size):
        yield piece


def _opened(dest: str | os.PathLike | BinaryIO, mode: str):
    """``dest`` itself if it is a file object, else the file it names, opened (and whether we opened it)."""
    if hasattr(dest, "write" if "w" in mode else "read"):
        return dest, False
    return open(dest, mode), True  # noqa: SIM115 - closed by the caller


class _Base:
    """What both clients hold: the server's URL and an httpx client with the token."""

    _http_class: type

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0, **httpx_options):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = self._http_class(base_url=self.url, headers=headers, timeout=timeout, **httpx_options)


# -- synchronous ------------------------------------------------------------------------------


class Client(_Base):
    """A synchronous client of one server (``url`` like ``http://127.0.0.1:8787``)."""

    _http_class = httpx.Client

    def send(self, call: Call) -> Any:
        """Send ``call``; its answer as read, or the error it means."""
        try:
            response = self.http.request(call.method, call.path, **call.options)
        except httpx.HTTPError as exc:
            raise network_error(self.url, exc) from exc
        return call.reply(response)

    def health(self) -> dict:
        return self.send(endpoints.health())

    def metrics(self) -> str:
        return self.send(endpoints.metrics())

    def databases(self) -> list[str]:
        return self.send(endpoints.databases())

    def create(self, name: str) -> dict:
        return self.send(endpoints.create(name))

    def info(self, name: str) -> dict:
        return self.send(endpoints.info(name))

    def delete(self, name: str) -> None:
        self.send(endpoints.delete(name))

    def query(self, name: str, sql: str, params: Iterable | dict = ()) -> Result:
        return self.send(endpoints.query(db_path(name), sql, params))

    def batch(self, name: str, statements: Iterable) -> list[Result]:
        """Run ``statements`` as one transaction (all or nothing)."""
        return self.send(endpoints.batch(db_path(name), statements))

    def session(self, name: str, mode: str | None = None) -> Session:
        """Open a server-side transaction on ``name``: a write session holds the database
        until it ends; ``mode="read"`` reads one pinned version and blocks nobody."""
        return Session(self, name, self.send(endpoints.session(name, mode)))

    def export_to(self, name: str, dest: str | os.PathLike | BinaryIO) -> int:
        """Download database ``name`` as a ``.sqlite`` file; return the bytes written."""
        call = endpoints.export(name)
        try:
            with self.http.stream(call.method, call.path) as response:
                if response.status_code >= 400:
                    response.read()
                    call.reply(response)
                out, close = _opened(dest, "wb")
                try:
                    total = 0
                    for piece in response.iter_bytes():
                        out.write(piece)
                        total += len(piece)
                    return total
                finally:
                    if close:
                        out.close()
        except httpx.HTTPError as exc:
            raise network_error(self.url, exc) from exc

    def clusters(self) -> list[str]:
        return self.send(endpoints.clusters())

    def create_cluster(self, name: str, shards: int) -> dict:
        return self.send(endpoints.create_cluster(name, shards))

    def cluster_info(self, name: str) -> dict:
        return self.send(endpoints.cluster_info(name))

    def cluster_query(self, name: str, sql: str, params: Iterable | dict = (), *, key) -> Result:
        """Run ``sql`` on the shard of cluster ``name`` that holds ``key``."""
        return self.send(endpoints.cluster_query(name, sql, params, key=key))

    def cluster_batch(self, name: str, statements: Iterable) -> list[Result]:
        """Run ``[(key, sql, params), ...]`` as one transaction, atomic across shards."""
        return self.send(endpoints.cluster_batch(name, statements))

    def cluster_all(self, name: str, sql: str, params: Iterable | dict = ()) -> Result:
        """Run ``sql`` on every shard (see :meth:`endpoints.cluster_all`)."""
        return self.send(endpoints.cluster_all(name, sql, params))

    def import_from(self, name: str, src: str | os.PathLike | BinaryIO, *, replace: bool = False) -> dict:
        """Upload a SQLite file as database ``name``."""
        f, close = _opened(src, "rb")
        try:
            return self.send(endpoints.import_(name, _pieces(f), replace))
        finally:
            if close:
                f.close()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Session:
    """An open server-side transaction. Commits on a clean ``with`` exit, else rolls back."""

    def __init__(self, client: Client, name: str, sid: str):
        self.client, self.name, self.id = client, name, sid
        self.path = f"{db_path(name)}/sessions/{sid}"
        self.open = True

    def query(self, sql: str, params: Iterable | dict = ()) -> Result:
        return self.client.send(endpoints.query(self.path, sql, params))

    def batch(self, statements: Iterable) -> list[Result]:
        return self.client.send(endpoints.batch(self.path, statements))

    def commit(self) -> None:
        self.open = False
        self.client.send(endpoints.commit(self.path))

    def rollback(self) -> None:
        if self.open:
            self.open = False
            self.client.send(endpoints.rollback(self.path))

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.open:
            self.commit()
        else:
            self.rollback()


# -- asynchronous -----------------------------------------------------------------------------


class AsyncClient(_Base):
    """The asynchronous twin of :class:`Client` (same methods, awaitable)."""

    _http_class = httpx.AsyncClient

    async def send(self, call: Call) -> Any:
        try:
            response = await self.http.request(call.method, call.path, **call.options)
        except httpx.HTTPError as exc:
            raise network_error(self.url, exc) from exc
        return call.reply(response)

    async def health(self) -> dict:
        return await self.send(endpoints.health())

    async def databases(self) -> list[str]:
        return await self.send(endpoints.databases())

    async def create(self, name: str) -> dict:
        return await self.send(endpoints.create(name))

    async def info(self, name: str) -> dict:
        return await self.send(endpoints.info(name))

    async def delete(self, name: str) -> None:
        await self.send(endpoints.delete(name))

    async def query(self, name: str, sql: str, params: Iterable | dict = ()) -> Result:
        return await self.send(endpoints.query(db_path(name), sql, params))

    async def batch(self, name: str, statements: Iterable) -> list[Result]:
        return await self.send(endpoints.batch(db_path(name), statements))

    async def clusters(self) -> list[str]:
        return await self.send(endpoints.clusters())

    async def create_cluster(self, name: str, shards: int) -> dict:
        return await self.send(endpoints.create_cluster(name, shards))

    async def cluster_info(self, name: str) -> dict:
        return await self.send(endpoints.cluster_info(name))

    async def cluster_query(self, name: str, sql: str, params: Iterable | dict = (), *, key) -> Result:
        return await self.send(endpoints.cluster_query(name, sql, params, key=key))

    async def cluster_batch(self, name: str, statements: Iterable) -> list[Result]:
        return await self.send(endpoints.cluster_batch(name, statements))

    async def cluster_all(self, name: str, sql: str, params: Iterable | dict = ()) -> Result:
        return await self.send(endpoints.cluster_all(name, sql, params))

    async def session(self, name: str, mode: str | None = None) -> AsyncSession:
        return AsyncSession(self, name, await self.send(endpoints.session(name, mode)))

    async def export_to(self, name: str, dest: str | os.PathLike | BinaryIO) -> int:
        call = endpoints.export(name)
        try:
            async with self.http.stream(call.method, call.path) as response:
                if response.status_code >= 400:
                    await response.aread()
                    call.reply(response)
                out, close = _opened(dest, "wb")
                try:
                    total = 0
                    async for piece in response.aiter_bytes():
                        out.write(piece)
                        total += len(piece)
                    return total
                finally:
                    if close:
                        out.close()
        except httpx.HTTPError as exc:
            raise network_error(self.url, exc) from exc

    async def import_from(self, name: str, src: str | os.PathLike | BinaryIO, *, replace: bool = False) -> dict:
        f, close = _opened(src, "rb")
        try:
            data = f.read()
        finally:
            if close:
                f.close()
        return await self.send(endpoints.import_(name, data, replace))

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
        self.path = f"{db_path(name)}/sessions/{sid}"
        self.open = True

    async def query(self, sql: str, params: Iterable | dict = ()) -> Result:
        return await self.client.send(endpoints.query(self.path, sql, params))

    async def batch(self, statements: Iterable) -> list[Result]:
        return await self.client.send(endpoints.batch(self.path, statements))

    async def commit(self) -> None:
        self.open = False
        await self.client.send(endpoints.commit(self.path))

    async def rollback(self) -> None:
        if self.open:
            self.open = False
            await self.client.send(endpoints.rollback(self.path))

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.open:
            await self.commit()
        else:
            await self.rollback()
