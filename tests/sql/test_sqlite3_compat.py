"""dolite.connect as a drop-in for sqlite3: every test runs the same checks against stdlib
sqlite3 (``sqlite3.connect(":memory:")``) and a dolite connection. The behaviours are the
ones CPython's Lib/test/test_sqlite3 pins down (dbapi, factory, hooks, userfunctions,
types, transactions, dump, backup). Differences that remain are in docs/COMPATIBILITY.md."""

from __future__ import annotations

import datetime
import itertools
import sqlite3
import threading

import pytest

import dolite

_names = itertools.count()


@pytest.fixture(params=["sqlite3", "dolite"])
def kind(request):
    return request.param


@pytest.fixture
def mod(kind):
    """The module a sqlite3 program would use: sqlite3 itself, or dolite in its place."""
    return sqlite3 if kind == "sqlite3" else dolite


@pytest.fixture
def connect(kind):
    opened = []

    def open_(**kwargs):
        if kind == "sqlite3":
            conn = sqlite3.connect(":memory:", **kwargs)
        else:
            n = next(_names)
            conn = dolite.connect(f"compat{n}", storage=f"memory:compat{n}", **kwargs)
        opened.append(conn)
        return conn

    yield open_
    for conn in opened:
        try:
            conn.close()
        except sqlite3.ProgrammingError:
            pass


@pytest.fixture
def conn(connect):
    return connect()


def raises(exc_type, match=None):
    return pytest.raises(exc_type, match=match)


# -- statements and parameters (dbapi) -------------------------------------------------------


def test_one_statement_per_execute(conn):
    with raises(sqlite3.ProgrammingError, "one statement at a time"):
        conn.execute("SELECT 1; SELECT 2")
    with raises(sqlite3.ProgrammingError, "one statement at a time"):
        conn.execute("SELECT 1;;")
    assert conn.execute("SELECT 1; -- trailing comment").fetchall() == [(1,)]
    assert conn.execute("SELECT 1; /* c */ ").fetchall() == [(1,)]
    assert conn.execute("SELECT ';'").fetchall() == [(";",)]
    assert conn.execute("  ").fetchall() == []


def test_a_statement_run_again_is_checked_and_counted_again(conn):
    # The driver remembers what it found out about a statement's text (accepted, DML or
    # not): a refused text stays refused, a DML text keeps its implicit BEGIN and rowcount.
    for _ in range(3):
        with raises(sqlite3.ProgrammingError, "one statement at a time"):
            conn.execute("SELECT 1; SELECT 2")
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (1), (2)")
    conn.commit()
    for n in (1, 2):
        cur = conn.execute("UPDATE t SET v = v + 1")
        assert cur.rowcount == 2 and conn.in_transaction
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM t").fetchall() == [(2,)] and not conn.in_transaction


def test_lastrowid_and_rowcount(conn):
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    cur = conn.cursor()
    assert (cur.lastrowid, cur.rowcount) == (None, -1)
    cur.execute("INSERT INTO t(v) VALUES (1)")
    assert (cur.lastrowid, cur.rowcount) == (1, 1)
    cur.executemany("INSERT INTO t(v) VALUES (?)", [(2,), (3,)])
    assert (cur.lastrowid, cur.rowcount) == (1, 2)  # executemany leaves lastrowid alone
    cur.execute("SELECT * FROM t")
    assert (cur.lastrowid, cur.rowcount) == (3, -1)
    cur.execute("UPDATE t SET v = 0")
    assert cur.rowcount == 3
    assert cur.description is None
    cur.execute("SELECT id AS x, v FROM t WHERE 0")
    assert cur.description == (("x", None, None, None, None, None, None), ("v", None, None, None, None, None, None))


