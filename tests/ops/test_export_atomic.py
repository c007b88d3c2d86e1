"""An export that fails part way leaves no partial file, and the old file untouched."""

from __future__ import annotations

import sqlite3

import pytest

import dolite
from dolite.errors import StorageError
from dolite.ops import snapshot
from dolite.storage import open_storage


class FailingReads:
    """A namespace whose objects fail every chunk read after the first ``reads_ok``."""

    def __init__(self, inner, reads_ok: int):
        self.inner, self.reads_ok = inner, reads_ok
        self.url, self.limits = inner.url, inner.limits

    def object(self, name):
        return _FailingObject(self, self.inner.object(name))

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


class _FailingObject:
    def __init__(self, owner: FailingReads, inner):
        self.owner, self.inner, self.limits = owner, inner, inner.limits

    def _count(self, keys) -> None:
        if any(k.startswith("c/") for k in keys):
            self.owner.reads_ok -= 1
            if self.owner.reads_ok < 0:
                raise StorageError("injected: storage went away mid-export")

    def get(self, keys):
        keys = list(keys)
        self._count(keys)
        return self.inner.get(keys)

    def list(self, **kwargs):
        self._count([kwargs.get("start") or kwargs.get("prefix") or ""])
        return self.inner.list(**kwargs)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


@pytest.fixture
def stored():
    ns = open_storage("memory:")
    conn = dolite.connect("db", storage=ns)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.executemany("INSERT INTO t(v) VALUES (randomblob(3000))", [()] * 100)
    conn.commit()
    conn.close()
    return ns


@pytest.mark.parametrize("base64_json", [False, True], ids=["sqlite", "base64"])
def test_failed_export_leaves_the_destination_as_it_was(stored, tmp_path, base64_json):
    dest = tmp_path / "out.sqlite"
    dest.write_bytes(b"the previous export")
    with pytest.raises(StorageError, match="injected"):
        snapshot.export_file(FailingReads(stored, reads_ok=20), "db", dest, base64_json=base64_json)
    assert dest.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.sqlite"]  # no temporary left

    fresh = tmp_path / "fresh.sqlite"
    with pytest.raises(StorageError):
        snapshot.export_file(FailingReads(stored, reads_ok=20), "db", fresh, base64_json=base64_json)
    assert not fresh.exists()


def test_successful_export_replaces_the_destination(stored, tmp_path):
    dest = tmp_path / "out.sqlite"
    dest.write_bytes(b"old")
    snapshot.export_file(stored, "db", dest)
    assert sqlite3.connect(dest).execute("SELECT count(*) FROM t").fetchone() == (100,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.sqlite"]
