"""Clusters over HTTP: ``/v1/clusters`` (list, create) and ``/v1/clusters/{name}`` (info,
query). See docs/SERVICE.md ("Clusters") and docs/CLUSTERS.md.

A query body is one of::

    {"key": K, "sql": S, "params": P}                 # on the shard that holds K
    {"batch": [{"key", "sql", "params"}, ...]}        # one transaction, atomic across shards
    {"all": true, "sql": S, "params": P}              # every shard (see :func:`_fan_out`)

Scopes: a token's scope on the cluster's *name* covers the cluster and its shards (read:
query; write: also write; admin: also create). Scopes on the shards' own database names
(``bank.s0``) govern only ``/v1/databases/...``.

Server-side SQL cannot reach past the cluster: every shard connection of the service
carries the hosted databases' authorizer (dolite/server/objects/authorizer.py: no ATTACH,
load_extension, TEMP objects or connection-changing pragmas; no writes for a read token),
user transaction control is refused before it runs (a request or batch *is* the
transaction), and every statement runs under the service's statement time limit.

Cluster calls block (storage round trips, 2PC): they run on worker threads.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import apsw
from prometheus_client.core import CounterMetricFamily, SummaryMetricFamily
from starlette.requests import Request
from starlette.routing import Route

from dolite.cluster import coordinator
from dolite.cluster.cluster import READS, Cluster
from dolite.cluster.results import Result
from dolite.cluster.map import map_object, read_map
from dolite.errors import (
    AlreadyExists,
    BadRequest,
    DatabaseNotFound,
    Forbidden,
    OperationalError,
    ResultTooLarge,
    SQLNotAllowed,
    TimeLimit,
    TransactionControl,
    WireError,
)
from dolite.names import validate_name
from dolite.pages import twophase
from dolite.remote.wire import decode_value, encode_value, parse_statement
from dolite.server.auth import ADMIN, READ, WRITE
from dolite.server.errors import JSON
from dolite.server.objects.authorizer import REQUEST_SETTINGS, Authorizer
from dolite.server.objects.metrics import REGISTRY

_LEAD = r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*"
# A statement that ends, starts or nests a transaction (it cannot hide inside another).
_TRANSACTION_CONTROL = re.compile(_LEAD + r"(?:BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b",
                                  re.IGNORECASE | re.DOTALL)
_OWN_STATEMENTS = ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")  # the cluster's, never time-limited
_denial = threading.local()  # the last refusal of the authorizer on this thread


class _ShardGuard(Authorizer):
    """The hosted databases' authorizer, on one shard connection of the service. The
    cluster's own BEGIN IMMEDIATE/COMMIT/ROLLBACK are allowed here: the user's are refused
    before they run (:func:`_check_sql`). Also times the running statement."""

    def __init__(self, read_only: bool, statement_seconds: float):
        super().__init__()
        self.read_only, self.statement_seconds = read_only, statement_seconds
        self.started: float | None = None

    def __call__(self, op: int, p1, p2, dbname, trigger) -> int:
        if op in (apsw.SQLITE_TRANSACTION, apsw.SQLITE_SAVEPOINT):
            return apsw.SQLITE_OK
        if op == apsw.SQLITE_PRAGMA and p2 is not None and (p1 or "").lower() in REQUEST_SETTINGS:
            return self._deny("sql_not_allowed", f"PRAGMA {p1} would outlive the request on a shared "
                              "shard connection: not allowed on a cluster")
        return super().__call__(op, p1, p2, dbname, trigger)

    def _deny(self, code: str, message: str) -> int:
        if code == "forbidden":
            message = message.replace("this database", "this cluster")
        _denial.value = (code, message)
        return super()._deny(code, message)

    def trace(self, sql: str) -> None:
        self.started = None if sql.strip().upper() in _OWN_STATEMENTS else time.monotonic()

    def overdue(self) -> bool:
        return self.started is not None and time.monotonic() - self.started > self.statement_seconds


class ServedCluster(Cluster):
    """A cluster whose shard connections carry a :class:`_ShardGuard` (read-only or not)."""

    def __init__(self, name: str, namespace, *, read_only: bool, statement_seconds: float,
                 shards: int | None = None):
        self.read_only, self.statement_seconds = read_only, statement_seconds
        super().__init__(name, namespace, shards=shards)

    def _connect(self, shard: str, *, create: bool = False):
        conn = super()._connect(shard, create=create)
        guard = _ShardGuard(self.read_only, self.statement_seconds)
        conn.set_authorizer(guard)
        conn.set_trace_callback(guard.trace)
        conn.set_progress_handler(guard.overdue, 1000)
        return conn

    def read_every_shard(self, sql: str, parameters=()) -> list[Result]:
        """``query_all``, one result a shard (with its columns), in shard order."""
        self._check_open()
        with ThreadPoolExecutor(min(8, len(self.shards))) as pool:
            return list(pool.map(lambda s: self._read(s, sql, parameters), self.shards.values()))


def cluster_names(namespace) -> list[str]:
    """The clusters stored in ``namespace`` (those with a shard map), sorted."""
    names = []
    for name in namespace.names():
        if name.endswith(".map") and read_map(namespace.object(name), name) is not None:
            names.append(name[: -len(".map")])
    return names


class ClusterAPI:
    """The cluster routes, bound to a :class:`dolite.server.app.Service`. Opened clusters
    are kept (one read-only and one writing instance a name) for the process's life."""

    def __init__(self, service):
        self.service, self.namespace = service, service.host.namespace
        self.bounds = service.host.config.object.bounds
        self._open: dict[tuple[str, bool], ServedCluster] = {}
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        at = "/v1/clusters/{name}"
        return [Route("/v1/clusters", self.list, methods=["GET"]),
                Route("/v1/clusters", self.create, methods=["POST"]),
                Route(at, self.info, methods=["GET"]),
                Route(at + "/query", self.query, methods=["POST"])]

    def _cluster(self, name: str, read_only: bool, shards: int | None = None) -> ServedCluster:
        """The open cluster ``name`` (blocking: on a worker thread)."""
        with self._lock:
            key = (name, read_only)
            if key not in self._open:
                if shards is None and read_map(self.namespace.object(map_object(name)), name) is None:
                    raise DatabaseNotFound(f"cluster {name!r} does not exist (create it: POST /v1/clusters)")
                self._open[key] = ServedCluster(name, self.namespace, read_only=read_only, shards=shards,
                                                statement_seconds=self.bounds.statement_seconds)
            return self._open[key]

    # -- routes ---------------------------------------------------------------------------

    async def list(self, request: Request):
        grant = self.service._identify(request)
        async with self.service._admitted(grant):
            names = await asyncio.to_thread(cluster_names, self.namespace)
        return JSON({"clusters": [n for n in names if grant.can_list(n)]})

    async def create(self, request: Request):
        grant = self.service._identify(request)
        async with self.service._admitted(grant):
            body = await self.service._json(request)
            if (not isinstance(body, dict) or set(body) != {"name", "shards"} or not isinstance(body["name"], str)
                    or isinstance(body["shards"], bool) or not isinstance(body["shards"], int)):
                raise BadRequest('the body must be {"name": "<cluster name>", "shards": <count>}')
            name = body["name"]
            self.service._grant(request, name, ADMIN)
            info = await asyncio.to_thread(self._create, name, body["shards"])
        return JSON(info, status_code=201)

    def _create(self, name: str, shards: int) -> dict:
        if read_map(self.namespace.object(map_object(name)), name) is not None:
            raise AlreadyExists(f"cluster {name!r} already exists")
        return self._cluster(name, False, shards).info()

    async def info(self, request: Request):
        name = request.path_params["name"]
        async with self.service._admitted(self.service._grant(request, name, READ)):
            return JSON(await asyncio.to_thread(lambda: _info_with_ranges(self._cluster(name, True))))

    async def query(self, request: Request):
        name = request.path_params["name"]
        grant = self.service._grant(request, name, READ)
        read_only = grant.level(name) < WRITE
        async with self.service._admitted(grant):
            started = time.perf_counter()
            body = await self.service._json(request)
            kind, statements = self._parse(body)
            results = await asyncio.to_thread(self._run, name, read_only, kind, statements)
        took = round((time.perf_counter() - started) * 1000, 3)
        if kind == "batch":
            return JSON({"results": results, "duration_ms": took})
        return JSON({**results[0], "duration_ms": took})

    # -- running --------------------------------------------------------------------------

    def _parse(self, body) -> tuple[str, list[tuple]]:
        """The kind of query ("key", "batch" or "all") and its ``(key, sql, params)``."""
        if not isinstance(body, dict):
            raise WireError('the body must be a JSON object: {"key", "sql", "params"}, {"batch": [...]} '
                            'or {"all": true, "sql", "params"}')
        if "batch" in body:
            if set(body) != {"batch"}:
                raise WireError('a batch body has only the field "batch"')
            items = body["batch"]
            if not isinstance(items, list) or not items:
                raise WireError("batch must be a non-empty list of statements")
            if len(items) > self.service.config.max_statements:
                raise WireError(f"batch has {len(items)} statements, over the limit of "
                                f"{self.service.config.max_statements}")
            return "batch", [_keyed(item, f"batch[{i}]") for i, item in enumerate(items)]
        if "all" in body:
            if body["all"] is not True:
                raise WireError('"all" must be true')
            rest = {k: v for k, v in body.items() if k != "all"}
            stmt = parse_statement(rest)
            return "all", [(None, _check_sql(stmt.sql, "body"), stmt.params)]
        return "key", [_keyed(body, "body")]

    def _run(self, name: str, read_only: bool, kind: str, statements: list[tuple]) -> list[dict]:
        cluster = self._cluster(name, read_only)
        _denial.value = None
        try:
            if kind == "all":
                return [self._fan_out(cluster, *statements[0][1:])]
            if kind == "key":
                key, sql, params = statements[0]
                return [self._encode(cluster.execute(sql, params, key=key), cluster.shard_for(key))]
            results = cluster.batch(statements)
            return [self._encode(r, cluster.shard_for(k)) for r, (k, _, _) in zip(results, statements)]
        except OperationalError as exc:
            raise _refusal(exc, name, read_only) from exc

    def _fan_out(self, cluster: ServedCluster, sql: str, params) -> dict:
        """A read (SELECT/VALUES/EXPLAIN) reads every shard in parallel, each on its own
        snapshot (``query_all``: not one global snapshot); anything else runs on every
        shard in one atomic transaction (``execute_all``). The rows are concatenated in
        shard order, ``rows_changed`` summed."""
        results = (cluster.read_every_shard(sql, params) if sql.lstrip().upper().startswith(READS)
                   else cluster.execute_all(sql, params))
        rows = [row for r in results for row in r.fetchall()]
        columns = [d[0] for d in results[0].description or ()]
        return self._shape(columns, rows, sum(max(r.rowcount, 0) for r in results), 0, len(results))

    def _shape(self, columns, rows, changed: int, rowid: int, shards: int) -> dict:
        encoded = [[encode_value(v) for v in row] for row in rows]
        if len(json.dumps(encoded, ensure_ascii=True)) > self.bounds.max_result_bytes:
            raise ResultTooLarge(f"the result is over the limit of {self.bounds.max_result_bytes} bytes: "
                                 "add a LIMIT or narrow the query")
        return {"columns": columns or [], "rows": encoded, "rows_changed": changed,
                "last_insert_rowid": rowid, "shards": shards}

    def _encode(self, result, shard: str) -> dict:
        rows = result.fetchall()
        columns = [d[0] for d in result.description or ()]
        changed = max(result.rowcount, 0)
        shaped = self._shape(columns, rows, changed, result.lastrowid or 0, 1)
        del shaped["shards"]
        return {**shaped, "shard": shard}


