"""One hosted database: its connection, lease and transactions.

Every method here runs on a worker thread while the host holds the object's lock, so an
object never runs two requests at once. The object takes the database's write lease when
it loads and keeps it (renewing it as requests come) until it is evicted, so another
process serving the same storage is refused with LeaseHeld instead of forking the data.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import BinaryIO

from dolite.ops import snapshot
from dolite.sql import dbapi
from dolite.errors import Conflict, DatabaseNotFound
from dolite.server.objects.authorizer import Authorizer
from dolite.server.objects.errors import RequestError
from dolite.server.objects.memory import TempQuota, bounded
from dolite.server.objects.metrics import (
    COMMIT_SECONDS,
    OBJECT_EVICTIONS,
    OBJECT_LOADS,
    STORE_TOTALS,
)
from dolite.server.objects.runner import Bounds, Runner
from dolite.pages.format import HEAD
from dolite.storage import Namespace
from dolite.remote.wire import Statement

log = logging.getLogger("dolite.server.objects")
LEASE_MARGIN = 2.0  # seconds of lease a request must have left, else the object reloads


@dataclass(frozen=True)
class ObjectConfig:
    """How hosted objects open their database."""

    lease_ttl: float = 30.0
    cache_bytes: int = 16 << 20
    bounds: Bounds = field(default_factory=Bounds)


class DatabaseObject:
    """The actor for database ``name``; see the module docstring."""

    def __init__(self, name: str, namespace: Namespace, config: ObjectConfig, process_temp: TempQuota | None = None):
        self.name = name
        self.namespace = namespace
        self.config = config
        self.conn: dbapi.Connection | None = None
        self.runner: Runner | None = None
        self.quota = TempQuota(config.bounds.max_temp_bytes, process_temp)
        # Owned by the host (event loop side):
        self.lock = None
        self.waiting = 0
        self.last_used = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def store(self):
        return self.conn.database.store if self.conn is not None else None

    def exists(self) -> bool:
        return HEAD in self.namespace.object(self.name).get([HEAD])

    def ensure_loaded(self, *, create: bool = False) -> None:
        """Open the database and hold its lease (reload if the lease ran out: another
        process may have written since)."""
        if self.conn is not None:
            if self.store.lease.valid(margin=LEASE_MARGIN):
                self._renew_lease()
                return
            self.evict("lease_expired")
        conn = dbapi.connect(self.name, storage=self.namespace, create=create, exclusive=True,
                             isolation_level=None, lease_ttl=self.config.lease_ttl,
                             cache_bytes=self.config.cache_bytes)
        try:
            conn.database.store.ensure_writable()
            auth = Authorizer()
            auth.install(conn.raw)
            runner = Runner(conn.raw, auth, self.config.bounds)
        except BaseException:
            self.conn = conn
            self.evict("load_failed")
            raise
        self.conn, self.runner = conn, runner
        OBJECT_LOADS.inc()

    def _renew_lease(self) -> None:
        try:
            self.store.lease.renew()
        except Conflict:
            self.evict("fenced")
            raise

    def evict(self, reason: str) -> None:
        """Close the connection, give the lease back and drop cached pages."""
        conn = self.conn
        if conn is None:
            return
        database = conn.database
        try:
            conn.close()
        except Exception:
            log.exception("closing %s", self.name)
        def drop() -> None:
            # conn.close() released the VFS's per-database state; drop what is cached.
            self.conn = self.runner = None
            database.store.cache.clear()

        STORE_TOTALS.retire(database.store, drop)
        OBJECT_EVICTIONS.labels(reason).inc()

    def close_if_idle(self, reason: str) -> bool:
        """Close the connection (see :meth:`evict`) unless a transaction is open on it;
        whether it was closed. The host calls this holding the object's lock, so no
        request runs meanwhile; a request that comes later reopens the database."""
        if self.conn is None or self.conn.raw.in_transaction:
            return False
        self.evict(reason)
        return True

    def _fenced(self, exc: Exception) -> None:
        if isinstance(exc, Conflict):
            self.evict("fenced")

    # -- requests --------------------------------------------------------------------

    def query(self, statements: list[Statement], read_only: bool, batch: bool) -> list[dict]:
        self.ensure_loaded()
        try:
            with bounded(self.quota):
                return self.runner.run(statements, read_only=read_only, batch=batch)[0]
        except Conflict as exc:
            self._fenced(exc)
            raise

    def create(self) -> dict:
        if self.exists():
            raise RequestError(409, "already_exists", f"database {self.name!r} already exists")
        self.ensure_loaded(create=True)
        return self.info()

    def info(self) -> dict:
        self.ensure_loaded()
        head = self.store.current_head()
        return {"name": self.name, "version": head.version, "size": head.size,
                "chunk_size": head.chunk_size, "retention": head.retention, "committed_at": head.time}

    def delete(self) -> None:
        self.ensure_loaded()  # hold the lease: nobody else writes while we drop
        self.namespace.drop(self.name)
        self.evict("deleted")

    def export_to(self, out: BinaryIO) -> int:
        if not self.exists():
            raise DatabaseNotFound(f"database {self.name!r} does not exist")
        return snapshot.export_file(self.namespace, self.name, out)

    def import_from(self, src: BinaryIO, replace: bool) -> dict:
        self.evict("import")
        try:
            snapshot.import_file(self.namespace, self.name, src, replace=replace)
        except FileExistsError as exc:
            raise RequestError(409, "already_exists", f"{exc}") from None
        except snapshot.NotASQLiteFile as exc:
            raise RequestError(400, "not_sqlite", str(exc)) from None
        return self.info()

    # -- write sessions: one open transaction that holds the object --------------------

    def begin_session(self) -> None:
        self.ensure_loaded()
        self.runner.control("BEGIN")

    def _session_alive(self) -> None:
        if self.conn is None or not self.conn.raw.in_transaction:
            raise RequestError(409, "session_lost", "the session's transaction was lost; start again")
        if not self.store.lease.valid(margin=LEASE_MARGIN):
            self.end_session(commit=False)
            raise RequestError(409, "session_lost", "the session outlived the write lease; start again")
        self._renew_lease()

    def session_query(self, statements: list[Statement], batch: bool) -> list[dict]:
        self._session_alive()
        try:
            with bounded(self.quota):
                return self.runner.run(statements, read_only=False, batch=batch, in_session=True)[0]
        except Conflict as exc:
            self._fenced(exc)
            raise

    def end_session(self, commit: bool) -> None:
        """COMMIT (durably, before returning) or ROLLBACK the session's transaction."""
        if self.conn is None or not self.conn.raw.in_transaction:
            if commit:
                raise RequestError(409, "session_lost", "the session's transaction was lost; nothing committed")
            return
        if not commit:
            self.runner.control("ROLLBACK")
            return
        self._session_alive()
        started = time.perf_counter()
        try:
            self.runner.control("COMMIT")
        except BaseException as exc:
            if self.conn is not None and self.conn.raw.in_transaction:
                self.runner.control("ROLLBACK")
            self._fenced(exc)
            raise
        COMMIT_SECONDS.observe(time.perf_counter() - started)
