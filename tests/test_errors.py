"""One error tree: every error dolite raises is a ``dolite.Error`` (and the matching sqlite3
exception), locally and over HTTP, and one table maps classes to codes and statuses."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
import warnings
from pathlib import Path

import httpx
import pytest

import dolite
from dolite import errors
from dolite.errors import TABLE, Error, error_from_code
from dolite.pages.format import CHUNK_PREFIX, parse_chunk_key
from dolite.pages.lease import LeaseKeeper
from dolite.remote.api import Call, error_for
from dolite.remote.client import Client
from dolite.remote.httpdbapi import Connection
from dolite.remote.wire import encode_value
from dolite.server.app import create_app
from dolite.server.auth import Auth
from dolite.server.errors import from_exception
from dolite.storage import open_storage
from dolite.storage.durable_object import AuthError, DurableObjectNamespace
from tests.torture.faulty import FaultyNamespace

with warnings.catch_warnings():  # Starlette would rather its test client ran on "httpx2"
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PEP249 = [errors.Warning, errors.Error, errors.InterfaceError, errors.DatabaseError, errors.DataError,
          errors.OperationalError, errors.IntegrityError, errors.InternalError, errors.ProgrammingError,
          errors.NotSupportedError]


# -- the tree and the table -------------------------------------------------------------------


@pytest.mark.parametrize("cls", PEP249, ids=lambda c: c.__name__)
def test_each_pep249_class_is_also_the_sqlite3_one(cls):
    assert issubclass(cls, getattr(sqlite3, cls.__name__))
    assert getattr(dolite, cls.__name__) is cls
    assert getattr(dolite.sql.pep249, cls.__name__) is cls


def test_sqlite3_operational_error_catches_dolites():
    for cls in (errors.OperationalError, errors.Conflict, errors.LeaseHeld):
        with pytest.raises(sqlite3.OperationalError):
            raise cls("x")


@pytest.mark.parametrize(("cls", "parent"), [
    (errors.Conflict, errors.OperationalError), (errors.LeaseHeld, errors.Conflict),
    (errors.CorruptChunk, errors.DatabaseError), (errors.LimitExceeded, errors.DataError),
    (errors.LimitExceeded, ValueError), (errors.StorageError, errors.OperationalError),
    (errors.InvalidURL, errors.InterfaceError), (errors.InvalidURL, ValueError),
    (errors.InvalidName, errors.ProgrammingError), (errors.InvalidName, ValueError),
    (errors.DatabaseNotFound, errors.OperationalError), (errors.DatabaseNotFound, LookupError),
    (errors.SnapshotExpired, errors.OperationalError), (errors.WireError, errors.InterfaceError),
    (errors.WireError, ValueError), (errors.RequestError, errors.Error), (AuthError, errors.StorageError),
])
def test_dolites_classes_sit_under_the_pep249_class_that_says_what_to_do(cls, parent):
    assert issubclass(cls, parent)


def test_the_old_names_still_work():
    from dolite.remote.client import ConflictError, NotFoundError, ServiceError
    from dolite.remote.wire import WireError
    from dolite.server.objects.errors import RequestError

    assert errors.DoliteError is dolite.DoliteError is Error is ServiceError
    assert (NotFoundError, ConflictError, WireError) == (errors.DatabaseNotFound, errors.Conflict, errors.WireError)
    legacy = RequestError(503, "busy", "wait", headers={"Retry-After": "2"})
    assert type(legacy) is errors.Busy and str(legacy) == "wait" and legacy.headers == {"Retry-After": "2"}
    with pytest.raises(ValueError, match="status 400"):
        RequestError(400, "busy", "a status that is not the table's")
    with pytest.raises(ValueError, match="no_such_code"):
        RequestError(400, "no_such_code", "a code that is not in the table")


def test_one_code_per_class_and_every_class_has_code_and_status():
    classes = [c for c in [errors.Warning, *errors._classes(Error)] if c.__module__ == "dolite.errors"]
    assert sorted(TABLE.values(), key=id) == sorted(classes, key=id)  # no code claimed twice
    for code, cls in TABLE.items():
        assert "code" in vars(cls), f"{cls.__name__} inherits its code"
        assert code.isidentifier() and code == code.lower()
        assert 400 <= cls.http_status <= 599


def test_classes_elsewhere_only_use_codes_of_the_table():
    """A class outside dolite.errors that declares a code declares one the table has, with
    the same status (so the HTTP client and driver rebuild it)."""
    import dolite.server.app  # noqa: F401 - load every error class the service defines
    import dolite.storage.durable_object  # noqa: F401

    foreign = [c for c in errors._classes(Error) if c.__module__ != "dolite.errors" and "code" in vars(c)]
    for cls in foreign:
        assert cls.code in TABLE, f"{cls.__module__}.{cls.__name__}: code {cls.code!r} is not in dolite.errors"
        assert cls.http_status == TABLE[cls.code].http_status, cls


NOT_SENT_BY_THE_SERVICE = {"warning", "error", "interface_error", "request_error", "invalid_url",
                           "payload_too_large", "network_error"}


def test_docs_service_lists_every_code_with_its_status():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "SERVICE.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| 4") or line.startswith("| 5")]
    for code, cls in TABLE.items():
        listed = [row for row in rows if f"`{code}`" in row.split("|")[2]]
        if code in NOT_SENT_BY_THE_SERVICE:
            assert not listed, code
            continue
        assert listed, f"{code} is missing from docs/SERVICE.md"
        assert str(cls.http_status) in listed[0].split("|")[1], f"{code}: {listed[0]}"
        assert f"`{cls.__name__}`" in listed[0].split("|")[3], f"{code}: {listed[0]}"


def test_a_code_this_version_does_not_know_keeps_code_and_status():
    error = error_from_code("from_the_future", "new kind of refusal", 422)
    assert type(error) is errors.OperationalError
    assert (error.code, error.http_status, str(error)) == ("from_the_future", 422, "new kind of refusal")


@pytest.mark.parametrize("code", sorted(c for c, cls in TABLE.items() if issubclass(cls, Error)))
def test_every_class_round_trips_through_the_service_and_the_client(code):
    """The service's answer for an error of each class, read by the client, is that class."""
    cls = TABLE[code]
    answer = from_exception(cls("what went wrong"))
    assert answer.status_code == cls.http_status
    rebuilt = error_for(httpx.Response(answer.status_code, content=answer.body))
    assert type(rebuilt) is cls and rebuilt.code == code and str(rebuilt).startswith("what went wrong")


