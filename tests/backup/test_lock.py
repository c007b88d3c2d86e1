"""The per-database backup lock: a push and a prune (or two pushes) of one database never
overlap, on every target kind. The second one gets a clear error and changes nothing; a
lock left by a dead or stalled holder is taken over; a holder that lost its lease stops
before writing another manifest or deleting another batch."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time

import pytest

from dolite import backup
from dolite.backup.errors import BackupError, CorruptBackup
from dolite.errors import NotSupportedError
from dolite.sql.dbapi import connect


def commits(ns, count, *, push_to=None):
    """``count`` commits to ``db``, each changing a few chunks; each pushed if ``push_to``."""
    conn = connect("db", ns)
    conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.commit()
    for _ in range(count):
        conn.execute("INSERT INTO t(v) VALUES (randomblob(5000))")
        conn.commit()
        if push_to:
            backup.push(ns, "db", to=push_to)
    conn.close()


def stored(url) -> list[str]:
    """Every manifest and chunk key of ``db`` (not the lock)."""
    target = backup.open_target(url)
    return target.list("db/manifests/") + target.list("db/chunks/")


class GatedTarget:
    """The target at ``url``, except that the first ``put_object``/``delete`` for which
    ``gate(method, key)`` holds sets ``reached`` and then waits for ``go`` (after doing the
    call if ``after``). Records every ``(method, key)`` written or deleted."""

    def __init__(self, url, gate, *, after=False):
        self.inner, self.gate, self.after = backup.open_target(url), gate, after
        self.url = self.inner.url
        self.reached, self.go = threading.Event(), threading.Event()
        self.writes: list[tuple[str, str]] = []

    def put_object(self, key, data):
        self._pass("put_object", key, lambda: self.inner.put_object(key, data))

    def delete(self, keys):
        self._pass("delete", keys[0] if keys else "", lambda: self.inner.delete(keys))

    def _pass(self, method, key, call):
        gated = not self.reached.is_set() and self.gate(method, key)
        if gated and not self.after:
            self._wait()
        call()
        self.writes.append((method, key))
        if gated and self.after:
            self._wait()

    def _wait(self):
        self.reached.set()
        assert self.go.wait(60), "the test never opened the gate"

    def __getattr__(self, attr):  # get_object, exists, list, and the lock primitives
        return getattr(self.inner, attr)


class Background(threading.Thread):
    """``fn()`` in a thread; ``outcome()`` re-raises its exception or returns its result."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc

    def outcome(self):
        self.join(60)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


@pytest.mark.parametrize("second", ["prune", "push"])
def test_a_push_in_progress_refuses_a_prune_or_another_push(ns, target_url, second):
    commits(ns, 3, push_to=target_url)
    commits(ns, 3)
    gated = GatedTarget(target_url, lambda method, key: method == "put_object")
    first = Background(lambda: backup.push(ns, "db", to=gated))
    assert gated.reached.wait(60)
    before = stored(target_url)
    with pytest.raises(BackupError) as refused:
        if second == "prune":
            backup.prune("db", from_=target_url, keep=0, now=1e12)
        else:
            backup.push(ns, "db", to=target_url)
    message = str(refused.value)
    assert all(word in message for word in ("locked", "push", f"pid {os.getpid()}", "since", "until", "retry"))
    assert stored(target_url) == before
    gated.go.set()
    assert len(first.outcome().versions) == 3
    assert backup.verify("db", from_=target_url).ok


def test_a_prune_in_progress_refuses_a_push(ns, target_url):
    commits(ns, 2, push_to=target_url)
    commits(ns, 2)
    backup.open_target(target_url).put_object("db/chunks/0rphan", b"left by an interrupted push")
    gated = GatedTarget(target_url, lambda method, key: method == "delete")
    pruning = Background(lambda: backup.prune("db", from_=gated, keep=0, now=1e12))
    assert gated.reached.wait(60)
    before = stored(target_url)
    with pytest.raises(BackupError, match=r"locked by prune .* until .* retry"):
        backup.push(ns, "db", to=target_url)
    assert stored(target_url) == before
    gated.go.set()
    assert pruning.outcome()[0].chunks_deleted == 1
    assert len(backup.push(ns, "db", to=target_url).versions) == 2
    assert backup.verify("db", from_=target_url).ok


def test_an_expired_lock_is_taken_over_and_its_old_holder_stops(ns, target_url):
    from dolite.backup import lock

    commits(ns, 2, push_to=target_url)
    target = backup.open_target(target_url)
    stalled = lock.acquire(target, "db", "prune", now=time.time() - 2 * lock.LEASE_SECONDS)
    commits(ns, 1)
    assert len(backup.push(ns, "db", to=target_url).versions) == 1
    with pytest.raises(BackupError, match="lost"):
        stalled.check()
    stalled.release()  # lost: releases nothing, and does not fail
    assert len(backup.prune("db", from_=target_url, keep=0, now=1e12)) == 1


