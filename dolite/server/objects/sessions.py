"""Sessions: one transaction over several requests, bound to the token that opened it.

A *write* session holds its object (the actor's lock) from BEGIN to COMMIT/ROLLBACK, so
it gets a maximum lifetime besides its idle timeout. A *read* session holds nothing of
the object: it has its own connection with a read transaction open, which pins the
version it started at (readers never block the writer), so any number of readers can
keep a consistent view while writes go on.

A *paged query* (docs/SERVICE.md, "Large results") is a read session that holds one
open statement: :func:`paged_query` opens it with the first page, each ``continue`` reads
the next page on the same snapshot, and the session ends with the last page or any error
(or idles out like any session; it counts against the same per-token cap).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from dolite.remote.wire import Statement, WireError, parse_statement

SNAPSHOT_PAGE_CACHE = 2 << 20  # SQLite page cache of a read session's own connection
MAX_PAGE_ROWS = 100_000        # rows of one page at most (a page also stays within max_result_bytes)


@dataclass(frozen=True)
class SessionLimits:
    idle_timeout: float = 10.0   # rolled back after this long without a request
    lifetime: float = 60.0       # rolled back this long after it opened, whatever it does
    max_open: int = 64           # open at once in the process
    max_per_token: int = 8       # open at once per token


@dataclass(frozen=True)
class PageRequest:
    """Read a page on a read session: start ``statement``, or (None) go on with the open
    one; ``page_rows`` None keeps the page size the statement was started with."""

    statement: Statement | None
    page_rows: int | None


class ReadSnapshot:
    """A read-only transaction on a connection of its own (see the module docstring).
    Its methods run on a worker thread, one at a time (the session's lock)."""

    def __init__(self, name: str, namespace: Namespace, config: ObjectConfig, process_temp: TempQuota):
        self.conn = dbapi.connect(name, storage=namespace, create=False, isolation_level=None,
                                  page_cache_bytes=SNAPSHOT_PAGE_CACHE)
        self.paged = None  # the statement a paged query holds open (Runner.open_paged)
        self.page_rows = 0
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

    def query(self, statements: list[Statement] | PageRequest, batch: bool) -> list[dict]:
        with bounded(self.quota):
            if isinstance(statements, PageRequest):
                return [self._page(statements)]
            return self.runner.run(statements, read_only=True, batch=batch, in_session=True)[0]

    def _page(self, request: PageRequest) -> dict:
        """The next page of the open statement (started first if ``request`` has one), with
        ``more``: whether rows remain. The statement is closed after its last page or an error."""
        if request.statement is not None:
            self._close_paged()
            self.paged = self.runner.open_paged(request.statement)
        elif self.paged is None:
            raise RequestError(404, "session_not_found", "this session holds no paged result to continue")
        self.page_rows = request.page_rows or self.page_rows
        try:
            result, more = self.runner.page(self.paged, self.page_rows)
        except BaseException:
            self._close_paged()
            raise
        if not more:
            self._close_paged()
        return {**result, "more": more}

    def _close_paged(self) -> None:
        paged, self.paged = self.paged, None
        if paged is not None:
            paged.close()

    def close(self) -> None:
        """End the read transaction and close the connection."""
        try:
            self._close_paged()
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


def is_paged(body) -> bool:
    """Whether a query body asks for a paged result (see :func:`paged_query`)."""
    return isinstance(body, dict) and ("page_rows" in body or "continue" in body)


async def paged_query(host, name: str, owner: bytes, body: dict) -> dict:
    """Answer a paged query body on ``host`` (an ObjectHost) for the token ``owner``:
    ``{"sql", "params", "page_rows"}`` opens a read session holding the statement, and
    ``{"continue": NEXT[, "page_rows"]}`` reads on. The answer is a query result plus
    ``"next"`` while rows remain; the session ends with the last page or any error."""
    try:
        request, sid = _page_request(body)
    except WireError as exc:
        raise RequestError(400, "bad_request", str(exc)) from None
    if sid is None:
        sid = (await host.open_session(name, True, owner))["session"]
    elif not getattr(host.sessions.get(sid), "read_only", False):
        raise not_found()  # a write session never holds a paged result
    try:
        (result,) = await host.session_query(name, sid, owner, request, False)
    except BaseException:
        with contextlib.suppress(Exception):  # not ours (403) or gone already: left as it is
            await host.end_session(name, sid, owner, commit=False)
        raise
    if result.pop("more"):
        result["next"] = sid
    else:
        await host.end_session(name, sid, owner, commit=False)
    return result


def _page_request(body: dict) -> tuple[PageRequest, str | None]:
    """The page a body asks for and the session it continues (None: a new paged query)."""
    rows = body.get("page_rows")
    if rows is not None and (type(rows) is not int or not 1 <= rows <= MAX_PAGE_ROWS):
        raise WireError(f"page_rows must be an integer from 1 to {MAX_PAGE_ROWS}")
    if "continue" in body:
        if set(body) - {"continue", "page_rows"}:
            raise WireError('a continuation body has only "continue" and, optionally, "page_rows"')
        if not isinstance(body["continue"], str):
            raise WireError('"continue" must be the "next" string of the previous page')
        return PageRequest(None, rows), body["continue"]
    if rows is None:
        raise WireError("page_rows must be an integer")
    fields = {k: v for k, v in body.items() if k != "page_rows"}
    return PageRequest(parse_statement(fields), rows), None
