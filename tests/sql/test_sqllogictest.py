"""sqllogictest: the corpus on every storage backend, and the runner itself.

The corpus is SQLite's, kept outside the repository: at ``$DOLITE_SLT_DIR``, else at
``../shared/sqllogictest`` beside the checkout. Without it the corpus tests are skipped with
a message naming ``DOLITE_SLT_DIR`` (a fresh clone still passes), except under ``CI=true`` or
with ``DOLITE_SLT_DIR`` set, where ``test_corpus_present`` fails: a lost corpus never passes
there as "0 tests run".
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import pytest

from dolite.testing import sqllogictest as slt
from dolite.testing.sqllogictest import format_rows, format_value, parse, run_file, run_script

DEFAULT_SLT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "sqllogictest"
SLT_DIR = Path(os.environ.get("DOLITE_SLT_DIR") or DEFAULT_SLT_DIR)
# The shared corpus holds 20 files; another folder (DOLITE_SLT_DIR) states its own count
# with DOLITE_SLT_EXPECTED_FILES or just has to be non-empty.
EXPECTED_FILES = int(os.environ.get("DOLITE_SLT_EXPECTED_FILES")
                     or (20 if SLT_DIR == DEFAULT_SLT_DIR else 0))
SLT_FILES = sorted(SLT_DIR.rglob("*.test")) if SLT_DIR.is_dir() else []
ABSENT = (f"sqllogictest corpus not found at {SLT_DIR}: set DOLITE_SLT_DIR to the folder "
          "holding its .test files to run it")
# Under CI, or when DOLITE_SLT_DIR names a folder, a missing corpus is a failure, not a skip.
REQUIRED = os.environ.get("CI", "").lower() in ("true", "1") or bool(os.environ.get("DOLITE_SLT_DIR"))


def corpus_params():
    """One parameter per corpus file, or a single skipped one that says what is missing."""
    if SLT_FILES:
        return [pytest.param(p, id=str(p.relative_to(SLT_DIR))) for p in SLT_FILES]
    return [pytest.param(None, id="no-corpus", marks=pytest.mark.skip(reason=ABSENT))]


def _sqlite3_memory():
    return sqlite3.connect(":memory:", isolation_level=None)


def _assert_passed(res, limit=5):
    if res.failures:
        pytest.fail(res.report(limit), pytrace=False)


# --------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------


def test_corpus_present():
    if not SLT_DIR.is_dir():
        if REQUIRED:
            pytest.fail(f"{ABSENT} (required under CI=true or with DOLITE_SLT_DIR set)", pytrace=False)
        pytest.skip(ABSENT)
    if EXPECTED_FILES:
        assert len(SLT_FILES) == EXPECTED_FILES, (
            f"{SLT_DIR} holds {len(SLT_FILES)} .test files, expected {EXPECTED_FILES}")
    else:
        assert SLT_FILES, f"no .test files under {SLT_DIR}"


@pytest.mark.parametrize("slt_file", corpus_params())
def test_sqllogictest(slt_file, storage_url):
    """Every corpus file, on every backend, through dolite.connect."""
    from dolite.sql.dbapi import connect

    name = f"slt-{uuid.uuid4().hex[:16]}"
    res = run_file(slt_file, lambda: connect(name, storage=storage_url))
    _assert_passed(res)
    assert res.run > 0


# --------------------------------------------------------------------------------------
# The runner, proven on stdlib sqlite3 (the reference engine for the corpus)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("slt_file", corpus_params())
def test_runner_on_stdlib_sqlite3(slt_file):
    """The whole corpus passes on stdlib sqlite3 (about 2 s in all)."""
    res = run_file(slt_file, _sqlite3_memory)
    _assert_passed(res)
    assert res.run > 0


SCRIPT = """\
# a comment line
hash-threshold 10

statement ok
CREATE TABLE t1(a INTEGER, b TEXT, c REAL)

statement ok
INSERT INTO t1 VALUES(1, 'one', 1.5), (2, '', NULL), (10, 'ten', 0.0625)

statement error
INSERT INTO nosuch VALUES(1)

