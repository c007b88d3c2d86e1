"""The routes the web console needs, as ordinary token-checked JSON API routes, and the
console's static files (dolite/server/console/, served at ``/`` and ``/console/``).

Each route is a thin call into the library (dolite.ops.admin, dolite.ops.restore,
dolite.backup) on a worker thread. Reads of stored records (status, versions) run beside
the database's requests; check and restore hold the database's object lock, so no request
runs on it meanwhile, and a restore in place first evicts the object (giving back its
write lease) so the restore can commit. See docs/SERVICE.md ("Console and operations").
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dolite.backup import BackupError, BackupTarget, redact
from dolite.errors import CorruptChunk
from dolite.names import validate_name
from dolite.ops import admin
from dolite.ops import restore as restore_ops
from dolite.pages import open_store
from dolite.pages.log import read_records
from dolite.server.auth import ADMIN, READ
from dolite.server.backup_lag import backup_lag, lagging
from dolite.server.errors import JSON
from dolite.server.objects import RequestError
from dolite.server.stats import Sampler

CONSOLE = Path(__file__).with_name("console")
MAX_VERSIONS = 1000        # versions listed at most (the newest)
STORAGE_PROBE_SECONDS = 5.0
LAG_MEMO_SECONDS = 10.0    # /v1/health reuses its backup lag answer this long
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class ConsoleAPI:
    """Routes bound to a :class:`dolite.server.app.Service` (its host, auth and limits)."""

    def __init__(self, service, sampler: Sampler, backup: BackupTarget | None = None):
        self.service, self.host, self.sampler, self.backup = service, service.host, sampler, backup
        self.checks: dict[str, dict] = {}  # name -> summary of its last check (this process)
        self._lag_memo: tuple[float, list[str] | str] | None = None  # (when, lagging names or the error)

    async def _exclusive(self, name: str, fn, *args, evict: str | None = None):
        """Run ``fn(*args)`` while holding database ``name``'s object lock (see
        :meth:`ObjectHost.exclusive`)."""
        return await self.host.exclusive(name, lambda _obj: fn(*args), evict=evict)

    # -- one database -------------------------------------------------------------------

    async def status(self, request: Request):
        """admin.info of the database plus its health as far as this process knows."""
        name = request.path_params["name"]
        async with self.service._admitted(self.service._grant(request, name, READ)):
            try:
                info = await asyncio.to_thread(admin.info, self.host.namespace, name)
            except CorruptChunk as exc:
                self.checks[name] = {"ok": False, "checked_at": time.time(), "problems": [str(exc)]}
                raise
        last = self.checks.get(name)
        info["health"] = "unchecked" if last is None else ("ok" if last["ok"] else "corrupt")
        info["last_check"] = last
        info["backup_lag"] = await self._backup_lag(name)
        return JSON(info)

    async def _backup_lag(self, name: str) -> dict | None:
        """None without a backup target; the target's trouble is reported, not raised."""
        if self.backup is None:
            return None
        try:
            return await asyncio.to_thread(backup_lag, self.host.namespace, name, self.backup)
        except BackupError as exc:
            return {"target": redact(self.backup.url), "error": str(exc), "lagging": None}

    async def versions(self, request: Request):
        """Retained versions, newest first: commit time, size after, chunks written."""
        name = request.path_params["name"]
        async with self.service._admitted(self.service._grant(request, name, READ)):
            listed = await asyncio.to_thread(_versions, self.host.namespace, name)
        return JSON(listed)

    async def check(self, request: Request):
        """Verify checksums of every stored record and chunk version, then integrity_check."""
        name = request.path_params["name"]
        async with self.service._admitted(self.service._grant(request, name, ADMIN)):
            report = await self._exclusive(name, admin.check, self.host.namespace, name)
        summary = {"ok": report.ok, "checked_at": time.time(),
                   "problems": [*report.corrupt, *(x for x in report.integrity if x != "ok")]}
        self.checks[name] = summary
        return JSON({"name": name, "ok": report.ok, "integrity": report.integrity,
                     "chunks_checked": report.chunks_checked, "records_checked": report.records_checked,
                     "corrupt": report.corrupt, "damaged": report.damaged})

    async def restore(self, request: Request):
        """``{"version": V}``: make the database what it was at V (a new version on top);
        ``{"version": V, "into": "other"}``: fork V into a new database (admin on both)."""
        name = request.path_params["name"]
        grant = self.service._grant(request, name, ADMIN)
        async with self.service._admitted(grant):
            body = await self.service._json(request)
            version, into = _restore_body(body)
            if into is not None:
                self.service._grant(request, into, ADMIN)
                head = await self._exclusive(name, _fork, self.host.namespace, name, version, into)
            else:
                head = await self._exclusive(name, _restore_in_place, self.host.namespace, name, version,
                                             evict="restore")
        return JSON({"restored": name, "from_version": version, "into": into or name,
                     "version": head.version, "size": head.size}, status_code=201 if into else 200)

    # -- the whole service ----------------------------------------------------------------

    async def stats(self, request: Request):
        """The ring buffer: service-wide samples, or one database's (read scope on it)."""
        database = request.query_params.get("database")
        if database is None:
            self.service._identify(request)
        else:
            self.service._grant(request, database, READ)
        return JSON({"interval": self.sampler.interval, "database": database,
                     "samples": self.sampler.series(database)})

    async def health(self, request: Request):
        """What an operator should know at once: storage reachable, databases found corrupt
        by a check (those this token may read), and the gauges of /metrics."""
        grant = self.service._identify(request)
        storage, names = await self._probe_storage()
        corrupt = sorted(n for n, c in self.checks.items() if not c["ok"] and n in names and grant.can_list(n))
        backups = await self._backups(names, grant) if storage == "ok" else None
        ok = storage == "ok" and not corrupt and not (backups and (backups["lagging"] or "error" in backups))
        return JSON({"status": "ok" if ok else "degraded", "storage": storage, "corrupt": corrupt,
                     "backup": backups, "objects_loaded": sum(1 for o in list(self.host.objects.values()) if o.conn),
                     "sessions_open": len(self.host.sessions)})

    async def _backups(self, names: set[str], grant) -> dict | None:
        """The databases (that ``grant`` may read) whose backup lags; the answer over all
        databases is reused for LAG_MEMO_SECONDS, so polling consoles cost the target little."""
        if self.backup is None:
            return None
        out = {"target": redact(self.backup.url), "lagging": []}
        if self._lag_memo is None or time.monotonic() - self._lag_memo[0] > LAG_MEMO_SECONDS:
            try:
                found = await asyncio.wait_for(asyncio.to_thread(
                    lagging, self.host.namespace, sorted(names), self.backup), STORAGE_PROBE_SECONDS)
            except TimeoutError:
                found = f"the backup target did not answer within {STORAGE_PROBE_SECONDS:g}s"
            except Exception as exc:  # noqa: BLE001 (reported: that is what health is for)
                found = str(exc)
            self._lag_memo = (time.monotonic(), found)
        found = self._lag_memo[1]
        if isinstance(found, str):
            out["error"] = found
        else:
            out["lagging"] = [n for n in found if grant.can_list(n)]
        return out

    async def _probe_storage(self) -> tuple[str, set[str]]:
        """("ok", the names stored) or ("unreachable: why", the names checked before)."""
        try:
            names = await asyncio.wait_for(asyncio.to_thread(self.host.namespace.names), STORAGE_PROBE_SECONDS)
        except TimeoutError:
            return f"unreachable: no answer within {STORAGE_PROBE_SECONDS:g}s", set(self.checks)
        except Exception as exc:  # noqa: BLE001 (reported: that is what the probe is for)
            return f"unreachable: {exc}", set(self.checks)
        return "ok", set(names)

    async def index(self, request: Request):
        html = (CONSOLE / "index.html").read_bytes()
        return Response(html, media_type="text/html; charset=utf-8", headers={
            "Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})

    def routes(self) -> list:
        db = "/v1/databases/{name}"
        return [
            Route("/", self.index, methods=["GET"]),
            Mount("/console", app=StaticFiles(directory=CONSOLE), name="console"),
            Route(db + "/status", self.status, methods=["GET"]),
            Route(db + "/versions", self.versions, methods=["GET"]),
            Route(db + "/check", self.check, methods=["POST"]),
            Route(db + "/restore", self.restore, methods=["POST"]),
            Route("/v1/stats", self.stats, methods=["GET"]),
            Route("/v1/health", self.health, methods=["GET"]),
        ]


def _restore_body(body) -> tuple[int, str | None]:
    if not isinstance(body, dict) or "version" not in body or set(body) - {"version", "into"}:
        raise RequestError(400, "bad_request", 'the body must be {"version": <int>} or {"version": <int>, '
                           '"into": "<new database>"}')
    version, into = body["version"], body.get("into")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RequestError(400, "bad_request", "version must be a positive integer")
    if into is not None:
        if not isinstance(into, str):
            raise RequestError(400, "bad_request", "into must be a database name")
        validate_name(into)
    return version, into


def _versions(namespace, name: str) -> dict:
    retained = restore_ops.retained_versions(namespace, name)[-MAX_VERSIONS:]
    store = open_store(namespace, name)
    head = store.read_head()
    records = read_records(store.storage, name, head, retained[0][0], head.version + 1) if retained else {}
    listed = [{"version": v, "time": t, "size": records[v].size if v in records else None,
               "chunks_written": len(records[v].chunks) if v in records else None}
              for v, t in reversed(retained)]
    return {"name": name, "current": head.version, "versions": listed}


def _restore_in_place(namespace, name: str, version: int):
    return restore_ops.restore(namespace, name, version=version)


def _fork(namespace, name: str, version: int, into: str):
    try:
        return restore_ops.restore(namespace, name, version=version, into=into)
    except FileExistsError as exc:
        raise RequestError(409, "already_exists", str(exc)) from None
