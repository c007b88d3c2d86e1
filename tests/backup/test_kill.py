"""kill -9 during a push and during a restore: the backup stays restorable, and a restore
never leaves a half (or empty) database visible under its target name. A few trials at
random moments; many more with DOLITE_TORTURE=long."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dolite import backup
from dolite.ops.admin import list_databases
from dolite.ops.snapshot import iter_export
from dolite.pages import PageStore
from dolite.pages.format import LEASE
from dolite.sql.dbapi import connect
from dolite.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 12 if os.environ.get("DOLITE_TORTURE") == "long" else 3

CHILD = """
import sys, time
from dolite import backup
storage, target, what = sys.argv[1:4]
print("go", flush=True)
started = time.perf_counter()
if what == "push":
    backup.push(storage, "db", to=target)
else:
    backup.restore("db", from_=target, storage=storage, into=sys.argv[4])
print(time.perf_counter() - started, flush=True)
"""


def child(*args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "go"
    return proc


def run_to_end(*args: str) -> float:
    """Run a child uninterrupted; how long its work took (seconds)."""
    proc = child(*args)
    took = float(proc.stdout.readline())
    assert proc.wait(60) == 0
    return took


def kill_at_random(rng: random.Random, duration: float, *args: str) -> None:
    proc = child(*args)
    time.sleep(rng.uniform(0, duration))
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()


def file_of(ns, name, version=None) -> bytes:
    return b"".join(iter_export(ns, name, version=version))


@pytest.fixture
def setup(tmp_path):
    """An LMDB store whose database ``db`` has a long history (big first commit, then
    many small ones), and an empty file:// target."""
    storage, folder = f"lmdb:{tmp_path / 'store'}", tmp_path / "backups"
    folder.mkdir()
    ns = open_storage(storage)
    conn = connect("db", ns)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) "
                 "INSERT INTO t(v) SELECT randomblob(3000) FROM n")
    conn.commit()
    for i in range(80):
        conn.execute("UPDATE t SET v = randomblob(3000) WHERE id = ?", (i * 5 + 1,))
        conn.commit()
    conn.close()
    yield ns, storage, f"file://{folder}"
    ns.close()


def test_kill_during_push_leaves_a_restorable_backup(setup):
    ns, storage, target = setup
    rng = random.Random(os.environ.get("DOLITE_SEED", "13"))
    probe = Path(target.removeprefix("file://")).parent / "probe"
    probe.mkdir()
    duration = run_to_end(storage, f"file://{probe}", "push")  # how long a whole push takes
    for trial in range(TRIALS):
        kill_at_random(rng, duration, storage, target, "push")
        if backup.list_versions("db", from_=target):
            assert backup.verify("db", from_=target).ok, f"trial {trial}: the backup is damaged"
        conn = connect("db", ns)
        conn.execute("UPDATE t SET v = randomblob(3000) WHERE id = ?", (trial + 2,))
        conn.commit()
        conn.close()
    result = backup.push(ns, "db", to=target)  # resumes
    assert result.version == PageStore(ns.object("db"), "db").read_head().version
    versions = [v.version for v in backup.list_versions("db", from_=target)]
    for n, v in enumerate(rng.sample(versions, min(4, len(versions))) + versions[-1:]):
        backup.restore("db", from_=target, storage=ns, into=f"r{n}", version=v)
        assert file_of(ns, f"r{n}") == file_of(ns, "db", version=v)


def test_kill_during_restore_never_shows_a_partial_database(setup):
    ns, storage, target = setup
    backup.push(ns, "db", to=target)
    rng = random.Random(os.environ.get("DOLITE_SEED", "13"))
    duration = run_to_end(storage, target, "restore", "probe")
    expected = file_of(ns, "db")
    seen = set()
    for trial in range(TRIALS):
        into = f"r{trial}"
        kill_at_random(rng, duration, storage, target, "restore", into)
        store = PageStore(ns.object(into), into)
        if store.exists():
            seen.add("complete")
            assert file_of(ns, into) == expected, f"trial {trial}: a partial database is visible"
        else:
            seen.add("absent")
            assert into not in list_databases(ns)
            backup.restore("db", from_=target, storage=ns, into=into)  # leftovers do not block it
            assert file_of(ns, into) == expected
    assert seen  # which outcomes occurred depends on the random moments


class Died(BaseException):
    """The process died here (nothing after it runs: not even cleanup)."""


class DyingNamespace:
    """``inner``, except that database ``victim``'s storage dies at its ``at``-th write
    (put, delete or commit) and refuses every call after it, like a killed process."""

    def __init__(self, inner, victim: str, at: int):
        self.inner, self.victim, self.at, self.writes, self.dead = inner, victim, at, 0, False

    def object(self, name):
        return _Dying(self, self.inner.object(name)) if name == self.victim else self.inner.object(name)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


class _Dying:
    def __init__(self, ns: DyingNamespace, inner):
        self.ns, self.inner = ns, inner

    def _write(self, method, *args, **kwargs):
        self.ns.writes += 1
        if self.ns.dead or self.ns.writes >= self.ns.at:
            self.ns.dead = True
            raise Died()
        return method(*args, **kwargs)

    def put(self, *args, **kwargs):
        return self._write(self.inner.put, *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._write(self.inner.delete, *args, **kwargs)

    def commit(self, *args, **kwargs):
        return self._write(self.inner.commit, *args, **kwargs)

    def __getattr__(self, attr):
        if self.ns.dead:
            raise Died()
        return getattr(self.inner, attr)


def test_a_restore_dying_at_any_write_leaves_nothing_visible(ns, tmp_path):
    """Every crash point of a restore, deterministically: before each of its writes."""
    folder = tmp_path / "b"
    folder.mkdir()
    conn = connect("db", ns)
    conn.execute("CREATE TABLE t(v BLOB)")
    conn.execute("INSERT INTO t SELECT randomblob(3000) FROM (SELECT 1 UNION SELECT 2 UNION SELECT 3)")
    conn.commit()
    conn.close()
    backup.push(ns, "db", to=f"file://{folder}")
    expected = file_of(ns, "db")
    at, completed = 1, []
    while True:
        dying = DyingNamespace(ns, "copy", at)
        try:
            backup.restore("db", from_=f"file://{folder}", storage=dying, into="copy")
        except Died:
            if PageStore(ns.object("copy"), "copy").exists():  # died after the head: complete
                assert file_of(ns, "copy") == expected, f"partial database visible after dying at write {at}"
                completed.append(at)
                ns.drop("copy")
            assert "copy" not in list_databases(ns)
            # The dead writer's lease: another process would see its pid gone (holder_is_gone);
            # in this one (the same pid) it has to be removed by hand.
            ns.object("copy").delete([LEASE])
            at += 1
            continue
        break
    assert at > 3 and file_of(ns, "copy") == expected
    assert completed and min(completed) == at - len(completed), "visible before its last write"
    ns.drop("copy")
    backup.restore("db", from_=f"file://{folder}", storage=ns, into="copy")
    assert file_of(ns, "copy") == expected