skipif sqlite
statement ok
THIS IS NOT SQL

onlyif mysql
query I nosort
SELECT 'not run'
----
whatever

onlyif SQLite
query ITR rowsort
SELECT a, b, c FROM t1
# a comment inside a record is invisible
----
1
one
1.500
10
ten
0.063
2
(empty)
NULL

query I valuesort
SELECT a FROM t1 UNION ALL SELECT a*3 FROM t1
----
1
10
2
3
30
6

query I nosort
SELECT a FROM t1 WHERE a > 100
----

halt

statement ok
THIS IS NOT SQL EITHER
"""


def test_parse_records_and_line_numbers():
    recs = parse(SCRIPT.replace("\n", "\r\n"))
    kinds = [r.kind for r in recs]
    assert kinds == ["hash-threshold", "statement", "statement", "statement", "statement",
                     "query", "query", "query", "query", "halt", "statement"]
    assert [r.line for r in recs[:3]] == [2, 4, 7]
    assert recs[4].conditions == (("skipif", "sqlite"),) and recs[4].line == 14
    q = recs[6]
    assert (q.types, q.sort, q.label, q.line) == ("ITR", "rowsort", "", 24)
    assert q.sql == "SELECT a, b, c FROM t1"
    assert q.expected[:3] == ["1", "one", "1.500"] and len(q.expected) == 9
    assert recs[8].expected == []
    assert recs[4].sql == "THIS IS NOT SQL" and recs[3].sql.startswith("INSERT INTO nosuch")


def test_good_script_passes():
    res = run_script(SCRIPT, _sqlite3_memory, path="inline")
    _assert_passed(res)
    assert res.halted
    assert res.skipped == 2
    assert res.run == 6    # 3 statements and 3 queries before the halt


def _wrong(old: str, new: str):
    assert old in SCRIPT
    return run_script(SCRIPT.replace(old, new, 1), _sqlite3_memory, path="inline")


def test_wrong_value_fails():
    res = _wrong("ten\n0.063", "ten\n0.062")
    assert len(res.failures) == 1
    f = res.failures[0]
    assert f.line == 24 and "wrong result" in f.message and "'0.062'" in f.message
    assert "inline:24" in res.report()


def test_missing_and_extra_values_fail():
    assert len(_wrong("(empty)\nNULL\n", "(empty)\n").failures) == 1
    assert len(_wrong("30\n6\n", "30\n6\n7\n").failures) == 1
    assert len(_wrong("WHERE a > 100\n----\n", "WHERE a > 100\n----\n0\n").failures) == 1


def test_statement_expectations_fail():
    res = _wrong("statement error\nINSERT INTO nosuch", "statement ok\nINSERT INTO nosuch")
    assert [f.message for f in res.failures] == ["statement failed"]
    res = _wrong("statement ok\nCREATE TABLE", "statement error\nCREATE TABLE")
    assert res.failures[0].message == "statement succeeded but an error was expected"


def test_skip_and_halt_are_honoured():
    # Without the skipif the bogus statement runs and fails.
    assert len(_wrong("skipif sqlite\n", "").failures) == 1
    assert len(_wrong("onlyif mysql\n", "").failures) == 1
    assert len(_wrong("onlyif SQLite\n", "onlyif postgresql\n").failures) == 0
    assert len(_wrong("halt\n", "").failures) == 1


def test_hash_threshold_and_hash_mismatch():
    script = "query I nosort\nSELECT value FROM generate_series(1, 9)\n----\n"
    rows = "\n".join(str(i) for i in range(1, 10))
    hashed = "9 values hashing to " + slt.hash_values([str(i) for i in range(1, 10)])

    def run(text):
        conn = _sqlite3_memory()
        conn.execute("CREATE TABLE g(value)")
        conn.executemany("INSERT INTO g VALUES(?)", [(i,) for i in range(1, 10)])
        return run_script(text.replace("generate_series(1, 9)", "g"), lambda: conn, path="h")

    assert run(script + hashed + "\n").ok                           # default threshold 8
    assert not run(script + rows + "\n").ok
    assert run("hash-threshold 0\n\n" + script + rows + "\n").ok     # 0: never hash
    assert run("hash-threshold 20\n\n" + script + rows + "\n").ok
    bad = run(script + hashed[:-1] + "0\n")
    assert len(bad.failures) == 1 and bad.failures[0].message == "wrong result hash"


def test_labels_must_agree():
    base = """\
