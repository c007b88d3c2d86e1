"""One integration suite, run against every backup target (a folder, and S3 through a
real local S3-compatible server): push, incremental push, dedup, resume after an
interruption, exact restore by version and by time, a damaged backup refused."""

from __future__ import annotations

import sqlite3

import pytest

from dolite import backup
from dolite.backup.errors import BackupError, BackupNotFound, CorruptBackup, RestoreRefused, TargetUnavailable
from dolite.backup.manifest import FULL_EVERY, chunk_key, listing
from dolite.ops.snapshot import import_file, iter_export
from dolite.pages import PageStore
from dolite.pages.holds import read_holds
from dolite.sql.dbapi import connect


def commit(ns, name, *statements):
    conn = connect(name, ns)
    try:
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


def head(ns, name):
    return PageStore(ns.object(name), name).read_head()


def file_of(ns, name, version=None) -> bytes:
    return b"".join(iter_export(ns, name, version=version))


def chunk_objects(url, db="db") -> list[str]:
    return backup.open_target(url).list(chunk_key(db, ""))


@pytest.fixture
def db(ns):
    """Database ``db``: about 40 chunks of random rows."""
    commit(ns, "db", "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50) "
           "INSERT INTO t(v) SELECT randomblob(3000) FROM n")
    return "db"


def test_first_push_copies_everything_and_a_second_push_nothing(ns, db, target_url):
    first = backup.push(ns, db, to=target_url)
    assert first.full_snapshot and first.reason == "first push to this target"
    assert first.version == head(ns, db).version and first.versions == [first.version]
    assert first.chunks_uploaded == len(chunk_objects(target_url)) > 30
    again = backup.push(ns, db, to=target_url)
    assert (again.versions, again.chunks_uploaded, again.full_snapshot) == ([], 0, False)


def test_later_pushes_copy_only_the_changed_chunks_of_each_version(ns, db, target_url):
    backup.push(ns, db, to=target_url)
    before = set(chunk_objects(target_url))
    start = head(ns, db).version
    for i in range(3):
        commit(ns, db, f"UPDATE t SET v = randomblob(3000) WHERE id = {i + 1}")
    result = backup.push(ns, db, to=target_url)
    assert result.versions == [start + 1, start + 2, start + 3] and not result.full_snapshot
    # each commit rewrites the header chunk and the chunk holding its row: a few chunks
    assert 3 <= result.chunks_uploaded <= 9
    assert len(set(chunk_objects(target_url)) - before) == result.chunks_uploaded


def test_identical_chunks_are_stored_once(ns, target_url, tmp_path):
    path = tmp_path / "zeros.sqlite"
    with sqlite3.connect(path) as conn:  # secure_delete zeroes freed pages: many identical chunks
        conn.executescript("PRAGMA secure_delete=ON; CREATE TABLE t(v); INSERT INTO t VALUES (randomblob(200000));"
                           "DELETE FROM t;")
    conn.close()
    import_file(ns, "db", path)
    result = backup.push(ns, "db", to=target_url)
    assert result.chunks_present > 10
    assert len(chunk_objects(target_url)) == result.chunks_uploaded == head(ns, "db").chunk_count - result.chunks_present


class FailingTarget:
    """A target that fails after ``allowed`` puts, and records every key put."""

    def __init__(self, url, allowed=None):
        self.inner, self.allowed, self.puts = backup.open_target(url), allowed, []
        self.url = self.inner.url

    def put_object(self, key, data):
        if self.allowed is not None and len(self.puts) >= self.allowed:
            raise TargetUnavailable("connection lost (test)")
        self.inner.put_object(key, data)
        self.puts.append(key)

    def __getattr__(self, attr):  # reads, listing and the lock's conditional writes: as the inner target
        return getattr(self.inner, attr)


@pytest.mark.parametrize("first_push", ["interrupted", "complete"])
def test_an_interrupted_push_resumes_and_sends_nothing_twice(ns, db, target_url, first_push):
    failing = FailingTarget(target_url, allowed=2)
    if first_push == "complete":  # the first (full) push goes through, the incremental one fails
        failing.allowed = None
        backup.push(ns, db, to=failing)
        failing.allowed = len(failing.puts) + 5
    for i in range(4):
        commit(ns, db, f"UPDATE t SET v = randomblob(3000) WHERE id = {10 * i + 1}")
    with pytest.raises(TargetUnavailable):
        backup.push(ns, db, to=failing)
    interrupted = set(listing(backup.open_target(target_url), db))
    failing.allowed = None
    result = backup.push(ns, db, to=failing)
    assert result.version == head(ns, db).version
    assert not set(result.versions) & interrupted
    assert len(failing.puts) == len(set(failing.puts)), "a chunk or manifest was sent twice"
    assert backup.restore(db, from_=target_url, storage=ns, into="back").version == result.version
    assert file_of(ns, "back") == file_of(ns, db)


