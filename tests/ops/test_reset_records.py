"""A damaged write lease or GC cursor (records that hold no data) is reset by
``admin.reset_damaged_records`` (``dolite check NAME --repair``): writers and GC work
again, fencing still holds, and no version GC already dropped is offered again."""

from __future__ import annotations

import time
import uuid

import pytest
from typer.testing import CliRunner

import dolite
from dolite.cli.main import app
from dolite.errors import Conflict, CorruptChunk, DatabaseNotFound
from dolite.ops import admin
from dolite.ops.restore import retained_versions
from dolite.pages import open_store
from dolite.pages.format import GC, LEASE, decode_record
from dolite.storage import open_storage

RETENTION = 3600.0


def _damage(obj, key: str) -> bytes:
    raw = obj.get([key])[key]
    obj.put({key: raw[:5] + bytes([raw[5] ^ 0x04]) + raw[6:]})
    return raw


def _rows(url: str) -> int:
    conn = dolite.connect("db", storage=url)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


def test_a_damaged_lease_is_reset_and_its_old_holder_stays_fenced_out():
    url = f"memory:{uuid.uuid4().hex}"
    holder = dolite.connect("db", storage=url, isolation_level=None, exclusive=True)
    holder.execute("CREATE TABLE t(v)")
    holder.execute("INSERT INTO t VALUES (1)")
    obj = open_storage(url).object("db")
    _damage(obj, LEASE)
    with pytest.raises(CorruptChunk, match=r"dolite check db --repair"):
        open_store(url, "db").ensure_writable()  # another writer
    assert not admin.check(url, "db").ok

    done = admin.reset_damaged_records(url, "db")
    assert len(done) == 1 and "'lease'" in done[0] and "removed" in done[0]
    assert LEASE not in obj.get([LEASE])
    with pytest.raises(Conflict):  # the writer from before the damage commits nothing
        holder.execute("INSERT INTO t VALUES (3)")
    holder.close()
    writer = dolite.connect("db", storage=url, isolation_level=None)
    writer.execute("INSERT INTO t VALUES (2)")
    writer.close()
    assert _rows(url) == 2
    assert admin.check(url, "db").ok
    assert admin.reset_damaged_records(url, "db") == []  # nothing left to reset


def test_a_reset_leaves_a_record_rewritten_meanwhile_alone(monkeypatch):
    url = f"memory:{uuid.uuid4().hex}"
    conn = dolite.connect("db", storage=url, isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    conn.close()
    obj = open_storage(url).object("db")
    sound = _damage(obj, LEASE)
    reset = admin._reset

    def racing(*args):  # a writer puts a sound lease back between the read and the reset
        obj.put({LEASE: sound})
        return reset(*args)

    monkeypatch.setattr(admin, "_reset", racing)
    done = admin.reset_damaged_records(url, "db")
    assert len(done) == 1 and "left alone" in done[0]
    assert obj.get([LEASE])[LEASE] == sound


def _gc_partway(url: str, commits: int, processed: int) -> int:
    """A database of ``commits`` single-row commits, GC run up to ``processed``: its cursor."""
    conn = dolite.connect("db", storage=url, isolation_level=None, retention=RETENTION)
    conn.execute("CREATE TABLE t(v)")
    for i in range(commits):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    conn.close()
    times = dict(retained_versions(url, "db"))
    store = open_store(url, "db")
    store.collect_garbage(now=times[processed] + RETENTION)
    store.close()
    return decode_record(store.storage.get([GC])[GC], GC)["done"]


def _every_retained_version_reads(url: str) -> list[int]:
    store = open_store(url, "db")
    versions = [v for v, _ in retained_versions(url, "db")]
    for v in versions:
        head = store.version_head(v)
        for c in range(head.chunk_count):
            store.chunk_as_of(head, c)  # raises if GC dropped what this version needs
    return versions


def test_a_damaged_gc_cursor_is_reset_no_lower_than_it_was():
    url = f"memory:{uuid.uuid4().hex}"
    cursor = _gc_partway(url, commits=100, processed=50)
    assert cursor == 50
    obj = open_storage(url).object("db")
    _damage(obj, GC)
    store = open_store(url, "db")
    with pytest.raises(CorruptChunk, match=r"dolite check db --repair"):
        store.collect_garbage(now=time.time() + 2 * RETENTION)
    with pytest.raises(CorruptChunk, match=r"dolite check db --repair"):
        retained_versions(url, "db")

    done = admin.reset_damaged_records(url, "db")
    assert len(done) == 1 and "'gc'" in done[0]
    bound = decode_record(obj.get([GC])[GC], GC)["done"]
    assert cursor <= bound < 100
    versions = _every_retained_version_reads(url)
    assert versions[0] == bound and versions[-1] == 101  # GC dropped what only older ones need
    assert store.collect_garbage(now=time.time() + 2 * RETENTION) > 0
    assert _rows(url) == 100 and admin.check(url, "db").ok


def test_a_cursor_is_left_alone_while_the_head_is_damaged_and_the_lease_still_reset():
    url = f"memory:{uuid.uuid4().hex}"
    _gc_partway(url, commits=40, processed=20)
    obj = open_storage(url).object("db")
    for key in ("head", LEASE, GC):
        _damage(obj, key)
    cursor = obj.get([GC])[GC]
    done = admin.reset_damaged_records(url, "db")
    assert len(done) == 2 and "removed" in done[0] and "left alone" in done[1] and "'head'" in done[1]
    assert LEASE not in obj.get([LEASE]) and obj.get([GC])[GC] == cursor


def test_the_cli_resets_with_repair_alone_and_refuses_from_without_repair(tmp_path):
    url = f"sqlite:{tmp_path / 'store'}"
    conn = dolite.connect("db", storage=url, isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    conn.close()
    _damage(open_storage(url).object("db"), LEASE)
    runner = CliRunner()
    checked = runner.invoke(app, ["check", "db", "--storage", url])
    assert checked.exit_code == 2 and "--repair" in checked.output
    refused = runner.invoke(app, ["check", "db", "--storage", url, "--from", "file:///nowhere"])
    assert refused.exit_code == 1 and "--from goes with --repair" in refused.output
    repaired = runner.invoke(app, ["check", "db", "--storage", url, "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert "reset:" in repaired.output and "removed" in repaired.output
    with pytest.raises(DatabaseNotFound):
        admin.reset_damaged_records(url, "missing")
