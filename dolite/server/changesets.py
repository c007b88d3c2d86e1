"""``POST /v1/databases/{name}/changesets``: a local replica's transaction, pushed through
the service (writer scope). See docs/SERVICE.md and dolite/replica/http.py (the client).

The body is the changeset itself (``Content-Type: application/octet-stream``, at most
``--max-body`` bytes); the query string holds ``replica`` (the replica's id), ``seq`` (its
sequence number, increasing), ``on_conflict`` (``abort``, ``theirs`` or ``ours``) and
optionally ``committed_at`` (the local commit time, Unix seconds: it feeds the replica
lag histogram). The hosted object applies it with
:func:`dolite.replica.sync.apply_pending`, the same transaction a push to a storage URL
runs: exactly once per (replica, seq), conflicting rows decided by the policy, the
sequence number recorded in ``_dolite_replicas`` in the same commit.

Answers: 200 ``{"applied": true, "conflicts": [...], "version"}`` (the rows the policy
decided), or ``{"applied": false, ...}`` when that sequence number was applied before (a
push whose reply was lost); 409 ``conflict`` when the policy aborts, the error holding
``conflicts`` too; nothing is stored then.
"""

from __future__ import annotations

import math
import time

import apsw
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from starlette.requests import Request
from starlette.routing import Route

from dolite.errors import BadRequest, Conflict
from dolite.replica.http import CHANGESET_TYPE, encode_conflict
from dolite.replica.sync import apply_pending
from dolite.server.auth import WRITE
from dolite.server.errors import JSON
from dolite.server.objects.metrics import REGISTRY
from dolite.sql import optimistic
from dolite.sql.optimistic import POLICIES, ConflictingRows

PARAMS = {"replica", "seq", "on_conflict", "committed_at"}
MAX_REPLICA_ID = 128

CHANGESETS = Counter("dolite_changesets", "Changesets pushed by replicas, by outcome "
                     "(applied, duplicate: applied before, aborted: by the policy)",
                     ["outcome"], registry=REGISTRY)
CHANGESET_CONFLICTS = Counter("dolite_changeset_conflicts", "Conflicting rows of pushed changesets, "
                              "by the policy that decided them", ["policy"], registry=REGISTRY)
REPLICA_LAG = Histogram("dolite_replica_lag_seconds", "Time from a replica's local commit to its "
                        "changeset being applied here", registry=REGISTRY,
                        buckets=(0.1, 1, 10, 60, 300, 1800, 3600, 6 * 3600, 86400, 7 * 86400))


class OptimisticMetrics:
    """This process's optimistic-writer counters (dolite.sql.optimistic.metrics) as
    ``dolite_optimistic_{commits,rebases,gave_up}_total`` and
    ``dolite_optimistic_{conflicts,aborts}_total{policy}``."""

    def collect(self):
        counts = optimistic.metrics()
        for key in ("commits", "rebases", "gave_up"):
            family = CounterMetricFamily(f"dolite_optimistic_{key}", f"Optimistic transactions: {key}")
            family.add_metric([], counts.get(key, 0))
            yield family
        for kind, prefix in (("conflicts", "conflicts."), ("aborts", "aborted.")):
            family = CounterMetricFamily(f"dolite_optimistic_{kind}", f"Optimistic rebases: {kind} by policy",
                                         labels=["policy"])
            for key, n in sorted(counts.items()):
                if key.startswith(prefix):
                    family.add_metric([key[len(prefix):]], n)
            yield family

    def describe(self):
        return []


REGISTRY.register(OptimisticMetrics())


