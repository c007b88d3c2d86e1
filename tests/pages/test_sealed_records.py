"""Head, lease, commit-log records and GC holds are sealed (issue #10 item 2): a damaged
one is a clear CorruptChunk, never an older version served as current, and GC never
deletes anything past a head it could not verify."""

from __future__ import annotations

import time
import uuid

import pytest

import dolite
from dolite.errors import CorruptChunk
from dolite.ops import admin
from dolite.pages import PageStore
from dolite.ops.restore import retained_versions
from dolite.pages.format import HEAD, LEASE, LOG_PREFIX
from dolite.pages.log import RECENT_MAX
from dolite.pages.holds import release_hold, set_hold
from dolite.storage import open_storage


def _db(url: str, versions: int = 6) -> None:
    conn = dolite.connect("db", storage=url, isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    for i in range(versions - 1):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    conn.close()


def _flip_version(raw: bytes, old: int, new: int) -> bytes:
    """What a two-bit flip of the head's version number looks like (checksum untouched)."""
    return raw.replace(f'"version":{old},'.encode(), f'"version":{new},'.encode())


def test_a_flipped_head_version_is_corruption_not_a_rollback():
    url = f"memory:{uuid.uuid4().hex}"
    _db(url)
    obj = open_storage(url).object("db")
    head = obj.get([HEAD])[HEAD]
    assert b'"version":6,' in head
    obj.put({HEAD: _flip_version(head, 6, 3)})
    with pytest.raises(CorruptChunk, match="checksum"):
        dolite.connect("db", storage=url).execute("SELECT count(*) FROM t").fetchall()
    report = admin.check(url, "db")
    assert not report.ok and any("head" in line for line in report.corrupt)
    with pytest.raises(CorruptChunk):  # a writer cannot clean "debris" past it either
        PageStore(obj, "db").ensure_writable()
    assert any(k.endswith(f"/{6:012x}") for k in obj.list(prefix="c/"))  # v6 is still there
    obj.put({HEAD: head})
    assert dolite.connect("db", storage=url).execute("SELECT count(*) FROM t").fetchone() == (5,)


@pytest.mark.parametrize("key", [LEASE, LOG_PREFIX])
def test_damaged_lease_and_log_records_are_reported(key):
    url = f"memory:{uuid.uuid4().hex}"
    _db(url, versions=RECENT_MAX + 4)  # the head's records overflowed into a log row
    obj = open_storage(url).object("db")
    key = next(iter(obj.list(prefix=key)))
    raw = obj.get([key])[key]
    obj.put({key: raw[:5] + bytes([raw[5] ^ 0x04]) + raw[6:]})
    report = admin.check(url, "db")
    assert not report.ok and any(repr(key) in line for line in report.corrupt), report.corrupt
    assert report.records_checked >= 3


def test_gc_keeps_versions_a_fresh_hold_needs_and_overrides_a_stale_one():
    url = f"memory:{uuid.uuid4().hex}"
    conn = dolite.connect("db", storage=url, isolation_level=None, retention=0)
    conn.execute("CREATE TABLE t(v)")
    for i in range(5):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    store = conn.database.store
    set_hold(store.storage, "backup:test", 2)
    store.collect_garbage(now=time.time() + 10)
    assert [v for v, _ in retained_versions(url, "db")] == [2, 3, 4, 5, 6]  # the hold's on
    store.collect_garbage(now=time.time() + 48 * 3600)  # the hold is stale by then
    assert [v for v, _ in retained_versions(url, "db")] == [6]
    release_hold(store.storage, "backup:test")
    conn.close()


def test_gc_after_commit_costs_no_storage_call_until_a_record_can_age_out():
    """GC runs every 64 commits; with nothing old enough it must not cost a round trip
    each time (it made 1.05 round trips per commit on the Durable Object backend)."""
    from tests.torture.faulty import FaultyNamespace

    ns = FaultyNamespace(open_storage(f"memory:{uuid.uuid4().hex}"))
    conn = dolite.connect("db", storage=ns, isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    store = conn.database.store
    assert store.collect_garbage() == 0  # learns when the oldest record ages out
    ns.faults.arm(None)
    before = ns.faults.ops
    assert store.collect_garbage() == 0
    assert ns.faults.ops == before  # no storage call
    assert store.collect_garbage(now=time.time() + 3600) >= 0  # past the due time: it runs
    assert ns.faults.ops > before
    conn.close()