statement ok
CREATE TABLE t(x)

statement ok
INSERT INTO t VALUES(1),(2)

query I rowsort label-1
SELECT x FROM t
----
1
2

skipif sqlite
query I rowsort label-1
SELECT x FROM t WHERE x < 10
----
1
2

query I rowsort label-1
SELECT x FROM t ORDER BY 1 DESC
----
1
2
"""
    assert run_script(base, _sqlite3_memory).ok
    res = run_script(base + "\nquery I rowsort label-1\nSELECT x+1 FROM t\n----\n2\n3\n",
                     _sqlite3_memory)
    assert [f.message for f in res.failures] == [
        "labeled result [label-1] does not agree with previous values"]
    # A skipped record's expected text also pins the label (verify mode).
    res = run_script(base.replace("x < 10\n----\n1\n2", "x < 10\n----\n1\n3"), _sqlite3_memory)
    assert len(res.failures) == 1 and "label-1" in res.failures[0].message


def test_multi_statement_records_and_runtime_errors():
    script = """\
statement ok
CREATE TABLE t(x); CREATE TRIGGER r AFTER INSERT ON t BEGIN SELECT 1; END;
INSERT INTO t VALUES(1<<63);
INSERT INTO t VALUES(1<<63)

query I nosort
SELECT count(*) FROM t
----
2

query R nosort
SELECT sum(x) FROM t
----