def test_restore_by_version_and_by_time_gives_the_database_as_it_was(ns, db, target_url):
    backup.push(ns, db, to=target_url)
    for i in range(FULL_EVERY + 3):  # long enough for a full manifest in the middle of the chain
        commit(ns, db, f"INSERT INTO t(v) VALUES (randomblob({100 * i}))")
        if i % 10 == 0:
            commit(ns, db, f"DELETE FROM t WHERE id = {i + 1}")
    backup.push(ns, db, to=target_url)
    versions = backup.list_versions(db, from_=target_url)
    for n, v in enumerate(versions[:: 7] + versions[-1:]):
        into = f"v{n}"
        assert backup.restore(db, from_=target_url, storage=ns, into=into, version=v.version).version == v.version
        assert file_of(ns, into) == file_of(ns, db, version=v.version)
    middle = next(v for v, after in zip(versions[len(versions) // 2:], versions[len(versions) // 2 + 1:])
                  if after.time > v.time)
    assert backup.restore(db, from_=target_url, storage=ns, into="at", at=middle.time).version == middle.version
    assert file_of(ns, "at") == file_of(ns, db, version=middle.version)
    newest = backup.restore(db, from_=target_url, storage=ns, into="newest")
    assert newest.version == head(ns, db).version
    rows = connect("newest", ns, create=False).execute("SELECT count(*), sum(length(v)) FROM t").fetchall()
    assert rows == connect(db, ns).execute("SELECT count(*), sum(length(v)) FROM t").fetchall()


def test_list_shows_every_pushed_version_with_its_commit_time(ns, db, target_url):
    backup.push(ns, db, to=target_url)
    commit(ns, db, "DELETE FROM t WHERE id = 1")
    commit(ns, db, "DELETE FROM t WHERE id = 2")
    backup.push(ns, db, to=target_url)
    store = PageStore(ns.object(db), db)
    now = head(ns, db)
    from dolite.pages.log import read_records
    records = read_records(store.storage, db, now, now.version - 2, now.version + 1)
    listed = backup.list_versions(db, from_=target_url)
    assert [v.version for v in listed] == sorted(records)
    for v in listed:
        assert abs(v.time - records[v.version].time) < 1e-5


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_a_damaged_chunk_fails_the_restore_and_nothing_appears(ns, db, target_url, damage, tmp_path):
    backup.push(ns, db, to=target_url)
    target = backup.open_target(target_url)
    victim = chunk_objects(target_url)[3]
    if damage == "garbage":
        target.put_object(victim, b"not the chunk")
    else:
        _remove(target, victim)
    with pytest.raises(CorruptBackup, match=victim.rpartition("/")[2]):
        backup.restore(db, from_=target_url, storage=ns, into="copy")
    assert not PageStore(ns.object("copy"), "copy").exists() and "copy" not in ns.names()


def _remove(target, key):
    if hasattr(target, "root"):
        import os

        os.unlink(os.path.join(target.root, key))
    else:
        target._client.delete_object(Bucket=target.bucket, Key=target.prefix + key)


def test_a_damaged_manifest_is_refused(ns, db, target_url):
    backup.push(ns, db, to=target_url)
    target = backup.open_target(target_url)
    (key,) = [k for _, k in listing(target, db).values()]
    target.put_object(key, target.get_object(key).replace(b'"size":', b'"size":1'))
    with pytest.raises(CorruptBackup, match="damaged"):
        backup.restore(db, from_=target_url, storage=ns, into="copy")
    assert "copy" not in ns.names()


def test_a_push_sets_the_gc_hold_at_the_version_it_copied(ns, db, target_url):
    result = backup.push(ns, db, to=target_url)
    holds = read_holds(ns.object(db))
    hold = holds[f"backup:{backup.redact(target_url)}"]
    assert hold.version == result.version
    assert "?" not in hold.holder and "endpoint" not in hold.holder


def test_versions_gone_before_they_were_copied_mean_a_full_snapshot_that_says_so(ns, target_url):
    commit(ns, "db", "CREATE TABLE t(v)")
    conn = connect("db", ns)
    backup.push(ns, "db", to=target_url)
    for i in range(3):
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        conn.commit()
    conn.close()
    store = PageStore(ns.object("db"), "db")
    from dolite.pages.holds import release_hold
    release_hold(store.storage, f"backup:{backup.redact(target_url)}")
    store.collect_garbage(now=head(ns, "db").time + 10_000)
    store.close()
    result = backup.push(ns, "db", to=target_url)
    assert result.full_snapshot and "garbage-collected before they were backed up" in result.reason
    assert result.version == head(ns, "db").version
    restored = backup.restore("db", from_=target_url, storage=ns, into="copy")
    assert restored.version == result.version and file_of(ns, "copy") == file_of(ns, "db")


def test_refusals_change_nothing(ns, db, target_url, tmp_path):
    with pytest.raises(BackupNotFound):
        backup.restore(db, from_=target_url, storage=ns, into="copy")
    backup.push(ns, db, to=target_url)
    with pytest.raises(RestoreRefused):
        backup.restore(db, from_=target_url, storage=ns, into=db)
    with pytest.raises(BackupNotFound, match="version 999"):
        backup.restore(db, from_=target_url, storage=ns, into="copy", version=999)
    with pytest.raises(BackupNotFound, match="at or before"):
        backup.restore(db, from_=target_url, storage=ns, into="copy", at=1.0)
    with pytest.raises(RestoreRefused):
        backup.restore(db, from_=target_url, storage=ns, into="copy", version=1, at=1.0)
    assert "copy" not in ns.names()
    ns.drop(db)
    commit(ns, db, "CREATE TABLE other(x)")  # a new incarnation under the same name
    with pytest.raises(BackupError, match="dropped and created again"):
        backup.push(ns, db, to=target_url)


def test_verify_passes_a_sound_backup_and_names_each_damaged_chunk(ns, db, target_url):
    backup.push(ns, db, to=target_url)
    commit(ns, db, "UPDATE t SET v = randomblob(3000) WHERE id = 7")
    backup.push(ns, db, to=target_url)
    sound = backup.verify(db, from_=target_url)
    assert sound.ok and sound.versions == 2 and sound.newest == head(ns, db).version and sound.seconds > 0
    assert sound.chunks == len(chunk_objects(target_url))
    target = backup.open_target(target_url)
    victims = chunk_objects(target_url)[:2]
    for key in victims:
        target.put_object(key, b"rot")
    damaged = backup.verify(db, from_=target_url)
    assert not damaged.ok and damaged.chunks == sound.chunks - 2
    for key in victims:
        assert any(key.rpartition("/")[2] in p for p in damaged.problems)


def test_a_large_file_restores_through_a_chain_longer_than_32_deltas(ns, target_url):
    from dolite.backup.manifest import full_every, load

    commit(ns, "big", "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 450) "
           "INSERT INTO t(v) SELECT randomblob(3000) FROM n")
    backup.push(ns, "big", to=target_url)
    assert full_every(head(ns, "big").chunk_count) > FULL_EVERY + 5
    for i in range(FULL_EVERY + 5):
        commit(ns, "big", f"UPDATE t SET v = randomblob(3000) WHERE id = {i * 7 + 1}")
    backup.push(ns, "big", to=target_url)
    target = backup.open_target(target_url)
    known = listing(target, "big")
    assert load(target, "big", known[max(known)][1]).depth == FULL_EVERY + 5
    backup.restore("big", from_=target_url, storage=ns, into="copy")
    assert file_of(ns, "copy") == file_of(ns, "big")


def test_a_full_copy_that_a_writer_overwrote_in_place_meanwhile_starts_again(ns, target_url):
    conn = connect("z", ns, retention=0.0)  # retention 0: commits write in place
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30) "
                 "INSERT INTO t(v) SELECT randomblob(3000) FROM n")
    conn.commit()
    rewrites = []

    def progress(done, total):  # the push's store is not the writer's: nothing pins its head
        if not rewrites:
            conn.execute("UPDATE t SET v = randomblob(3000)")  # every chunk, in place
            conn.commit()
            rewrites.append(done)

    result = backup.push(ns, "z", to=target_url, progress=progress)
    conn.close()
    assert rewrites == [1] and result.full_snapshot and result.version == head(ns, "z").version
    backup.restore("z", from_=target_url, storage=ns, into="z2")
    assert file_of(ns, "z2") == file_of(ns, "z")