def test_bad_parameters(conn):
    with raises(sqlite3.ProgrammingError, "Error binding parameter 1: type 'object' is not supported"):
        conn.execute("SELECT ?", (object(),))
    for params in ({1, 2}, 5):
        with raises(sqlite3.ProgrammingError, "parameters are of unsupported type"):
            conn.execute("SELECT ?", params)
    with raises(sqlite3.ProgrammingError, "Incorrect number of bindings"):
        conn.execute("SELECT ?", "ab")
    with raises(sqlite3.ProgrammingError, "You did not supply a value for binding parameter :x"):
        conn.execute("SELECT :x", {"y": 1})
    assert conn.execute("SELECT :x", {"x": 1}).fetchone() == (1,)
    assert conn.execute("SELECT ?", "a").fetchone() == ("a",)  # a str is a sequence
    assert conn.execute("SELECT ?, ?, ?", (True, bytearray(b"b"), memoryview(b"m"))).fetchone() == (1, b"b", b"m")
    with raises(TypeError):
        conn.execute(42)


def test_executemany(conn):
    conn.execute("CREATE TABLE t(v)")
    conn.executemany("INSERT INTO t VALUES (?)", ((i,) for i in range(3)))
    assert conn.execute("SELECT sum(v) FROM t").fetchone() == (3,)
    with raises(sqlite3.ProgrammingError, "executemany\\(\\) can only execute DML statements"):
        conn.executemany("SELECT ?", [(1,)])


def test_closed_connection_and_cursor(connect):
    conn = connect()
    cur = conn.cursor()
    cur.close()
    with raises(sqlite3.ProgrammingError, "closed cursor"):
        cur.execute("SELECT 1")
    conn.close()
    conn.close()  # twice is fine
    for use in (lambda: conn.execute("SELECT 1"), conn.cursor, conn.commit, lambda: conn.total_changes):
        with raises(sqlite3.ProgrammingError, "closed database"):
            use()


def test_check_same_thread(connect):
    conn = connect(check_same_thread=True)  # dolite's default is False (docs/COMPATIBILITY.md)
    errors = []

    def other():
        try:
            conn.execute("SELECT 1")
        except sqlite3.ProgrammingError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "same thread" in str(errors[0])
    free = connect(check_same_thread=False)
    thread = threading.Thread(target=lambda: free.execute("SELECT 1").fetchall())
    thread.start()
    thread.join()


def test_errors_carry_sqlite_codes(conn):
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    with raises(sqlite3.IntegrityError) as info:
        conn.execute("INSERT INTO t VALUES (1)")
    assert (info.value.sqlite_errorcode, info.value.sqlite_errorname) == (1555, "SQLITE_CONSTRAINT_PRIMARYKEY")
    with raises(sqlite3.OperationalError) as info:
        conn.execute("SELEC 1")
    assert (info.value.sqlite_errorcode, info.value.sqlite_errorname) == (1, "SQLITE_ERROR")


def test_module_surface(mod):
    assert mod.PARSE_DECLTYPES == 1 and mod.PARSE_COLNAMES == 2
    assert mod.Binary(b"x") == memoryview(b"x")
    assert mod.complete_statement("SELECT 1;") and not mod.complete_statement("SELECT 1")
    assert isinstance(mod.sqlite_version, str) and mod.sqlite_version_info >= (3, 0, 0)
    assert mod.SQLITE_DENY == 1 and mod.SQLITE_LIMIT_LENGTH == 0
    assert mod.threadsafety in (1, 3) and mod.paramstyle == "qmark"


def test_dolite_reports_its_own_sqlite():
    import apsw

    assert dolite.sqlite_version == apsw.sqlite_lib_version()
    assert dolite.sqlite_version_info >= (3, 54)


# -- transactions ------------------------------------------------------------------------------


def test_implicit_transactions_and_isolation_level(conn):
    conn.execute("CREATE TABLE t(v)")
    assert not conn.in_transaction
    conn.execute("INSERT INTO t VALUES (1)")
    assert conn.in_transaction
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    with conn:
        conn.execute("INSERT INTO t VALUES (1)")
    assert not conn.in_transaction
    conn.execute("INSERT INTO t VALUES (2)")
    conn.isolation_level = None  # autocommit: commits what is pending
    assert not conn.in_transaction
    conn.execute("INSERT INTO t VALUES (3)")
    assert not conn.in_transaction
    with raises(ValueError):
        conn.isolation_level = "SOMETIMES"
    conn.isolation_level = "IMMEDIATE"
    conn.execute("INSERT INTO t VALUES (4)")
    assert conn.in_transaction
    conn.commit()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (4,)


