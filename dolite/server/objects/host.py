"""The object host: one actor per database name, loaded on first use, closed when idle.

An idle object (no request running or waiting, no transaction, no session on its
database) past ``idle_timeout``, or the least recently used beyond ``max_objects``, is
closed: its SQLite connection, page cache and write lease go; the next request reopens it
transparently. Once closed and unawaited it is forgotten: what an idle database keeps in
the process is its name in storage, nothing more (``dolite bench``'s ``idle_db_kib``).

Requests to one object run one at a time (an asyncio lock per object, the work itself on
a thread pool, so different objects run in parallel). A write session holds its object's
lock from BEGIN to COMMIT/ROLLBACK (or until it idles out or reaches its lifetime and is
rolled back); a read session holds a snapshot on its own connection (see sessions.py).
Nothing waits past the request's deadline (deadline.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from dolite.errors import Conflict, CorruptChunk, DoliteError, LeaseHeld, StorageError
from dolite.names import validate_name
from dolite.ops import admin
from dolite.server.objects import deadline
from dolite.server.objects.actor import DatabaseObject, ObjectConfig
from dolite.server.objects.errors import RequestError
from dolite.server.objects.memory import TempQuota, give_back_freed_memory, limit_sqlite_heap
from dolite.server.objects.metrics import (
    LEASE_REFUSALS,
    OBJECTS_LOADED,
    SESSIONS_OPEN,
    STORE_TOTALS,
)
from dolite.server.objects.sessions import ReadSnapshot, Session, SessionLimits, not_found, too_many
from dolite.storage import Namespace, open_storage
from dolite.sql.vfs import vfs_for

log = logging.getLogger("dolite.server.objects")


@dataclass(frozen=True)
class HostConfig:
    """Tuning of the object host."""

    object: ObjectConfig = field(default_factory=ObjectConfig)
    idle_timeout: float = 10.0      # close an object idle this long (keep < lease_ttl)
    max_objects: int = 256          # loaded at once; least recently used evicted beyond
    sessions: SessionLimits = field(default_factory=SessionLimits)
    queue_timeout: float = 30.0     # give up waiting for a busy object (503)
    workers: int = 32
    sweep_every: float = 0.5
    temp_bytes: int = 256 << 20     # temporary files of all hosted connections together
    sqlite_heap_bytes: int | None = None  # process-wide SQLite heap limit (None: unlimited)


class ObjectHost:
    """Owns every loaded :class:`DatabaseObject` of one storage namespace."""

    def __init__(self, storage: str | Namespace, config: HostConfig | None = None):
        self.config = config or HostConfig()
        self.namespace = open_storage(storage)
        # Register the namespace's VFS now, with our options (the first registration wins).
        vfs_for(self.namespace, cache_bytes=self.config.object.cache_bytes, lease_ttl=self.config.object.lease_ttl)
        self.objects: dict[str, DatabaseObject] = {}
        self.sessions: dict[str, Session] = {}
        self.executor = ThreadPoolExecutor(self.config.workers, thread_name_prefix="dolite-object")
        self.temp_quota = TempQuota(self.config.temp_bytes)
        if self.config.sqlite_heap_bytes:
            limit_sqlite_heap(self.config.sqlite_heap_bytes)
        self._sweeper: asyncio.Task | None = None
        self._over_capacity = asyncio.Event()  # wakes the sweeper before its next round
        STORE_TOTALS.live = lambda: [o.store for o in list(self.objects.values()) if o.conn is not None]

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def close(self) -> None:
        """Roll back open sessions, evict every object (releasing leases)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for session in list(self.sessions.values()):
            await self._end_session(session, commit=False)
        for obj in list(self.objects.values()):
            async with obj.lock:
                await self._thread(obj.evict, "shutdown")
        self.executor.shutdown(wait=True)

    # -- running work on an object -------------------------------------------------------

    def _object(self, name: str) -> DatabaseObject:
        validate_name(name)
        obj = self.objects.get(name)
        if obj is None:
            obj = self.objects[name] = DatabaseObject(name, self.namespace, self.config.object, self.temp_quota)
            obj.lock = asyncio.Lock()
        return obj

    async def _thread(self, fn, *args):
        """Run ``fn`` on the pool, in a copy of our context (the request's deadline); if we
        are cancelled, wait for it anyway (the object must stay locked until its thread is
        done)."""
        run = contextvars.copy_context().run
        fut = asyncio.get_running_loop().run_in_executor(self.executor, run, fn, *args)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await fut
            raise

    async def _acquire(self, obj: DatabaseObject) -> None:
        obj.waiting += 1
        wait = max(0.0, min(self.config.queue_timeout, deadline.remaining()))
        try:
            await asyncio.wait_for(obj.lock.acquire(), wait)
        except TimeoutError:
            raise RequestError(503, "busy", f"database {obj.name!r} stayed busy for {wait:.3g}s "
                               "(an open write session or slow requests)", headers={"Retry-After": "1"}) from None
        finally:
            obj.waiting -= 1

    async def call(self, name: str, method: str, *args):
        """Run ``DatabaseObject.<method>(*args)`` for database ``name``, serialized."""
        return await self.exclusive(name, lambda obj: getattr(obj, method)(*args))

    async def exclusive(self, name: str, fn, *, evict: str | None = None):
        """Run ``fn(obj)`` on the pool for database ``name``'s object while holding its
        lock (after evicting the object, with reason ``evict``, if given): requests to
        one database run one at a time."""
        obj = self._object(name)
        await self._acquire(obj)
        try:
            if evict:
                await self._thread(obj.evict, evict)
            return await self._thread(fn, obj)
        except LeaseHeld:
            LEASE_REFUSALS.inc()
            raise
        finally:
            obj.last_used = time.monotonic()
            obj.lock.release()
            if self._count_loaded() > self.config.max_objects:
                self._over_capacity.set()

    def _count_loaded(self) -> int:
        loaded = sum(1 for o in self.objects.values() if o.conn is not None)
        OBJECTS_LOADED.set(loaded)
        return loaded

    async def list_databases(self) -> list[str]:
        """Names of the databases (objects with a head: not a cluster's map or decision
        records, nor a killed copy's leftovers)."""
        names = await self._thread(admin.list_databases, self.namespace)
        return [n for n in names if _valid(n)]

    # -- sessions ------------------------------------------------------------------------

    def _admit_session(self, owner: bytes) -> None:
        limits = self.config.sessions
        if len(self.sessions) >= limits.max_open:
            raise too_many("the server", limits.max_open)
        if sum(1 for s in self.sessions.values() if s.owner == owner) >= limits.max_per_token:
            raise too_many("this token", limits.max_per_token)

    async def open_session(self, name: str, read_only: bool, owner: bytes) -> dict:
        """Open a session for the token whose digest is ``owner`` (only it may use it)."""
        validate_name(name)
        self._admit_session(owner)
        limits, now = self.config.sessions, time.monotonic()
        session = Session(secrets.token_urlsafe(18), name, owner, now + limits.idle_timeout, now + limits.lifetime)
        if read_only:
            session.snapshot = await self._thread(ReadSnapshot, name, self.namespace, self.config.object,
                                                  self.temp_quota)
        else:
            obj = self._object(name)
            await self._acquire(obj)
            try:
                await self._thread(obj.begin_session)
            except BaseException:
                obj.lock.release()
                raise
            session.obj = obj
        self.sessions[session.id] = session
        SESSIONS_OPEN.set(len(self.sessions))
        return {"session": session.id, "read_only": read_only, "idle_timeout": limits.idle_timeout,
                "lifetime": limits.lifetime}

    def _held(self, name: str, sid: str, owner: bytes) -> Session:
        """The session, checked (see Session.check; the sweeper rolls back an expired one)."""
        session = self.sessions.get(sid)
        if session is None:
            raise not_found()
        session.check(name, owner)
        return session

    async def session_query(self, name: str, sid: str, owner: bytes, statements, batch: bool) -> list[dict]:
        session = self._held(name, sid, owner)
        async with session.lock:
            self._held(name, sid, owner)
            run = session.snapshot.query if session.read_only else session.obj.session_query
            try:
                return await self._thread(run, statements, batch)
            except Exception as exc:
                if _breaks_session(exc):
                    await self._end_session(session, commit=False)
                raise
            finally:
                session.touched(self.config.sessions.idle_timeout)

    async def end_session(self, name: str, sid: str, owner: bytes, commit: bool) -> None:
        session = self._held(name, sid, owner)
        async with session.lock:
            self._held(name, sid, owner)
            await self._end_session(session, commit)

    async def _end_session(self, session: Session, commit: bool) -> None:
        if session.closed:
            return
        session.closed = True
        self.sessions.pop(session.id, None)
        SESSIONS_OPEN.set(len(self.sessions))
        if session.read_only:
            await self._thread(session.snapshot.close)
            return
        obj = session.obj
        try:
            await self._thread(obj.end_session, commit)
        except BaseException:
            if commit:
                with contextlib.suppress(Exception):
                    await self._thread(obj.end_session, False)
            raise
        finally:
            obj.last_used = time.monotonic()
            obj.lock.release()

    # -- eviction --------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        """Sweep every ``sweep_every`` seconds, and at once when a request left more than
        ``max_objects`` loaded (so the bound holds between rounds too)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._over_capacity.wait(), self.config.sweep_every)
            self._over_capacity.clear()
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed")

    async def sweep(self) -> None:
        """Roll back idle sessions; close idle objects and the least recently used beyond
        ``max_objects``; forget closed objects nobody waits for; give the memory back."""
        now = time.monotonic()
        for session in list(self.sessions.values()):
            if min(session.expires, session.ends) < now and not session.lock.locked():
                log.info("session on %s idled out or expired: rolled back", session.name)
                await self._end_session(session, commit=False)
        idled = await self._close_idle(now)
        for name, obj in list(self.objects.items()):
            if obj.conn is None and not obj.lock.locked() and obj.waiting == 0:
                del self.objects[name]
        self._count_loaded()
        if idled:  # (memory of objects closed for capacity is reused by the ones loaded)
            await self._thread(give_back_freed_memory)

    async def _close_idle(self, now: float) -> int:
        """Close the connections of objects idle past ``idle_timeout``, and of the least
        recently used beyond ``max_objects``; returns how many were closed for being idle.
        Never one that is running or awaiting a request (its lock), holds a transaction (a
        write session holds the lock; checked again on the connection), or whose database
        has an open session (a read session's snapshot shares the object's page store)."""
        in_session = {session.name for session in self.sessions.values()}
        loaded = sorted((o for o in self.objects.values() if o.conn is not None), key=lambda o: o.last_used)
        excess = len(loaded) - self.config.max_objects
        idled = 0
        for obj in loaded:
            idle = now - obj.last_used > self.config.idle_timeout
            if not (idle or excess > 0) or obj.lock.locked() or obj.waiting or obj.name in in_session:
                continue
            async with obj.lock:  # free and nobody waiting: taken without yielding
                closed = await self._thread(obj.close_if_idle, "idle" if idle else "capacity")
            idled += closed and idle
            excess -= 1
        return idled


def _breaks_session(exc: Exception) -> bool:
    """Storage trouble, a lost transaction or a bug ends a session; a refused or failed
    statement does not (it was rolled back to its savepoint)."""
    if getattr(exc, "code", None) == "session_lost":
        return True
    return not isinstance(exc, DoliteError) or isinstance(exc, (Conflict, StorageError, CorruptChunk))


def _valid(name: str) -> bool:
    try:
        validate_name(name)
    except ValueError:
        return False
    return True
