"""A chunk version that storage lost (a non-atomic commit, a deleted key) is never read as
the older version a listing finds: for the newest commits, whose records the head
carries, a read is a CorruptChunk; for any commit whose record is retained, `dolite
check` names it, with the table that owns its pages."""

from __future__ import annotations

import pytest

import dolite
from dolite.errors import CorruptChunk
from dolite.ops import admin
from dolite.pages.format import chunk_prefix, parse_chunk_key
from dolite.pages.log import RECENT_MAX
from dolite.pages.versions import carried, newest_written
from dolite.storage import open_storage


def _two_tables(url: str, later_commits: int) -> int:
    """Tables a and b; two rows into a, then ``later_commits`` into b: a's chunk."""
    conn = dolite.connect("db", storage=url, isolation_level=None)
    conn.execute("CREATE TABLE a(v)")
    conn.execute("CREATE TABLE b(v)")
    conn.execute("INSERT INTO a VALUES (1)")
    conn.execute("INSERT INTO a VALUES (2)")
    for i in range(later_commits):
        conn.execute("INSERT INTO b VALUES (?)", (i,))
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'a'").fetchone()[0]
    conn.close()
    return root - 1  # 4 KiB chunks: page p is chunk p - 1


def _lose_newest(url: str, chunk: int) -> tuple[str, bytes]:
    obj = open_storage(url).object("db")
    key = max(obj.list(start=chunk_prefix(chunk), end=chunk_prefix(chunk + 1)))
    raw = obj.get([key])[key]
    obj.delete([key])
    return key, raw


def test_a_lost_version_of_a_recent_commit_is_an_error(storage_url):
    chunk = _two_tables(storage_url, later_commits=3)
    key, raw = _lose_newest(storage_url, chunk)
    with pytest.raises(CorruptChunk, match=rf"chunk {chunk} v{parse_chunk_key(key)[1]} is missing"):
        dolite.connect("db", storage=storage_url).execute("SELECT v FROM a").fetchall()
    report = admin.check(storage_url, "db")
    assert not report.ok and report.damaged == {"table a": [chunk + 1]}, report.corrupt
    open_storage(storage_url).object("db").put({key: raw})
    assert dolite.connect("db", storage=storage_url).execute("SELECT v FROM a").fetchall() == [(1,), (2,)]


def test_check_names_a_lost_version_older_than_the_heads_records():
    url = "memory:lost-older"
    chunk = _two_tables(url, later_commits=RECENT_MAX + 8)  # a's commits are in a log row now
    key, raw = _lose_newest(url, chunk)
    report = admin.check(url, "db")
    assert not report.ok and report.damaged == {"table a": [chunk + 1]}, report.corrupt
    assert any(f"chunk {chunk} v{parse_chunk_key(key)[1]} is missing" in line for line in report.corrupt)
    open_storage(url).object("db").put({key: raw})
    assert admin.check(url, "db").ok


def test_newest_written_follows_truncations():
    commits = [(1, 4 * 4096, 0, [0, 1, 2, 3]), (2, 2 * 4096, 4 * 4096, [1]), (3, 3 * 4096, 2 * 4096, [2])]
    assert newest_written(commits, 4096) == {0: 1, 1: 2, 2: 3}  # chunk 3 was cut, chunk 2 written again
    conn = dolite.connect("db", storage="memory:carried", isolation_level=None)
    conn.execute("CREATE TABLE t(v)")
    conn.execute("INSERT INTO t VALUES (1)")
    head = conn.database.store.read_head()
    stored = {parse_chunk_key(k) for k in open_storage("memory:carried").object("db").list(prefix="c/")}
    assert carried(head) and all((c, v) in stored for c, v in carried(head).items())
    conn.close()
