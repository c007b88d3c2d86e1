"""SQLAlchemy dialects for dolite: SQLAlchemy's SQLite dialect on dolite's DB-API drivers.

    create_engine("sqlite+dolite:///shop?storage=lmdb:./data")       # local, in this process
    create_engine("sqlite+dolite://127.0.0.1:8787/shop?token=T")      # through `dolite serve`
    create_engine("sqlite+dolite+http://127.0.0.1:8787/shop")         # same (see below)

Both are registered as entry points (``sqlalchemy.dialects``: ``sqlite.dolite``,
``sqlite.dolite.http``, ``sqlite.dolite.https``). SQLAlchemy's built-in loader splits a driver
name on "." into exactly two parts before it reads entry points, so the three-part
``sqlite+dolite+http://`` form needs this module imported first (importing it registers
the names); ``sqlite+dolite://HOST:PORT/NAME`` works without that.

Local URL options (query string): ``storage`` and the keyword arguments of
:func:`dolite.connect` (``timeout``, ``isolation_level``, ``detect_types``,
``check_same_thread``, ``cached_statements``, ``exclusive``, ``create``, ``chunk_size``,
``retention``, ``cache_bytes``, ``page_cache_bytes``). HTTP options: ``token`` (or the URL's
password), ``timeout``, ``create``, ``isolation_level``. An unknown option is refused.
"""

from __future__ import annotations

import sqlite3
import types

from sqlalchemy import exc, pool, util
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

_LOCAL_OPTIONS = [
    ("storage", str), ("timeout", float), ("isolation_level", str), ("detect_types", int),
    ("check_same_thread", bool), ("cached_statements", int), ("exclusive", bool), ("create", bool),
    ("chunk_size", int), ("retention", float), ("cache_bytes", int), ("page_cache_bytes", int),
]
_HTTP_OPTIONS = [("token", str), ("timeout", float), ("create", bool), ("isolation_level", str)]


def _options(url, allowed: list[tuple[str, type]]) -> dict:
    """The URL's query options coerced to their types; an unknown one is an ArgumentError."""
    query = dict(url.query)
    unknown = sorted(set(query) - {name for name, _ in allowed})
    if unknown:
        raise exc.ArgumentError(f"{url.drivername}: unknown URL option(s) {', '.join(unknown)}; "
                                f"allowed: {', '.join(name for name, _ in allowed)}")
    out: dict = {}
    for name, type_ in allowed:
        if name in query:
            value = query[name]
            if isinstance(value, tuple):
                raise exc.ArgumentError(f"{url.drivername}: URL option {name} given more than once")
            out[name] = util.asbool(value) if type_ is bool else type_(value)
    return out


class DoliteDialect(SQLiteDialect_pysqlite):
    """``sqlite+dolite:///NAME?storage=URL``: SQLite's dialect on :func:`dolite.connect`.
    With a host (``sqlite+dolite://HOST:PORT/NAME``) it connects through the service."""

    driver = "dolite"
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls):
        import dolite

        return dolite  # connect, the exceptions, sqlite_version_info, Binary, PARSE_*, ...

    @classmethod
    def get_pool_class(cls, url):
        return pool.QueuePool  # every named database is shared by the connections that open it

    def create_connect_args(self, url):
        if url.host:
            return DoliteHTTPDialect.http_connect_args(url, "http")
        if not url.database:
            raise exc.ArgumentError("sqlite+dolite:///NAME?storage=URL: the database NAME is missing")
        kwargs = _options(url, _LOCAL_OPTIONS)
        kwargs.setdefault("check_same_thread", False)  # the pool hands connections between threads
        return [url.database], kwargs

    def on_connect_url(self, url):
        """The REGEXP function SQLite's dialect installs on each new connection; none on a
        connection through the service (``url.host`` set), which has no user functions."""
        if self.dbapi is None or url.host:
            return None
        return super().on_connect()

    def _get_server_version_info(self, connection):
        """The version of the SQLite that runs the SQL: the server's over HTTP (asked once
        connected; the local one before)."""
        if connection is None:
            return self.dbapi.sqlite_version_info
        version = connection.exec_driver_sql("SELECT sqlite_version()").scalar()
        return tuple(int(part) for part in version.split("."))

    def is_disconnect(self, e, connection, cursor) -> bool:
        closed = ("Cannot operate on a closed database.", "the connection is closed")  # local, HTTP
        return isinstance(e, self.dbapi.ProgrammingError) and any(text in str(e) for text in closed)


def _http_dbapi() -> types.SimpleNamespace:
    """dolite's HTTP DB-API as a module SQLAlchemy can use: the driver's names plus the
    sqlite3 module attributes SQLite's dialect reads (the SQLite version, Binary, PARSE_*)."""
    from dolite.remote import httpdbapi

    try:
        from dolite.sql.compat import sqlite_version, sqlite_version_info
    except ImportError:  # no APSW here: the server's SQLite is asked for on first connect
        sqlite_version, sqlite_version_info = sqlite3.sqlite_version, sqlite3.sqlite_version_info
    names = {name: getattr(httpdbapi, name) for name in httpdbapi.__all__}
    return types.SimpleNamespace(**names, sqlite_version=sqlite_version, sqlite_version_info=sqlite_version_info,
                                 Binary=memoryview, PARSE_DECLTYPES=sqlite3.PARSE_DECLTYPES,
                                 PARSE_COLNAMES=sqlite3.PARSE_COLNAMES)


class DoliteHTTPDialect(DoliteDialect):
    """``sqlite+dolite+http://HOST:PORT/NAME``: SQLite's dialect on dolite's HTTP driver.
    User functions (SQLAlchemy's REGEXP and floor()) are not available over HTTP."""

    driver = "dolite+http"
    scheme = "http"
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls):
        return _http_dbapi()

    def create_connect_args(self, url):
        return self.http_connect_args(url, self.scheme)

    @staticmethod
    def http_connect_args(url, scheme: str):
        if not (url.host and url.database):
            raise exc.ArgumentError(f"{url.drivername}://HOST:PORT/NAME: the host or database NAME is missing")
        kwargs = _options(url, _HTTP_OPTIONS)
        if url.password and "token" not in kwargs:
            kwargs["token"] = url.password
        port = f":{url.port}" if url.port else ""
        return [f"{scheme}://{url.host}{port}/{url.database}"], kwargs



class DoliteHTTPSDialect(DoliteHTTPDialect):
    """``sqlite+dolite+https://HOST:PORT/NAME``."""

    driver = "dolite+https"
    scheme = "https"
    supports_statement_cache = True


dialect = DoliteDialect

registry.register("sqlite.dolite", "dolite.sqlalchemy", "DoliteDialect")
registry.register("sqlite.dolite.http", "dolite.sqlalchemy", "DoliteHTTPDialect")
registry.register("sqlite.dolite.https", "dolite.sqlalchemy", "DoliteHTTPSDialect")

__all__ = ["DoliteDialect", "DoliteHTTPDialect", "DoliteHTTPSDialect", "dialect"]