class ChangesetAPI:
    """The changesets route, bound to a :class:`dolite.server.app.Service`."""

    def __init__(self, service):
        self.service, self.host = service, service.host

    def routes(self) -> list[Route]:
        return [Route("/v1/databases/{name}/changesets", self.push, methods=["POST"])]

    async def push(self, request: Request):
        name = request.path_params["name"]
        grant = self.service._grant(request, name, WRITE)
        replica, seq, policy, committed_at = _params(request)
        async with self.service._admitted(grant):
            body = [p async for p in self.service._body(request, self.service.config.max_body_bytes)]
            changeset = _changeset(b"".join(body), request.headers.get("content-type", ""))
            try:
                result = await self.host.exclusive(
                    name, lambda obj: _apply(obj, replica, seq, changeset, policy))
            except ConflictingRows as exc:
                CHANGESETS.labels("aborted").inc()
                CHANGESET_CONFLICTS.labels(policy).inc(len(exc.conflicts))
                return JSON({"error": {"code": Conflict.code, "message": str(exc),
                                       "conflicts": [encode_conflict(c) for c in exc.conflicts]}},
                            status_code=Conflict.http_status)
        if not result["applied"]:
            CHANGESETS.labels("duplicate").inc()
            return JSON({"applied": False, "conflicts": [], "version": result["version"]})
        CHANGESETS.labels("applied").inc()
        CHANGESET_CONFLICTS.labels(policy).inc(len(result["conflicts"]))
        if committed_at is not None:
            REPLICA_LAG.observe(max(0.0, time.time() - committed_at))
        return JSON({"applied": True, "conflicts": [encode_conflict(c) for c in result["conflicts"]],
                     "version": result["version"]})


def _params(request: Request) -> tuple[str, int, str, float | None]:
    """The query string, checked: every refusal is a 400 before anything runs."""
    query = request.query_params
    unknown = set(query) - PARAMS
    if unknown:
        raise BadRequest(f"unknown query parameter(s) {sorted(unknown)}; expected {sorted(PARAMS)}")
    replica, seq, policy = query.get("replica", ""), query.get("seq", ""), query.get("on_conflict", "")
    if not replica or len(replica) > MAX_REPLICA_ID or not replica.isprintable():
        raise BadRequest(f"replica must be the replica's id (1 to {MAX_REPLICA_ID} printable characters)")
    if not seq.isdigit() or int(seq) < 1:
        raise BadRequest("seq must be the transaction's sequence number, an integer >= 1")
    if policy not in POLICIES:
        raise BadRequest(f"on_conflict must be one of {POLICIES} (a callable cannot be sent)")
    committed_at = query.get("committed_at")
    if committed_at is not None:
        try:
            committed_at = float(committed_at)
        except ValueError:
            committed_at = math.nan
        if not math.isfinite(committed_at):
            raise BadRequest("committed_at must be Unix seconds (a finite number)")
    return replica, int(seq), policy, committed_at


def _changeset(body: bytes, content_type: str) -> bytes:
    """The body, checked to be a readable changeset."""
    if content_type.split(";")[0].strip().lower() != CHANGESET_TYPE:
        raise BadRequest(f"the body must be the changeset's bytes, sent as {CHANGESET_TYPE}")
    if not body:
        raise BadRequest("the body is empty: a changeset holds at least one change")
    try:
        for change in apsw.Changeset.iter(body):  # every value: text must be UTF-8
            change.name, change.old, change.new  # noqa: B018 - read to check
    except (apsw.Error, ValueError) as exc:  # (UnicodeDecodeError is a ValueError)
        raise BadRequest(f"the body is not a readable SQLite changeset ({exc})") from None
    return body


def _apply(obj, replica: str, seq: int, changeset: bytes, policy: str) -> dict:
    """On the object's thread, its lock held: apply_pending on its connection (the host's
    own transaction, so past the authorizer; apply_pending refuses reserved tables)."""
    obj.ensure_loaded()
    obj.runner.auth.host_mode = True
    try:
        result = apply_pending(obj.conn.raw, replica, seq, changeset, policy, retries=0)
    except ConflictingRows:
        raise
    except Conflict:
        obj.evict("fenced")  # the lease was lost: reload before the next request
        raise
    finally:
        if obj.runner is not None:
            obj.runner.auth.host_mode = False
    return {**result, "version": obj.store.current_head().version}