def test_a_bug_is_internal_without_details():
    answer = from_exception(KeyError("secret detail"))
    assert answer.status_code == 500 and b"secret detail" not in answer.body
    assert type(error_for(httpx.Response(500, content=answer.body))) is errors.InternalError


# -- locally: each raised through a real operation ----------------------------------------------


def _caught(operation) -> Error:
    try:
        operation()
    except dolite.Error as exc:
        return exc
    raise AssertionError("nothing was raised")


@pytest.fixture
def url():
    return f"memory:{uuid.uuid4().hex}"


def _leased_by_another_writer(url: str, name: str = "db") -> LeaseKeeper:
    """Database ``name`` with a table ``t``, its write lease held by another writer (a
    lease keeper of its own, as another process has)."""
    conn = dolite.connect(name, storage=FaultyNamespace(open_storage(url)), isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    conn.close()  # releases its lease
    keeper = LeaseKeeper(open_storage(url).object(name), name, ttl=30)
    keeper.acquire()
    return keeper


def test_conflict_from_a_stale_commit(url):
    obj = open_storage(url).object("x")
    obj.commit({"k": b"1"}, expect={"k": None})
    assert type(_caught(lambda: obj.commit({"k": b"2"}, expect={"k": None}))) is errors.Conflict


def test_lease_held_from_a_second_writer(url):
    _leased_by_another_writer(url)
    second = LeaseKeeper(open_storage(url).object("db"), "db", ttl=30)
    assert type(_caught(second.acquire)) is errors.LeaseHeld


def test_corrupt_chunk_from_a_flipped_byte(url):
    ns = open_storage(url)
    conn = dolite.connect("db", storage=ns)
    conn.execute("CREATE TABLE t(v)")
    conn.executemany("INSERT INTO t VALUES (?)", [[b"x" * 500] for _ in range(50)])
    conn.commit()
    conn.close()
    obj = ns.object("db")
    victim = max(obj.list(prefix=CHUNK_PREFIX), key=lambda k: parse_chunk_key(k)[0])  # a table page
    raw = bytearray(obj.get([victim])[victim])
    raw[-10] ^= 0xFF
    obj.put({victim: bytes(raw)})
    conn = dolite.connect("db", storage=ns)
    conn.database.store.cache.clear()
    assert type(_caught(lambda: conn.execute("SELECT sum(length(v)) FROM t").fetchall())) is errors.CorruptChunk
    conn.close()


def test_limit_exceeded_from_an_oversize_put(url):
    obj = open_storage(url).object("x")
    too_big = b"x" * (obj.limits.max_value_bytes + 1)
    assert type(_caught(lambda: obj.put({"k": too_big}))) is errors.LimitExceeded


def test_invalid_name_invalid_url_and_database_not_found(url):
    assert type(_caught(lambda: dolite.connect("no/slashes", storage=url))) is errors.InvalidName
    assert type(_caught(lambda: open_storage("nosuchbackend:x"))) is errors.InvalidURL
    assert type(_caught(lambda: dolite.connect("missing", storage=url, create=False))) is errors.DatabaseNotFound


def test_snapshot_expired(url):
    from dolite.ops import restore

    ns = open_storage(url)
    conn = dolite.connect("short", storage=ns, retention=0)
    conn.execute("CREATE TABLE t(v)")
    for i in range(3):
        conn.execute("INSERT INTO t VALUES (?)", [i])
        conn.commit()
    conn.database.store.collect_garbage()
    conn.close()
    assert type(_caught(lambda: restore.restore(ns, "short", version=1))) is errors.SnapshotExpired


def test_sql_errors(url):
    conn = dolite.connect("db", storage=url)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert type(_caught(lambda: conn.execute("SELECT * FROM nowhere"))) is errors.OperationalError
    assert type(_caught(lambda: conn.execute("INSERT INTO t VALUES (1)"))) is errors.IntegrityError
    assert type(_caught(lambda: conn.execute("SELECT ?", [1, 2]))) is errors.ProgrammingError
    conn.close()


def test_storage_wire_and_network_errors():
    down = DurableObjectNamespace("http://worker.test", "s", transport=httpx.MockTransport(
        lambda request: httpx.Response(500, json={"error": {"code": "internal", "message": "boom"}})))
    assert type(_caught(lambda: down.object("x").get(["k"]))) is errors.StorageError
    assert type(_caught(lambda: encode_value(object()))) is errors.WireError
    with Client("http://127.0.0.1:9", timeout=5) as nobody:
        assert type(_caught(nobody.health)) is errors.NetworkError


# -- over HTTP: the real service in-process, the HTTP client and driver -------------------------


@contextlib.contextmanager
def service(url: str, token: str | None = None):
    """The service on ``url``, and a :class:`Client` that reaches it in-process."""
    auth = Auth.from_options(token=token) if token else None
    with TestClient(create_app(storage=url, auth=auth), base_url="http://dolite.test") as http:
        client = Client("http://dolite.test", token=token)
        client.http.close()
        http.headers.update(client.http.headers)
        client.http = http
        yield client


@pytest.fixture
def remote(url):
    with service(url) as client:
        client.create("db")
        client.query("db", "CREATE TABLE t(id INTEGER PRIMARY KEY)")
        client.query("db", "INSERT INTO t VALUES (1)")
        yield client


@pytest.mark.parametrize(("sql", "cls"), [
    ("SELECT * FROM nowhere", errors.OperationalError),
    ("INSERT INTO t VALUES (1)", errors.IntegrityError),
    ("SELECT 1; SELECT 2", errors.MultipleStatements),
    ("-- nothing", errors.EmptyStatement),
    ("ATTACH 'x' AS x", errors.SQLNotAllowed),
])
def test_the_http_driver_raises_the_local_class(remote, url, sql, cls):
    conn = Connection(remote, "db", isolation_level=None)
    error = _caught(lambda: conn.execute(sql))
    assert type(error) is cls and error.code == cls.code
    if cls in (errors.OperationalError, errors.IntegrityError):  # the local driver agrees
        local = dolite.connect("local", storage=url, isolation_level=None)
        local.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)")
        local.execute("INSERT INTO t VALUES (1)")
        assert type(_caught(lambda: local.execute(sql))) is cls
        local.close()


