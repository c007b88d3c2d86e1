"""sqlite-utils on a dolite connection: the operations it builds on sqlite3's API
(create_function, OperationalError for a missing column, PRAGMA-driven transforms, FTS)."""

from __future__ import annotations

import itertools

import pytest

import dolite

sqlite_utils = pytest.importorskip("sqlite_utils")
_names = itertools.count()


@pytest.fixture
def db():
    n = next(_names)
    conn = dolite.connect(f"utils{n}", storage=f"memory:utils{n}")
    yield sqlite_utils.Database(conn)
    conn.close()


def test_insert_upsert_with_alter(db):
    dogs = db["dogs"]
    dogs.insert_all([{"id": 1, "name": "Cleo", "age": 4}, {"id": 2, "name": "Pancakes", "age": 2}], pk="id")
    dogs.upsert({"id": 1, "name": "Cleo", "weight": 12.5}, pk="id", alter=True)  # a new column
    assert list(dogs.rows) == [{"id": 1, "name": "Cleo", "age": 4, "weight": 12.5},
                               {"id": 2, "name": "Pancakes", "age": 2, "weight": None}]
    dogs.insert({"id": 3, "name": "Rex", "breed": "Lab"}, alter=True)
    assert dogs.count == 3 and "breed" in dogs.columns_dict


def test_transform_and_extract(db):
    dogs = db["dogs"]
    dogs.insert_all([{"id": 1, "name": "Cleo", "age": 4, "breed": "Mutt"},
                     {"id": 2, "name": "Rex", "age": 2, "breed": "Lab"}], pk="id")
    dogs.transform(types={"age": str}, rename={"name": "dog_name"})
    assert dogs.columns_dict == {"id": int, "dog_name": str, "age": str, "breed": str}
    dogs.extract("breed")
    assert set(db.table_names()) == {"dogs", "breed"}
    assert [r["breed"] for r in db["breed"].rows] == ["Mutt", "Lab"]
    assert [fk.other_table for fk in dogs.foreign_keys] == ["breed"]


def test_convert_and_register_function(db):
    db["dogs"].insert_all([{"id": 1, "name": "cleo"}, {"id": 2, "name": "rex"}], pk="id")
    db["dogs"].convert("name", lambda v: v.upper())
    assert [r["name"] for r in db["dogs"].rows] == ["CLEO", "REX"]

    @db.register_function(deterministic=True)
    def shout(text):
        return text + "!"

    assert db.execute("SELECT shout(name) FROM dogs ORDER BY id").fetchall() == [("CLEO!",), ("REX!",)]


def test_fts_search(db):
    db["docs"].insert_all([{"id": 1, "text": "dolite keeps pages"}, {"id": 2, "text": "sqlite everywhere"}], pk="id")
    db["docs"].enable_fts(["text"], create_triggers=True)
    assert [r["id"] for r in db["docs"].search("pages")] == [1]
    db["docs"].insert({"id": 3, "text": "more pages"})
    assert sorted(r["id"] for r in db["docs"].search("pages")) == [1, 3]


def test_enable_wal_is_refused_not_ignored(db):
    with pytest.raises(dolite.NotSupportedError, match="WAL"):
        db.enable_wal()
    assert db.journal_mode == "memory"