def test_executescript_commits_first(conn):
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.executescript("INSERT INTO t VALUES (2); INSERT INTO t VALUES (3);")
    assert not conn.in_transaction
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)


# -- rows: factories, text_factory, adapters and converters (factory, types) -----------------


def test_row_factory_row(conn, mod):
    conn.row_factory = mod.Row
    row = conn.execute("SELECT 1 AS a, 'x' AS B").fetchone()
    assert (row[0], row["a"], row["b"], row["B"], row[-1], row[0:1]) == (1, 1, "x", "x", "x", (1,))
    assert row.keys() == ["a", "B"] and len(row) == 2 and tuple(row) == (1, "x")
    assert row == conn.execute("SELECT 1 AS a, 'x' AS B").fetchone()
    assert hash(row) == hash(conn.execute("SELECT 1 AS a, 'x' AS B").fetchone())
    with raises(IndexError):
        row["nope"]
    conn.row_factory = sqlite3.Row  # what code written for sqlite3 says
    assert conn.execute("SELECT 2 AS a").fetchone()["a"] == 2


def test_cursor_and_dict_row_factories(conn):
    def as_dict(cursor, row):
        return {d[0]: v for d, v in zip(cursor.description, row)}

    conn.row_factory = as_dict
    cur = conn.cursor()
    assert cur.execute("SELECT 1 AS a").fetchall() == [{"a": 1}]
    cur.row_factory = None
    assert cur.execute("SELECT 1 AS a").fetchone() == (1,)
    assert conn.execute("SELECT 1 AS a").fetchone() == {"a": 1}
    assert list(conn.execute("SELECT 1 AS a UNION ALL SELECT 2")) == [{"a": 1}, {"a": 2}]


def test_text_factory(conn):
    conn.text_factory = bytes
    assert conn.execute("SELECT 'é', 1").fetchone() == ("é".encode(), 1)
    conn.text_factory = lambda b: b.decode().upper()
    assert conn.execute("SELECT 'abc'").fetchone() == ("ABC",)
    conn.text_factory = str
    assert conn.execute("SELECT 'abc'").fetchone() == ("abc",)


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __conform__(self, protocol):
        if protocol is sqlite3.PrepareProtocol:
            return f"{self.x};{self.y}"


class Money:
    def __init__(self, cents):
        self.cents = cents


def test_adapters_and_converters(connect, mod):
    mod.register_adapter(Money, lambda m: f"${m.cents}")
    mod.register_converter("POINT", lambda b: tuple(map(int, b.split(b";"))))
    try:
        conn = connect(detect_types=mod.PARSE_DECLTYPES | mod.PARSE_COLNAMES)
        conn.execute("CREATE TABLE t(p point, m TEXT, n INTEGER, r REAL)")
        conn.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (Point(1, 2), Money(5), 7, 1.5))
        assert conn.execute("SELECT p, m, n, r FROM t").fetchone() == ((1, 2), "$5", 7, 1.5)
        cur = conn.execute('SELECT m AS "m [point]", n AS "n [point]" FROM t')
        assert cur.description[0][0] == "m"
        assert conn.execute("SELECT '3;4' AS \"x [POINT]\"").fetchone() == ((3, 4),)
        plain = connect()
        assert plain.execute("SELECT ?", (Point(5, 6),)).fetchone() == ("5;6",)
    finally:
        del sqlite3.adapters[(Money, sqlite3.PrepareProtocol)]
        del sqlite3.converters["POINT"]