query R nosort
SELECT total(x) FROM t
----
-18446744073709550000.000
"""
    _assert_passed(run_script(script, _sqlite3_memory))
    # A run-time error ends the rows (like the reference); a query that does not even
    # prepare is a failure.
    res = run_script(script.replace("SELECT sum(x) FROM t", "SELECT sum(x) FROM nosuch"),
                     _sqlite3_memory)
    assert [f.message for f in res.failures] == ["query failed"]
    res = run_script(script.replace("SELECT sum(x) FROM t\n----\n", "SELECT sum(x) FROM t\n----\n1.000\n"),
                     _sqlite3_memory)
    assert len(res.failures) == 1 and "integer overflow" in res.failures[0].message


def test_wrong_column_count_and_bad_type_fail():
    res = run_script("query II nosort\nSELECT 1\n----\n1\n1\n", _sqlite3_memory)
    assert "wrong number of result columns" in res.failures[0].message
    res = run_script("query X nosort\nSELECT 1\n----\n1\n", _sqlite3_memory)
    assert "unknown type character" in res.failures[0].message
    res = run_script("frobnicate\n\nstatement ok\nSELECT 1\n", _sqlite3_memory)
    assert res.halted and res.run == 0 and "unknown record type" in res.failures[0].message


@pytest.mark.parametrize("value, type_char, expected", [
    (None, "I", "NULL"), (None, "R", "NULL"), (None, "T", "NULL"),
    (42, "I", "42"), (-7, "I", "-7"),
    (3.9, "I", "3"), (-3.9, "I", "-3"),                  # reals truncate toward zero
    ("12abc", "I", "12"), ("abc", "I", "0"), (b"42", "I", "42"),
    (2**32 + 5, "I", "5"), (2**31, "I", "-2147483648"),  # sqlite3_column_int: low 32 bits
    (1e30, "I", "-1"),                                   # clamped to int64 max, then cut
    (5, "R", "5.000"), (1.5, "R", "1.500"), (-0.0, "R", "0.000"), (-0.0001, "R", "-0.000"),
    (0.0625, "R", "0.063"), (2.0005, "R", "2.001"),     # SQLite rounds half up
    (1 / 3, "R", "0.333"), ("2.5x", "R", "2.500"), ("x", "R", "0.000"),
    (-9223372036854775808, "R", "-9223372036854776000.000"),   # 16 significant digits
    (float("inf"), "R", "Inf"),
    ("", "T", "(empty)"), ("abc def", "T", "abc def"), ("a\tb\x7f", "T", "a@b@"),
    ("é", "T", "@@"),                                    # every UTF-8 byte becomes @
    ("a\x00b", "T", "a"), (b"\x00b", "T", "(empty)"),   # C strings stop at NUL
    (12, "T", "12"), (1.0, "T", "1.0"), (1e20, "T", "1.0e+20"), (0.1, "T", "0.1"),
    (1 / 3, "T", "0.333333333333333"), (2.5e-7, "T", "2.5e-07"),
])
def test_format_value(value, type_char, expected):
    assert format_value(value, type_char) == expected


def test_rowsort_compares_rendered_strings():
    rows = [(9, "b"), (10, "a"), (9, "a"), (None, "z")]
    assert format_rows(rows, "IT", "rowsort") == ["10", "a", "9", "a", "9", "b", "NULL", "z"]
    assert format_rows(rows, "IT", "nosort") == ["9", "b", "10", "a", "9", "a", "NULL", "z"]
    assert format_rows(rows, "IT", "valuesort") == ["10", "9", "9", "NULL", "a", "a", "b", "z"]


def test_formatting_matches_sqlite_printf():
    """The R and T renderers agree with classic SQLite printf/CAST for ordinary values
    (the algorithm that generated the corpus; SQLite 3.43+ rounds differently)."""
    conn = sqlite3.connect(":memory:")
    probe = conn.execute("SELECT printf('%.3f', 235227.0005), CAST(1.0/3 AS TEXT)").fetchone()
    if probe != ("235227.001", "0.333333333333333"):
        pytest.skip(f"stdlib sqlite3 {sqlite3.sqlite_version} does not use the classic printf")
    values = [i / d for i in range(-2000, 2000, 7) for d in (2, 3, 8, 16, 1000, 10000)]
    values += [k + 0.0005 for k in range(0, 100000, 997)] + [123456.789, 1e15 / 7, 1e17 / 3]
    for v in values:
        want_r, want_t = conn.execute("SELECT printf('%.3f', ?), CAST(? AS TEXT)", (v, v)).fetchone()
        assert (format_value(v, "R"), format_value(v, "T")) == (want_r, want_t), v


def test_cli_on_stdlib_sqlite3_and_through_dolite(tmp_path, capsys):
    script = tmp_path / "script.test"
    script.write_text(SCRIPT)
    assert slt.main([str(script)]) == 0
    assert "1 files, 0 with failures" in capsys.readouterr().out
    storage = f"lmdb:{tmp_path}/store"
    assert slt.main(["--storage", storage, str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 files, 0 with failures" in out and f"dolite on {storage}" in out
    from dolite.storage import open_storage

    assert open_storage(storage).names() == []  # each file's database is dropped afterwards


def test_cli_through_a_durable_object_keeps_the_secret_out_of_its_output(tmp_path, capsys):
    from tests.backends import session_workerd

    workerd = session_workerd()
    script = tmp_path / "script.test"
    script.write_text(SCRIPT)
    storage = f"{workerd.storage_url}&prefix=slt-{uuid.uuid4().hex[:8]}/"
    assert slt.main(["--storage", storage, str(script)]) == 0
    out = capsys.readouterr().out
    assert "1 files, 0 with failures" in out and workerd.secret not in out


def test_cli_reports_failures_and_bad_storage(tmp_path, capsys):
    script = tmp_path / "wrong.test"
    script.write_text(SCRIPT.replace("ten\n0.063", "ten\n0.062"))
    assert slt.main(["--storage", "memory:", str(script)]) == 1
    assert "wrong result" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        slt.main(["--storage", "nowhere:", str(script)])
    assert exit_.value.code == 2 and "unknown storage URL" in capsys.readouterr().err


def test_cli_on_the_corpus_through_dolite(capsys):
    if not SLT_FILES:
        pytest.skip(ABSENT)
    assert slt.main(["--storage", "memory:", str(SLT_FILES[0])]) == 0
    assert "1 files, 0 with failures" in capsys.readouterr().out
