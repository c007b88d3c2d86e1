"""check names the table or index that owns a damaged chunk's pages; salvage saves every
row that can still be read."""

from __future__ import annotations

import sqlite3

import pytest

import dolite
from dolite.ops import admin
from dolite.ops.salvage import salvage
from dolite.pages import PageStore
from dolite.pages.format import chunk_prefix
from dolite.storage import open_storage


@pytest.fixture(params=["memory", "lmdb"])
def damaged(request, tmp_path):
    """Tables a, b (with an index) and c; one chunk holding a leaf page of b flipped."""
    url = "memory:" if request.param == "memory" else f"lmdb:{tmp_path}/store"
    ns = open_storage(url)
    conn = dolite.connect("shop", storage=ns)
    for table in "abc":
        conn.execute(f"CREATE TABLE {table}(id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany(f"INSERT INTO {table}(v) VALUES (?)", [(f"{table}{i:05d}" * 8,) for i in range(600)])
    conn.execute("CREATE INDEX b_v ON b(v)")
    conn.commit()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    leaf = conn.execute("SELECT pageno FROM dbstat WHERE name = 'b' AND pagetype = 'leaf' "
                        "ORDER BY pageno LIMIT 1 OFFSET 3").fetchone()[0]
    conn.close()
    store = PageStore(ns.object("shop"), "shop")
    head = store.read_head()
    chunk = (leaf - 1) * page_size // head.chunk_size
    key, raw = next(reversed(store.storage.list(prefix=chunk_prefix(chunk)).items()))
    broken = bytearray(raw)
    broken[-100] ^= 0xFF  # one flipped bit pattern inside the page: the checksum fails
    store.storage.put({key: bytes(broken)})
    yield ns, leaf
    if request.param == "lmdb":
        ns.close()


def test_check_names_the_table_and_page(damaged):
    ns, leaf = damaged
    report = admin.check(ns, "shop")
    assert not report.ok
    assert report.damaged == {"table b": [leaf]}
    assert any(f"table b (page {leaf})" in line and "current version" in line for line in report.corrupt)


def test_salvage_saves_every_other_row(damaged, tmp_path):
    ns, _ = damaged
    out = tmp_path / "saved.sqlite"
    report = salvage(ns, "shop", out)
    saved = {t.name: t for t in report.tables}
    assert saved["a"].rows == saved["c"].rows == 600 and not saved["a"].lost
    assert 0 < saved["b"].rows < 600 and len(saved["b"].lost) == 1
    lo, hi = saved["b"].lost[0]
    db = sqlite3.connect(out)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT count(*) FROM c").fetchone() == (600,)
    ids = {row[0] for row in db.execute("SELECT id FROM b")}
    assert ids == set(range(1, 601)) - set(range(lo + 1, hi + 1))  # exactly the lost range is gone
    assert db.execute("SELECT name FROM sqlite_schema WHERE type = 'index'").fetchall() == [("b_v",)]
    assert not report.complete


def test_undamaged_database_checks_ok_and_salvages_completely(tmp_path):
    ns = open_storage("memory:")
    conn = dolite.connect("fine", storage=ns)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.executemany("INSERT INTO t(v) VALUES (randomblob(9000))", [()] * 20)  # overflow pages
    conn.commit()
    conn.close()
    assert admin.check(ns, "fine").ok
    report = salvage(ns, "fine", tmp_path / "fine.sqlite")
    assert report.complete and report.tables[0].rows == 20
