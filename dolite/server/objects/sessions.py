"""Sessions: one transaction over several requests, bound to the token that opened it.

A *write* session holds its object (the actor's lock) from BEGIN to COMMIT/ROLLBACK, so
it gets a maximum lifetime besides its idle timeout. A *read* session holds nothing of
the object: it has its own connection with a read transaction open, which pins the
version it started at (readers never block the writer), so any number of readers can
keep a consistent view while writes go on.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field

from dolite.server.objects.actor import DatabaseObject, ObjectConfig
from dolite.server.objects.authorizer import Authorizer
from dolite.server.objects.errors import RequestError
from dolite.server.objects.memory import TempQuota, bounded
from dolite.server.objects.runner import Runner
from dolite.sql import dbapi
from dolite.storage import Namespace
from dolite.remote.wire import Statement

SNAPSHOT_PAGE_CACHE = 2 << 20  # SQLite page cache of a read session's own connection


@dataclass(frozen=True)
class SessionLimits:
    idle_timeout: float = 10.0   # rolled back after this long without a request
    lifetime: float = 60.0       # rolled back this long after it opened, whatever it does
    max_open: int = 64           # open at once in the process
    max_per_token: int = 8       # open at once per token


class ReadSnapshot:
    """A read-only transaction on a connection of its own (see the module docstring).
    Its methods run on a worker thread, one at a time (the session's lock)."""

    def __init__(self, name: str, namespace: Namespace, config: ObjectConfig, process_temp: TempQuota):
        self.conn = dbapi.connect(name, storage=namespace, create=False, isolation_level=None,
                                  page_cache_bytes=SNAPSHOT_PAGE_CACHE)
        try:
            auth = Authorizer()
            auth.install(self.conn.raw)
            self.runner = Runner(self.conn.raw, auth, config.bounds)
            self.quota = TempQuota(config.bounds.max_temp_bytes, process_temp)
            self.runner.control("BEGIN")
            with dbapi.translate_errors():  # the first read pins the version
                self.conn.raw.execute("SELECT count(*) FROM sqlite_schema").fetchall()
        except BaseException:
            self.conn.close()
            raise

    def query(self, statements: list[Statement], batch: bool) -> list[dict]:
        with bounded(self.quota):
            return self.runner.run(statements, read_only=True, batch=batch, in_session=True)[0]

    def close(self) -> None:
        """End the read transaction and close the connection."""
        try:
            if self.conn.raw.in_transaction:
                self.runner.control("ROLLBACK")
        finally:
            self.conn.close()


@dataclass
class Session:
    """An open session. Exactly one of ``obj`` (write) and ``snapshot`` (read) is set."""

    id: str
    name: str
    owner: bytes                 # digest of the token that opened it
    expires: float               # idle deadline (monotonic)
    ends: float                  # lifetime deadline (monotonic)
    obj: DatabaseObject | None = None
    snapshot: ReadSnapshot | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False

    @property
    def read_only(self) -> bool:
        return self.snapshot is not None

    def check(self, name: str, owner: bytes) -> None:
        """404 unless this is a live session of ``name``; 403 unless ``owner`` opened it;
        409 ``session_expired`` past its lifetime."""
        if self.closed or self.name != name:
            raise not_found()
        if not hmac.compare_digest(self.owner, owner):
            raise RequestError(403, "forbidden", "this session was opened by another token")
        if time.monotonic() > self.ends:
            raise RequestError(409, "session_expired", "the session reached its maximum lifetime "
                               "(--session-lifetime) and was rolled back; start again")

    def touched(self, idle_timeout: float) -> None:
        self.expires = min(time.monotonic() + idle_timeout, self.ends)


def not_found() -> RequestError:
    return RequestError(404, "session_not_found",
                        "no such session (it may have idled out or expired and been rolled back)")


def too_many(what: str, limit: int) -> RequestError:
    return RequestError(429, "too_many_sessions", f"{what} already has {limit} open sessions: "
                        "commit or roll one back first", headers={"Retry-After": "1"})
