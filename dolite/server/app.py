"""The HTTP API (Starlette). Routes are thin: authenticate, parse, call the object host.

See docs/SERVICE.md and ``GET /openapi.json`` for the API itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from dolite.sql import dbapi
from dolite.errors import DoliteError
from dolite.names import validate_name
from dolite.server.objects import HostConfig, ObjectHost, RequestError
from dolite.server.objects.deadline import request_deadline
from dolite.server.objects.metrics import REGISTRY, REQUEST_SECONDS
from dolite.server.objects.sessions import MAX_PAGE_ROWS, is_paged, paged_query
from dolite.server.auth import ADMIN, READ, WRITE, Auth, Grant
from dolite.server.errors import JSON, error_response, from_exception
from dolite.server.limits import TokenLimiter
from dolite.server.protocol import BodyTimeout, BodyTimeoutMiddleware
from dolite.server.openapi import spec
from dolite.server.console_api import ConsoleAPI
from dolite.server.changesets import ChangesetAPI
from dolite.server.clusters import ClusterAPI
from dolite.backup import open_target
from dolite.server.backup_loop import BackupLoop
from dolite.server.stats import Sampler
from dolite.remote.wire import WireError, parse_query


@dataclass(frozen=True)
class ServiceConfig:
    """Limits of the HTTP layer."""

    max_body_bytes: int = 1 << 20
    max_import_bytes: int = 1 << 30
    max_statements: int = 1000
    request_timeout: float = 30.0      # total deadline of a query, session or info request
    token_concurrency: int = 8         # requests one token runs at once
    token_queue: int = 64              # requests of one token waiting beyond those (then 429)
    body_timeout: BodyTimeout = field(default_factory=BodyTimeout)


class Service:
    """Routes bound to one host, auth and config. Every route that names a database checks
    the token first (before reading the body), then takes one of the token's slots
    (limits.py) and runs under the request deadline."""

    backup_loop: BackupLoop | None = None  # continuous backups, when the service runs them

    def __init__(self, host: ObjectHost, auth: Auth, config: ServiceConfig):
        self.host, self.auth, self.config = host, auth, config
        self.limiter = TokenLimiter(config.token_concurrency, config.token_queue)

    # -- helpers ---------------------------------------------------------------------

    def _identify(self, request: Request) -> Grant:
        return self.auth.identify(request.headers.get("authorization"))

    def _grant(self, request: Request, database: str | None, level: int) -> Grant:
        grant = self._identify(request)
        if database is not None:
            validate_name(database)
        self.auth.require(grant, database, level)
        return grant

    @contextlib.asynccontextmanager
    async def _admitted(self, grant: Grant):
        """Run the block in one of the token's slots, under the request deadline."""
        with request_deadline(self.config.request_timeout):
            async with self.limiter.slot(grant.digest):
                yield

    async def _body(self, request: Request, limit: int):
        """Yield the body in pieces, refusing (413) past ``limit`` bytes."""
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestError(400, "bad_request", "invalid Content-Length header")
            if int(declared) > limit:
                raise _too_large(limit)
        seen = 0
        async for piece in request.stream():
            seen += len(piece)
            if seen > limit:
                raise _too_large(limit)
            yield piece

    async def _json(self, request: Request):
        raw = b"".join([piece async for piece in self._body(request, self.config.max_body_bytes)])
        try:
            return _loads(raw)
        except (ValueError, RecursionError) as exc:
            raise RequestError(400, "bad_json", f"the body is not valid JSON: {exc}") from None

    async def _statements(self, request: Request):
        return self._parse(await self._json(request))

    def _parse(self, body):
        """The statements of a query body, and whether it is a batch."""
        try:
            statements, batch = parse_query(body, self.config.max_statements)
        except WireError as exc:
            raise RequestError(400, "bad_request", str(exc)) from None
        for i, stmt in enumerate(statements):
            values = stmt.params.values() if isinstance(stmt.params, dict) else stmt.params
            if any(isinstance(v, float) and math.isnan(v) for v in values):
                where = f"batch[{i}]: " if batch else ""
                raise WireError(f"{where}NaN cannot be stored (SQLite would store NULL): "
                                "send null, or the value as text")
        return statements, batch

    @staticmethod
    def _shape(results: list[dict], batch: bool, started: float) -> dict:
        took = round((time.perf_counter() - started) * 1000, 3)
        if batch:
            return {"results": results, "duration_ms": took}
        return {**results[0], "duration_ms": took}

    # -- routes ----------------------------------------------------------------------

    async def healthz(self, request: Request):
        bounds = self.host.config.object.bounds
        reasons = self.backup_loop.problems() if self.backup_loop is not None else []
        body = {"status": "degraded" if reasons else "ok", "limits": {
            "max_statements": self.config.max_statements, "max_body_bytes": self.config.max_body_bytes,
            "max_result_bytes": bounds.max_result_bytes, "max_page_rows": MAX_PAGE_ROWS}}
        return JSON({**body, "reasons": reasons} if reasons else body)

    async def metrics(self, request: Request):
        self._identify(request)  # any valid token (docs/SERVICE.md)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request):
        return JSON(spec())

    async def list_databases(self, request: Request):
        grant = self._identify(request)
        names = await self.host.list_databases()
        return JSON({"databases": [n for n in names if grant.can_list(n)]})

    async def create_database(self, request: Request):
        grant = self._identify(request)  # 401 before the body is read
        async with self._admitted(grant):
            body = await self._json(request)
            if not isinstance(body, dict) or set(body) != {"name"} or not isinstance(body["name"], str):
                raise RequestError(400, "bad_request", 'the body must be {"name": "<database name>"}')
            name = body["name"]
            self._grant(request, name, ADMIN)
            return JSON(await self.host.call(name, "create"), status_code=201)

    async def database_info(self, request: Request):
        name = request.path_params["name"]
        async with self._admitted(self._grant(request, name, READ)):
            return JSON(await self.host.call(name, "info"))

    async def delete_database(self, request: Request):
        name = request.path_params["name"]
        async with self._admitted(self._grant(request, name, ADMIN)):
            await self.host.call(name, "delete")
        return JSON({"deleted": name})

    async def query(self, request: Request):
        name = request.path_params["name"]
        grant = self._grant(request, name, READ)
        async with self._admitted(grant):
            started = time.perf_counter()
            body = await self._json(request)
            if is_paged(body):  # a large result, a page at a time (sessions.py)
                return JSON(self._shape([await paged_query(self.host, name, grant.digest, body)], False, started))
            statements, batch = self._parse(body)
            results = await self.host.call(name, "query", statements, grant.level(name) < WRITE, batch)
            return JSON(self._shape(results, batch, started))

    async def export(self, request: Request):
        name = request.path_params["name"]
        spool = tempfile.TemporaryFile()
        try:
            async with self._admitted(self._grant(request, name, READ)):
                await self.host.call(name, "export_to", spool)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise

        async def stream():
            try:
                while piece := await run_in_threadpool(spool.read, 1 << 16):
                    yield piece
            finally:
                spool.close()

        return StreamingResponse(stream(), media_type="application/vnd.sqlite3",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.sqlite"'})

    async def import_(self, request: Request):
        name = request.path_params["name"]
        grant = self._grant(request, name, ADMIN)
        replace = request.query_params.get("replace", "false").lower() in ("1", "true", "yes")
        with tempfile.TemporaryFile() as spool:  # no request deadline: a big file takes long
            async for piece in self._body(request, self.config.max_import_bytes):
                await run_in_threadpool(spool.write, piece)
            spool.seek(0)
            async with self.limiter.slot(grant.digest):
                info = await self.host.call(name, "import_from", spool, replace)
        return JSON(info, status_code=201)

    async def open_session(self, request: Request):
        """``?mode=read`` (a snapshot, never blocks writers) or ``?mode=write`` (holds the
        database; needs write scope). Default: write if the token may write, else read."""
        name = request.path_params["name"]
        grant = self._grant(request, name, READ)
        can_write = grant.level(name) >= WRITE
        mode = request.query_params.get("mode", "write" if can_write else "read")
        if mode not in ("read", "write"):
            raise RequestError(400, "bad_request", "mode must be 'read' or 'write'")
        if mode == "write":
            self.auth.require(grant, name, WRITE)
        async with self._admitted(grant):
            return JSON(await self.host.open_session(name, mode == "read", grant.digest), status_code=201)

    async def session_query(self, request: Request):
        name, sid = request.path_params["name"], request.path_params["session"]
        grant = self._grant(request, name, READ)
        async with self._admitted(grant):
            started = time.perf_counter()
            statements, batch = await self._statements(request)
            results = await self.host.session_query(name, sid, grant.digest, statements, batch)
            return JSON(self._shape(results, batch, started))

    async def commit(self, request: Request):
        name, sid = request.path_params["name"], request.path_params["session"]
        grant = self._grant(request, name, READ)
        async with self._admitted(grant):
            await self.host.end_session(name, sid, grant.digest, commit=True)
        return JSON({"committed": True})

    async def rollback(self, request: Request):
        name, sid = request.path_params["name"], request.path_params["session"]
        grant = self._grant(request, name, READ)
        async with self._admitted(grant):
            await self.host.end_session(name, sid, grant.digest, commit=False)
        return JSON({"rolled_back": True})


def _too_large(limit: int) -> RequestError:
    return RequestError(413, "body_too_large", f"the request body is over the limit of {limit} bytes")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON (for a non-finite REAL send "
                     '{"type": "float", "value": "Infinity"})')


def _loads(raw: bytes):
    return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)