def test_executemany_adapts_values_behind_plain_rows(connect, mod):
    """A list of plain rows is handed to SQLite whole; one value needing an adapter (last
    row, or a row that is not a tuple) still goes through sqlite3's adapters."""
    mod.register_adapter(Money, lambda m: f"${m.cents}")
    try:
        conn = connect()
        conn.execute("CREATE TABLE t(n INTEGER, m TEXT)")
        rows = [(i, "x") for i in range(1000)] + [(1000, Money(7))]
        conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
        conn.executemany("INSERT INTO t VALUES (?, ?)", [[1001, "y"], (1002, Point(1, 2))])
        assert conn.execute("SELECT m FROM t WHERE n >= 1000 ORDER BY n").fetchall() == [
            ("$7",), ("y",), ("1;2",)]
        with raises(mod.ProgrammingError, "type 'set' is not supported"):
            conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, {3})])
    finally:
        del sqlite3.adapters[(Money, sqlite3.PrepareProtocol)]


def test_default_date_adapters_and_converters(connect, mod):
    conn = connect(detect_types=mod.PARSE_DECLTYPES)
    conn.execute("CREATE TABLE t(d date, ts timestamp)")
    day, moment = datetime.date(2024, 2, 29), datetime.datetime(2024, 2, 29, 12, 30, 1, 250000)
    with pytest.warns(DeprecationWarning) if sqlite3.sqlite_version_info and _deprecated_adapters() else _nothing():
        conn.execute("INSERT INTO t VALUES (?, ?)", (day, moment))
        assert conn.execute("SELECT d, ts FROM t").fetchone() == (day, moment)
    assert connect().execute("SELECT ?", (day,)).fetchone() == ("2024-02-29",)


def _deprecated_adapters() -> bool:
    import sys

    return sys.version_info >= (3, 12)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- user functions (userfunctions) --------------------------------------------------------------


def test_create_function(conn):
    conn.create_function("twice", 1, lambda x: None if x is None else x * 2, deterministic=True)
    assert conn.execute("SELECT twice(21), twice('ab'), twice(NULL || 'x')").fetchone() == (42, "abab", None)
    conn.create_function("boom", 0, lambda: 1 / 0)
    with raises(sqlite3.OperationalError, "user-defined function raised exception"):
        conn.execute("SELECT boom()").fetchall()
    conn.create_function("weird", 0, lambda: object())
    with raises(sqlite3.OperationalError):
        conn.execute("SELECT weird()").fetchall()
    conn.create_function("blob", 0, lambda: b"\x00\x01")
    assert conn.execute("SELECT blob()").fetchone() == (b"\x00\x01",)


class Sum:
    def __init__(self):
        self.total = 0

    def step(self, value):
        self.total += value

    def finalize(self):
        return self.total


class BadStep(Sum):
    def step(self, value):
        raise ValueError


class WindowSum(Sum):
    def value(self):
        return self.total

    def inverse(self, value):
        self.total -= value


def test_create_aggregate(conn):
    conn.create_aggregate("mysum", 1, Sum)
    conn.execute("CREATE TABLE t(v)")
    conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    assert conn.execute("SELECT mysum(v) FROM t").fetchone() == (6,)
    conn.create_aggregate("badstep", 1, BadStep)
    with raises(sqlite3.OperationalError, "user-defined aggregate's 'step' method raised error"):
        conn.execute("SELECT badstep(v) FROM t").fetchall()


def test_create_window_function(conn):
    conn.create_window_function("winsum", 1, WindowSum)
    conn.execute("CREATE TABLE t(v)")
    conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,), (4,)])
    rows = conn.execute("SELECT winsum(v) OVER (ORDER BY v ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t")
    assert [r[0] for r in rows] == [1, 3, 5, 7]


