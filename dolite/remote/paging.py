"""Large results of the HTTP DB-API driver (:mod:`dolite.remote.httpdbapi`), read a page at
a time on one snapshot.

Outside a transaction, a server that offers it (``max_page_rows`` in its ``limits``) runs
the statement once more and holds it open on a read session of its own, answering page
after page (``page_rows`` / ``continue``, docs/SERVICE.md). Inside a transaction (its rows
must include the session's own writes), or with an older server, a single SELECT is run
again as ``SELECT * FROM (...) LIMIT ? OFFSET ?`` on one snapshot (the transaction's
session, or a read session); columns with duplicate names then come back renamed by
SQLite (``a``, ``a:1``). Anything else over the limit is the server's ``ResultTooLarge``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dolite.errors import ResultTooLarge
from dolite.remote.api import Call, Result, db_path, endpoints, statement
from dolite.sql.pep249 import Error, OperationalError, ProgrammingError, is_dml, split_statements

PAGE_ROWS = 1000  # rows per LIMIT/OFFSET page, halved while a page is still too large
Send = Callable[[Call], Any]


def paged(send: Send, name: str, session: str | None, max_page_rows: int, sql: str, params: Iterable | dict,
          too_large: ResultTooLarge) -> tuple[Result, Iterator[tuple]]:
    """The first page of a too-large single SELECT on database ``name`` and an iterator over
    all its rows; ``too_large`` again if it cannot be paged. ``session``: the path of the
    open transaction's session (None in autocommit); ``send`` sends a call."""
    statements = split_statements(sql)
    if len(statements) != 1 or is_dml(sql):
        raise too_large
    if session is None and max_page_rows:
        pages = _continued(send, name, statements[0], params, max_page_rows)
    else:
        own = session is None
        if own:
            session = f"{db_path(name)}/sessions/{send(endpoints.session(name, 'read'))}"
        pages = _pages(send, session, own, statements[0].rstrip(";"), params)
    try:
        first = next(pages)
    except (ProgrammingError, OperationalError) as exc:  # not a SELECT after all
        raise too_large from exc
    return first, _rows_of(first, pages)


def _continued(send: Send, name: str, sql: str, params: Iterable | dict, max_page_rows: int) -> Iterator[Result]:
    """The pages of a result the server holds open on one snapshot; a result dropped
    before its last page ends the server's read session (its id is the token)."""
    page, token = send(_page_call(name, {**statement((sql, params)), "page_rows": max_page_rows}))
    try:
        yield page
        while token is not None:
            page, token = send(_page_call(name, {"continue": token}))
            yield page
    finally:
        if token is not None:
            _end_quietly(send, f"{db_path(name)}/sessions/{token}")


def _pages(send: Send, session: str, own: bool, body: str, params: Iterable | dict) -> Iterator[Result]:
    named = isinstance(params, dict)
    sql = (f"SELECT * FROM (\n{body}\n) LIMIT {':dolite_limit' if named else '?'} "
           f"OFFSET {':dolite_offset' if named else '?'}")
    offset, size = 0, PAGE_ROWS
    try:
        while True:
            bound = {**params, "dolite_limit": size, "dolite_offset": offset} if named else [*params, size, offset]
            try:
                page = send(endpoints.query(session, sql, bound))
            except ResultTooLarge:
                if size == 1:
                    raise
                size //= 2
                continue
            yield page
            if len(page.rows) < size:
                return
            offset += len(page.rows)
    finally:
        if own:
            _end_quietly(send, session)


def _end_quietly(send: Send, session: str) -> None:
    try:
        send(endpoints.rollback(session))
    except Error:
        pass  # the connection is closed, or the server ended the idle read session itself


def _page_call(name: str, body: dict) -> Call:
    """A paged query request (``page_rows``) or its continuation; answers (page, next)."""
    def read(response) -> tuple[Result, str | None]:
        doc = response.json()
        return Result.decode(doc), doc.get("next")

    return Call("POST", db_path(name) + "/query", {"json": body}, read=read)


def _rows_of(first: Result, pages: Iterator[Result]) -> Iterator[tuple]:
    try:
        yield from first.rows
        for page in pages:
            yield from page.rows
    finally:
        pages.close()