def slot_ranges(slots, shard: int) -> list[list[int]]:
    """The runs of consecutive slots that map to shard index ``shard``, as inclusive
    ``[first, last]`` pairs in slot order (the map's ``slots`` is slot -> shard index)."""
    runs: list[list[int]] = []
    for slot, owner in enumerate(slots):
        if owner != shard:
            continue
        if runs and runs[-1][1] == slot - 1:
            runs[-1][1] = slot
        else:
            runs.append([slot, slot])
    return runs


def _info_with_ranges(cluster: ServedCluster) -> dict:
    """``Cluster.info()`` with each shard's slot ``ranges`` (what the console draws)."""
    info = cluster.info()
    for index, shard in enumerate(info["shards"]):
        shard["ranges"] = slot_ranges(cluster.map.slots, index)
    return info


def _keyed(item, where: str) -> tuple:
    """``{"key", "sql", "params"}`` as ``(key, sql, params)``; the key is a string, an
    integer or a blob (``{"type": "blob", "base64": ...}``)."""
    if not isinstance(item, dict) or "key" not in item:
        raise WireError(f'{where} must be an object with "key" and "sql"')
    key = decode_value(item["key"])
    if not isinstance(key, (str, int, bytes)):
        raise WireError(f"{where}.key must be a string, an integer or a blob")
    stmt = parse_statement({k: v for k, v in item.items() if k != "key"}, where)
    return key, _check_sql(stmt.sql, where), stmt.params