def test_create_collation(conn):
    conn.create_collation("reverse", lambda a, b: (a < b) - (a > b))
    conn.execute("CREATE TABLE t(v)")
    conn.executemany("INSERT INTO t VALUES (?)", [("a",), ("c",), ("b",)])
    assert [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v COLLATE reverse")] == ["c", "b", "a"]
    conn.create_collation("reverse", None)
    with raises(sqlite3.OperationalError, "no such collation"):
        conn.execute("SELECT v FROM t ORDER BY v COLLATE reverse").fetchall()
    with raises(TypeError):
        conn.create_collation("x", 42)


# -- hooks -------------------------------------------------------------------------------------


def test_authorizer(conn, mod):
    conn.execute("CREATE TABLE t(a, secret)")
    conn.execute("INSERT INTO t VALUES (1, 2)")

    def deny_secret(action, arg1, arg2, dbname, source):
        if action == mod.SQLITE_READ and arg2 == "secret":
            return mod.SQLITE_DENY
        return mod.SQLITE_OK

    conn.set_authorizer(deny_secret)
    assert conn.execute("SELECT a FROM t").fetchone() == (1,)
    with raises(sqlite3.DatabaseError, "prohibited"):
        conn.execute("SELECT secret FROM t")
    conn.set_authorizer(lambda *args: mod.SQLITE_IGNORE if args[2] == "secret" else mod.SQLITE_OK)
    assert conn.execute("SELECT a, secret FROM t").fetchone() == (1, None)
    conn.set_authorizer(lambda *args: 1 / 0)  # an exception denies
    with raises(sqlite3.DatabaseError):
        conn.execute("SELECT a FROM t")
    conn.set_authorizer(None)
    assert conn.execute("SELECT secret FROM t").fetchone() == (2,)


def test_trace_callback(conn):
    seen = []
    conn.set_trace_callback(seen.append)
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    assert seen == ["CREATE TABLE t(v)", "BEGIN ", "INSERT INTO t VALUES (1)", "COMMIT"]
    conn.set_trace_callback(None)
    conn.execute("SELECT 1")
    assert len(seen) == 4


def test_progress_handler_and_interrupt(conn):
    conn.set_progress_handler(lambda: 1, 1)
    with raises(sqlite3.OperationalError, "interrupted"):
        conn.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10000) "
                     "SELECT count(*) FROM c").fetchall()
    conn.set_progress_handler(None, 1)
    assert conn.execute("SELECT 1").fetchone() == (1,)

    def stop():
        conn.interrupt()
        return 0

    conn.set_progress_handler(stop, 100)
    with raises(sqlite3.OperationalError, "interrupted"):
        conn.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) "
                     "SELECT count(*) FROM c").fetchall()


def test_total_changes(conn):
    conn.execute("CREATE TABLE t(v)")
    conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    conn.execute("UPDATE t SET v = 0")
    assert conn.total_changes == 4


def test_limits(conn, mod):
    old = conn.getlimit(mod.SQLITE_LIMIT_SQL_LENGTH)
    assert conn.setlimit(mod.SQLITE_LIMIT_SQL_LENGTH, 100) == old
    assert conn.getlimit(mod.SQLITE_LIMIT_SQL_LENGTH) == 100
    with raises(sqlite3.DataError):
        conn.execute("SELECT '" + "x" * 200 + "'")
    with raises(sqlite3.ProgrammingError, "out of bounds"):
        conn.getlimit(1000)


def test_blobopen(conn):
    conn.execute("CREATE TABLE t(b BLOB)")
    conn.execute("INSERT INTO t VALUES (zeroblob(8))")
    with conn.blobopen("t", "b", 1) as blob:
        blob.write(b"abcd")
        assert blob.tell() == 4 and len(blob) == 8
        blob.seek(0)
        assert blob.read(2) == b"ab" and blob.read() == b"cd\x00\x00\x00\x00"
        assert blob[1] == ord("b") and blob[0:3] == b"abc"
        blob[7] = ord("z")
        with raises(ValueError):
            blob.seek(9)
        blob.seek(6)
        with raises(ValueError):
            blob.write(b"xyz")
    with raises(sqlite3.ProgrammingError):
        blob.read()
    assert conn.execute("SELECT b FROM t").fetchone() == (b"abcd\x00\x00\x00z",)
    with conn.blobopen("t", "b", 1, readonly=True) as blob:
        assert blob.read(4) == b"abcd"


# -- whole database: serialize, dump, backup ------------------------------------------------------


def _fill(conn):
    conn.executescript("""
        CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT, b BLOB);
        CREATE INDEX t_v ON t(v);
        CREATE VIEW vt AS SELECT v FROM t;
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;
        INSERT INTO t(v, b) VALUES ('it''s', x'00ff'), (NULL, NULL);
    """)