def test_a_lock_of_a_dead_process_on_this_machine_is_taken_over_at_once(ns, target_url, tmp_path):
    from dolite.backup import lock

    commits(ns, 2, push_to=target_url)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target, key = backup.open_target(target_url), lock.lock_key("db")

    def left_by(**fields):
        """The lock as a push of another process left it."""
        record = dataclasses.replace(lock.Holder.mine("push", time.time()), **fields)
        assert target.replace_if(key, record.encode(), target.get_tagged(key)[1])

    left_by(pid=dead.pid)
    commits(ns, 1)
    assert len(backup.push(ns, "db", to=target_url).versions) == 1
    # the same from another machine (its pids mean nothing here) blocks until it expires
    left_by(pid=dead.pid, machine="elsewhere", host="elsewhere")
    with pytest.raises(BackupError, match="locked by push"):
        backup.push(ns, "db", to=target_url)


def test_a_push_that_lost_its_lease_stops_before_its_next_manifest(ns, target_url):
    from dolite.backup import lock

    commits(ns, 1, push_to=target_url)
    commits(ns, 3)
    gated = GatedTarget(target_url, lambda method, key: "/manifests/" in key, after=True)
    pushing = Background(lambda: backup.push(ns, "db", to=gated))
    assert gated.reached.wait(60)
    # another process whose clock says the push's lease has expired takes the lock over
    other = lock.acquire(backup.open_target(target_url), "db", "prune", now=time.time() + 2 * lock.LEASE_SECONDS)
    gated.go.set()
    with pytest.raises(BackupError, match="lost"):
        pushing.outcome()
    assert sum("/manifests/" in key for _, key in gated.writes) == 1
    other.release()
    assert backup.verify("db", from_=target_url).ok
    assert len(backup.push(ns, "db", to=target_url).versions) == 2


def test_a_prune_that_lost_its_lease_stops_before_its_next_delete_batch(ns, target_url, monkeypatch):
    from dolite.backup import lock

    monkeypatch.setattr(sys.modules["dolite.backup.prune"], "DELETE_BATCH", 1)  # the module, not backup.prune()
    commits(ns, 1, push_to=target_url)
    target = backup.open_target(target_url)
    for name in ("0rphan1", "0rphan2"):
        target.put_object(f"db/chunks/{name}", b"left by an interrupted push")
    gated = GatedTarget(target_url, lambda method, key: method == "delete", after=True)
    pruning = Background(lambda: backup.prune("db", from_=gated, keep=0, now=1e12))
    assert gated.reached.wait(60)
    other = lock.acquire(target, "db", "push", now=time.time() + 2 * lock.LEASE_SECONDS)
    gated.go.set()
    with pytest.raises(BackupError, match="lost"):
        pruning.outcome()
    assert gated.writes == [("delete", "db/chunks/0rphan1")]
    assert target.exists("db/chunks/0rphan2")
    other.release()


def test_lock_primitives(target_url):
    target = backup.open_target(target_url)
    assert target.get_tagged("db/lock.json") is None
    assert target.replace_if("db/lock.json", b"x", "no-such-tag") is None
    assert target.get_object("db/lock.json") is None
    tag = target.put_if_absent("db/lock.json", b"1")
    assert tag and target.put_if_absent("db/lock.json", b"2") is None
    assert target.get_tagged("db/lock.json") == (b"1", tag)
    new = target.replace_if("db/lock.json", b"3", tag)
    assert new and new != tag and target.get_tagged("db/lock.json") == (b"3", new)
    assert target.replace_if("db/lock.json", b"4", tag) is None  # stale tag: nothing written
    assert target.get_object("db/lock.json") == b"3"
    assert target.list("db/") == ["db/lock.json"]


def test_concurrent_conditional_writes_to_a_folder_have_one_winner(tmp_path):
    target = backup.open_target(f"file://{tmp_path}")
    barrier = threading.Barrier(8)

    def put(i):
        barrier.wait()
        return target.put_if_absent("db/lock.json", b"%d" % i)

    won = [t.outcome() for t in [Background(lambda i=i: put(i)) for i in range(8)]]
    assert sum(tag is not None for tag in won) == 1
    _, tag = target.get_tagged("db/lock.json")

    def replace(i):
        barrier.wait()
        return target.replace_if("db/lock.json", b"r%d" % i, tag)

    won = [t.outcome() for t in [Background(lambda i=i: replace(i)) for i in range(8)]]
    assert sum(new is not None for new in won) == 1


def test_a_damaged_lock_is_refused_not_ignored(ns, target_url):
    commits(ns, 1)
    backup.open_target(target_url).put_if_absent("db/lock.json", b"garbage")
    with pytest.raises(CorruptBackup, match="lock"):
        backup.push(ns, "db", to=target_url)
    assert stored(target_url) == []


def test_a_target_without_conditional_writes_is_refused(ns, tmp_path):
    class Plain:
        url = "plain://"

        def __init__(self):
            self.inner = backup.open_target(f"file://{tmp_path}")

        def put_object(self, key, data):
            self.inner.put_object(key, data)

        def list(self, prefix):
            return self.inner.list(prefix)

    commits(ns, 1)
    with pytest.raises(NotSupportedError, match="put_if_absent"):
        backup.push(ns, "db", to=Plain())
    assert stored(f"file://{tmp_path}") == []