class RequestTimer:
    """ASGI middleware: times every HTTP request and hands ``(scope, status, seconds)`` to
    each observer: the Prometheus histogram, the console's per-database sampler."""

    def __init__(self, app, observers):
        self.app, self.observers = app, observers

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def capture(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            seconds = time.perf_counter() - started
            for observe in self.observers:
                observe(scope, status[0], seconds)


def observe_request_seconds(scope, status: int, seconds: float) -> None:
    """``dolite_request_seconds{route,method,status}``."""
    route = getattr(scope.get("route"), "path", "unmatched")
    REQUEST_SECONDS.labels(route, scope["method"], str(status)).observe(seconds)


async def _http_error(request: Request, exc: HTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def _error(request: Request, exc: Exception):
    return from_exception(exc)


def create_app(host: ObjectHost | None = None, auth: Auth | None = None,
               config: ServiceConfig | None = None, storage: str = "memory:",
               backup_target: str | None = None, backup_every: float | None = None,
               backup_max_lag: float = 60.0) -> Starlette:
    """The ASGI app. Starts and stops ``host`` (made from ``storage`` if not given).
    ``backup_target`` (default: ``$DOLITE_BACKUP_TARGET``) is the URL whose backups the
    console's backup lag compares with each database; with ``backup_every`` (seconds) the
    service also pushes to it continuously (dolite/server/backup_loop.py)."""
    host = host or ObjectHost(storage, HostConfig())
    config = config or ServiceConfig()
    service = Service(host, auth or Auth([]), config)
    backup_target = backup_target or os.environ.get("DOLITE_BACKUP_TARGET")
    target = open_target(backup_target) if backup_target else None
    service.backup_loop = None if target is None or backup_every is None else BackupLoop(
        host.namespace, target, backup_every, backup_max_lag)
    db = "/v1/databases/{name}"
    routes = [
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/metrics", service.metrics, methods=["GET"]),
        Route("/openapi.json", service.openapi, methods=["GET"]),
        Route("/v1/databases", service.list_databases, methods=["GET"]),
        Route("/v1/databases", service.create_database, methods=["POST"]),
        Route(db, service.database_info, methods=["GET"]),
        Route(db, service.delete_database, methods=["DELETE"]),
        Route(db + "/query", service.query, methods=["POST"]),
        Route(db + "/export", service.export, methods=["GET"]),
        Route(db + "/import", service.import_, methods=["POST"]),
        Route(db + "/sessions", service.open_session, methods=["POST"]),
        Route(db + "/sessions/{session}/query", service.session_query, methods=["POST"]),
        Route(db + "/sessions/{session}/commit", service.commit, methods=["POST"]),
        Route(db + "/sessions/{session}/rollback", service.rollback, methods=["POST"]),
    ]
    sampler = Sampler(lambda: [(n, o.store) for n, o in list(host.objects.items()) if o.conn is not None])
    routes += ConsoleAPI(service, sampler, target).routes()
    routes += ChangesetAPI(service).routes()
    routes += ClusterAPI(service).routes()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await host.start()
        sampling = asyncio.create_task(sampler.run())
        backups = asyncio.create_task(service.backup_loop.run()) if service.backup_loop else None
        try:
            yield
        finally:
            sampling.cancel()
            if backups is not None:
                backups.cancel()
            await host.close()

    timers = [observe_request_seconds, sampler.observe_request]
    middleware = [Middleware(RequestTimer, observers=timers),
                  Middleware(BodyTimeoutMiddleware, timeout=config.body_timeout)]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={HTTPException: _http_error, DoliteError: _error, dbapi.Error: _error,
                                        WireError: _error, Exception: _error})
    app.state.host = host
    return app