def test_iterdump(conn):
    _fill(conn)
    reference = sqlite3.connect(":memory:")
    _fill(reference)
    assert list(conn.iterdump()) == list(reference.iterdump())
    conn.row_factory = sqlite3.Row  # the dump ignores row factories
    assert list(conn.iterdump()) == list(reference.iterdump())


def test_serialize_deserialize(connect):
    source = connect()
    _fill(source)
    data = source.serialize()
    assert data[:16] == b"SQLite format 3\x00"
    target = connect()
    target.deserialize(data)
    assert target.execute("SELECT v, b FROM t ORDER BY id").fetchall() == [("it's", b"\x00\xff"), (None, None)]


@pytest.mark.parametrize("to", ["sqlite3", "same"])
def test_backup(connect, to, kind):
    source = connect()
    _fill(source)
    target = sqlite3.connect(":memory:") if to == "sqlite3" else connect()
    steps = []
    source.backup(target, pages=1, progress=lambda status, remaining, total: steps.append((status, remaining, total)))
    assert target.execute("SELECT v FROM t ORDER BY id").fetchall() == [("it's",), (None,)]
    assert steps and steps[-1][:2] == (101, 0) and all(total == steps[0][2] for _, _, total in steps)
    assert len(steps) == steps[0][2]  # one step a page
    with raises(ValueError, "same connection"):
        source.backup(source)
    target.close()


def test_backup_from_sqlite3_into_dolite():
    """sqlite3's own backup() refuses a non-sqlite3 target; serialize + deserialize is the way."""
    source = sqlite3.connect(":memory:")
    _fill(source)
    target = dolite.connect("compat-from-sqlite3", storage="memory:compat-from-sqlite3")
    with raises(TypeError):
        source.backup(target)
    target.deserialize(source.serialize())
    assert target.execute("SELECT count(*) FROM t").fetchone() == (2,)
    target.close()


# -- dolite only --------------------------------------------------------------------------------


@pytest.fixture
def dconn():
    n = next(_names)
    conn = dolite.connect(f"only{n}", storage=f"memory:only{n}")
    yield conn
    conn.close()


def test_refused_not_ignored(dconn):
    with raises(dolite.NotSupportedError, "journal"):
        dconn.execute("PRAGMA journal_mode=WAL")
    with raises(dolite.NotSupportedError, "journal"):
        dconn.executescript("CREATE TABLE w(v); PRAGMA journal_mode = wal;")
    with raises(dolite.NotSupportedError, "VACUUM INTO"):
        dconn.execute("VACUUM INTO '/tmp/elsewhere.db'")
    with raises(dolite.NotSupportedError):
        dconn.enable_load_extension(True)
    with raises(dolite.NotSupportedError):
        dolite.connect("x", storage="memory:x", uri=True)
    assert dconn.execute("PRAGMA journal_mode").fetchone() == ("memory",)


def test_hooks_survive_a_reopen():
    """An exclusive connection reopens its APSW connection when someone else committed:
    functions, collations, callbacks and limits come along."""
    conn = dolite.connect("reopen", storage="memory:reopen", exclusive=True)
    conn.create_function("twice", 1, lambda x: x * 2)
    conn.create_collation("rev", lambda a, b: (a < b) - (a > b))
    conn.setlimit(dolite.SQLITE_LIMIT_SQL_LENGTH, 1000)
    old_raw = conn.raw
    conn._reopen()
    assert conn.raw is not old_raw
    assert conn.execute("SELECT twice(2)").fetchone() == (4,)
    assert conn.execute("SELECT 'a' UNION SELECT 'b' ORDER BY 1 COLLATE rev").fetchall() == [("b",), ("a",)]
    assert conn.getlimit(dolite.SQLITE_LIMIT_SQL_LENGTH) == 1000
    conn.close()


def test_cursor_factory_and_connection_factory(dconn):
    class MyCursor(dolite.Cursor):
        pass

    assert isinstance(dconn.cursor(factory=MyCursor), MyCursor)

    class MyConnection(dolite.Connection):
        pass

    other = dolite.connect("factory", storage="memory:factory", factory=MyConnection)
    assert isinstance(other, MyConnection)
    other.close()