def _check_sql(sql: str, where: str) -> str:
    if _TRANSACTION_CONTROL.match(sql):
        raise TransactionControl(f"{where}: BEGIN/COMMIT/ROLLBACK/SAVEPOINT are implicit on a cluster: "
                                 "a request is one transaction, a batch is one transaction across shards")
    return sql


def _refusal(exc: OperationalError, name: str, read_only: bool) -> Exception:
    """The error to answer for a statement SQLite refused: the authorizer's reason, the
    time limit, or ``exc`` itself."""
    text = str(exc)
    if "not authorized" in text:
        denial = getattr(_denial, "value", None)
        if denial is not None:
            return (Forbidden if denial[0] == "forbidden" else SQLNotAllowed)(denial[1])
        if read_only:
            return Forbidden(f"this token may only read cluster {name!r} (or the statement is not "
                             "allowed on the server)")
        return SQLNotAllowed("the statement is not allowed on the server (ATTACH, load_extension, "
                             "TEMP objects, connection-changing pragmas)")
    if "interrupted" in text:
        return TimeLimit("a statement ran past the statement time limit")
    return exc


class ClusterMetrics:
    """This process's 2PC counters (dolite.cluster.coordinator.stats and
    dolite.pages.twophase.stats) as ``dolite_cluster_*``."""

    _COUNTERS = {"cross_shard_commits": "Cross-shard transactions committed by two-phase commit",
                 "aborts": "Cross-shard transactions aborted before their decision",
                 "unknown_outcomes": "Cross-shard commits whose decision could not be read back",
                 "apply_failures": "Decided commits whose head moves failed (left to recovery)"}

    def collect(self):
        for key, text in self._COUNTERS.items():
            family = CounterMetricFamily(f"dolite_cluster_{key}", text)
            family.add_metric([], coordinator.stats[key])
            yield family
        family = CounterMetricFamily("dolite_cluster_in_doubt_resolutions",
                                     "Prepared versions found in doubt and resolved, by action",
                                     labels=["action"])
        for action, n in sorted(twophase.stats.items()):
            family.add_metric([action], n)
        yield family
        yield SummaryMetricFamily("dolite_cluster_2pc_seconds",
                                  "Cross-shard commit latency: prepares to durable decision",
                                  count_value=coordinator.stats["cross_shard_commits"],
                                  sum_value=coordinator.stats["decide_seconds"])

    def describe(self):
        return []


REGISTRY.register(ClusterMetrics())
