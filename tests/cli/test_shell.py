"""``dolite shell`` fed from a pipe, in process: output modes, dot commands, NULL and
BLOB display, ``.dump`` against stdlib sqlite3, stop at the first error (issue #11 item 5)."""

from __future__ import annotations

import io
import sqlite3

import pytest

from dolite.cli.shell import run_shell

SETUP = """CREATE TABLE People(id INTEGER PRIMARY KEY, name TEXT, photo BLOB, score REAL);
CREATE INDEX people_name ON People(name);
CREATE TABLE other(x);
INSERT INTO People VALUES (1, 'ann', x'00410142', 1.5), (2, NULL, NULL, 3.0), (3, 'it''s', x'4142', NULL);
"""


def shell(tmp_path, script: str, name: str = "db") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_shell(name, f"lmdb:{tmp_path}/store", create=True, stdin=io.StringIO(script), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("mode", "expected"), [
    ("list", "id|name|photo|score\n1|ann||1.5\n2|||3.0\n3|it's|AB|\n"),
    ("csv", "id,name,photo,score\n1,ann,,1.5\n2,,,3.0\n3,it's,AB,\n"),
    ("json", '[{"id":1,"name":"ann","photo":"\\u0000A\\u0001B","score":1.5},\n'
             '{"id":2,"name":null,"photo":null,"score":3.0},\n{"id":3,"name":"it\'s","photo":"AB","score":null}]\n'),
    ("line", "   id = 1\n name = ann\nphoto = \nscore = 1.5\n\n   id = 2\n name = \nphoto = \nscore = 3.0\n\n"
             "   id = 3\n name = it's\nphoto = AB\nscore = \n"),
])
def test_modes_show_null_and_blobs_like_sqlite3(tmp_path, mode, expected):
    code, out, err = shell(tmp_path, SETUP + f".mode {mode}\n.headers on\nSELECT * FROM People ORDER BY id;\n")
    assert (code, err) == (0, "")
    assert out == expected


def test_box_and_table_modes(tmp_path):
    code, out, _ = shell(tmp_path, SETUP + ".mode box\nSELECT id, name FROM People WHERE id = 1;\n"
                                           ".mode table\nSELECT id, name FROM People WHERE id = 1;\n")
    assert code == 0
    assert "│ id │ name │" in out and "│ 1  │ ann  │" in out
    assert "| id | name |" in out and "| 1  | ann  |" in out


def test_schema_tables_indexes_take_case_insensitive_patterns(tmp_path):
    code, out, err = shell(tmp_path, SETUP + ".schema people\n.tables\n.tables oth%\n.indexes PEOPLE\n"
                                             '.schema "x\' OR 1=1 --"\n')
    assert (code, err) == (0, "")
    assert out == ("CREATE TABLE People(id INTEGER PRIMARY KEY, name TEXT, photo BLOB, score REAL);\n"
                   "CREATE INDEX people_name ON People(name);\n"
                   "People\nother\n" "other\n" "people_name\n")  # the injected pattern matched nothing


def test_dump_matches_stdlib_iterdump(tmp_path):
    code, out, _ = shell(tmp_path, SETUP + "CREATE VIEW v AS SELECT name FROM People;\n.dump\n")
    assert code == 0
    reference = sqlite3.connect(":memory:")
    reference.executescript(SETUP + "CREATE VIEW v AS SELECT name FROM People;")
    assert out == "\n".join(reference.iterdump()) + "\n"
    restored = sqlite3.connect(":memory:")
    restored.executescript(out)
    assert list(restored.iterdump()) == list(reference.iterdump())


def test_piped_input_stops_at_the_first_error(tmp_path):
    code, out, err = shell(tmp_path, "SELECT 1;\nSELEC 2;\nSELECT 3;\n")
    assert code == 1 and out == "1\n" and "syntax error" in err
    code, out, err = shell(tmp_path, ".nonsense\nSELECT 3;\n")
    assert code == 1 and out == "" and "nonsense" in err


def test_read_import_timer_nullvalue_and_quit(tmp_path):
    (tmp_path / "script.sql").write_text("CREATE TABLE t(a);\n.mode csv\nINSERT INTO t VALUES (1);\n")
    (tmp_path / "good.csv").write_text('a,"b c"\n1,x\n2,"y, z"\n')
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    code, out, err = shell(tmp_path, f".read {tmp_path}/script.sql\nSELECT a FROM t;\n"
                                     f".import {tmp_path}/good.csv g\n.headers on\nSELECT * FROM g;\n"
                                     f".import {tmp_path}/good.csv g\nSELECT count(*) AS n FROM g;\n"
                                     ".nullvalue NULL\n.mode list\nSELECT NULL AS empty;\n"
                                     ".timer on\nSELECT 1;\n.quit\nSELECT 'not run';\n")
    assert (code, err) == (0, "")
    assert out.startswith('1\na,b c\n1,x\n2,"y, z"\nn\n5\nempty\nNULL\n1\n1\nRun Time: real ')
    assert "not run" not in out
    code, out, err = shell(tmp_path, f".import {tmp_path}/ragged.csv r\n")
    assert code == 1 and "ragged.csv:3: expected 2 columns but found 1" in err
    code, out, _ = shell(tmp_path, ".tables r\n")
    assert out == ""  # nothing of the refused file was kept


def test_a_missing_database_is_refused_without_create(tmp_path):
    from dolite.errors import DatabaseNotFound

    with pytest.raises(DatabaseNotFound):
        run_shell("absent", f"lmdb:{tmp_path}/store", stdin=io.StringIO(""), out=io.StringIO())