def test_the_raw_api_refuses_transaction_control(remote):
    """The service's query API refuses BEGIN (a batch or a session is the transaction);
    the HTTP driver turns BEGIN into a session instead (tests/remote)."""
    assert type(_caught(lambda: remote.query("db", "BEGIN"))) is errors.TransactionControl


def test_http_database_and_name_errors(remote):
    assert type(_caught(lambda: remote.query("missing", "SELECT 1"))) is errors.DatabaseNotFound
    assert type(_caught(lambda: remote.create("no spaces allowed!"))) is errors.InvalidName
    assert type(_caught(lambda: remote.create("db"))) is errors.AlreadyExists
    assert type(_caught(lambda: remote.send(Call("GET", "/nowhere")))) is errors.NotFound
    assert type(_caught(lambda: remote.send(Call("PUT", "/healthz")))) is errors.MethodNotAllowed
    bad_json = Call("POST", "/v1/databases/db/query", {"content": b"{"})
    assert type(_caught(lambda: remote.send(bad_json))) is errors.BadJSON
    no_session = Call("POST", "/v1/databases/db/sessions/nope/commit")
    assert type(_caught(lambda: remote.send(no_session))) is errors.SessionNotFound


def test_http_lease_held(url):
    _leased_by_another_writer(url)
    with service(url) as client:
        error = _caught(lambda: client.query("db", "INSERT INTO t VALUES (1)"))
    assert type(error) is errors.LeaseHeld and error.http_status == 503


def test_http_unauthorized(url):
    with service(url, token="right") as client:
        client.http.headers["Authorization"] = "Bearer wrong"
        assert type(_caught(client.databases)) is errors.Unauthorized


def test_the_shell_reports_errors_of_either_driver(remote, url):
    import io

    from dolite.cli.shell import Shell

    err = io.StringIO()
    assert not Shell(Connection(remote, "db", isolation_level=None), io.StringIO(), err).sql(
        "SELECT * FROM nowhere;")
    assert not Shell(dolite.connect("db", storage=url), io.StringIO(), err).sql("INSERT INTO t VALUES (1);")
    assert err.getvalue().count("Error:") == 2