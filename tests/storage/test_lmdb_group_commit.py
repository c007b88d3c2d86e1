"""Group commit in the LMDB backend: concurrent commits share one LMDB write transaction
and its syncs, yet each keeps the contract (atomic, its own expect, durable on return)."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest

from dolite.errors import Conflict, LimitExceeded, StorageError
from dolite.storage.lmdb import LMDB_LIMITS, LmdbNamespace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ns(tmp_path):
    namespace = LmdbNamespace(str(tmp_path / "lmdb"))
    yield namespace
    namespace._env.close()


def _run_threads(count: int, target) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i):
        start.wait()
        try:
            target(i)
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "a committer hung"
    if errors:
        raise errors[0]


def _increment(store, key: str) -> int:
    """One CAS increment; returns the number of conflicts it retried."""
    conflicts = 0
    while True:
        old = store.get([key]).get(key)
        new = str(int(old or b"0") + 1).encode()
        try:
            store.commit({key: new}, expect={key: old})
            return conflicts
        except Conflict:
            conflicts += 1


class _WriteLockHeld:
    """Holds LMDB's write lock from another thread so that committers pile up in a queue,
    making group membership deterministic."""

    def __init__(self, ns: LmdbNamespace):
        self.ns = ns
        self.taken = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def _hold(self):
        txn = self.ns._env.begin(write=True)
        self.taken.set()
        self.release.wait(60)
        txn.abort()

    def __enter__(self):
        self.thread.start()
        assert self.taken.wait(10)
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.thread.join(10)


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def _start(target, *args) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = target(*args)
        except BaseException as exc:  # noqa: BLE001 (inspected by the test)
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


# -- concurrency: no lost update, conflicts only where expected ---------------------------


def test_cas_increments_on_different_keys_never_conflict(ns):
    threads, rounds = 8, 60
    stores = [ns.object(f"db{i % 4}") for i in range(threads)]  # two threads per object
    conflicts = [0] * threads

    def work(i):
        for _ in range(rounds):
            conflicts[i] += _increment(stores[i], f"counter-{i}")

    _run_threads(threads, work)
    assert conflicts == [0] * threads
    for i in range(threads):
        assert stores[i].get([f"counter-{i}"]) == {f"counter-{i}": str(rounds).encode()}
    assert ns.group_stats["max_group"] > 1, "the commits were never grouped"


def test_cas_increments_on_the_same_key_lose_nothing(ns):
    threads, rounds = 8, 40
    store = ns.object("shared")
    conflicts = [0] * threads

    def work(i):
        for _ in range(rounds):
            conflicts[i] += _increment(store, "counter")

    _run_threads(threads, work)
    assert store.get(["counter"]) == {"counter": str(threads * rounds).encode()}
    assert sum(conflicts) > 0  # real contention happened, and was refused, not lost


def test_new_objects_created_concurrently_get_distinct_ids(ns):
    threads = 16

    def work(i):
        ns.object(f"new-{i}").put({"k": f"v{i}".encode()})

    _run_threads(threads, work)
    assert ns.names() == sorted(f"new-{i}" for i in range(threads))
    ids = {ns._lookup_id(f"new-{i}") for i in range(threads)}
    assert len(ids) == threads
    ns._env.close()
    reopened = LmdbNamespace(ns.path)  # nothing cached: ids read back from the file
    for i in range(threads):
        assert reopened.object(f"new-{i}").list() == {"k": f"v{i}".encode()}
    reopened._env.close()


# -- a group with a failing request -------------------------------------------------------


def _record_groups(ns) -> list[list[tuple]]:
    """Make ``ns`` record each group it runs: (object, written keys) per request."""
    groups: list[list[tuple]] = []
    run = ns._run_group

    def recording(group):
        groups.append([(r.storage._name, tuple(sorted(r.writes)) or tuple(r.deletes)) for r in group])
        run(group)

    ns._run_group = recording
    return groups


def _queue_in_order(ns, groups, lead, calls):
    """Start ``lead`` (it becomes the leader and blocks on the held write lock), then each
    of ``calls`` in turn, each queued before the next starts."""
    started = [_start(*lead)]
    _wait_for(lambda: len(groups) == 1)  # the leader took its group: just itself
    for i, call in enumerate(calls):
        started.append(_start(*call))
        _wait_for(lambda i=i: len(ns._queue) == i + 1)
    return started


def test_bad_expect_in_the_middle_of_a_group_fails_only_that_request(ns):
    groups = _record_groups(ns)
    a, b, c = ns.object("a"), ns.object("b"), ns.object("c")
    b.put({"x": b"1"})
    groups.clear()
    with _WriteLockHeld(ns):
        started = _queue_in_order(ns, groups, (a.commit, {"first": b"1"}), [
            (a.commit, {"second": b"2"}),
            (b.commit, {"x": b"2", "y": b"2"}, ["x"], {"x": b"wrong"}),  # refused
            (b.commit, {"z": b"3"}, (), {"x": b"1"}),  # x unchanged by the refused one
            (c.commit, {"k": b"4"}, (), {"k": None}),  # a new object
            (b.delete, ["nope", "x"]),  # deletes x
        ])
    for thread, _ in started:
        thread.join(30)
    outcomes = [outcome for _, outcome in started]
    assert isinstance(outcomes[2].get("error"), Conflict)
    assert [o.get("error") for i, o in enumerate(outcomes) if i != 2] == [None] * 5
    assert outcomes[5]["result"] == 1
    assert groups == [[("a", ("first",))],
                      [("a", ("second",)), ("b", ("x", "y")), ("b", ("z",)), ("c", ("k",)),
                       ("b", ("nope", "x"))]]
    assert a.list() == {"first": b"1", "second": b"2"}
    assert b.list() == {"z": b"3"}
    assert c.list() == {"k": b"4"}
    ns._env.close()
    reopened = LmdbNamespace(ns.path)
    assert reopened.object("b").list() == {"z": b"3"}
    assert reopened.object("c").list() == {"k": b"4"}
    reopened._env.close()


def test_followers_see_earlier_requests_of_their_group(ns):
    groups = _record_groups(ns)
    store = ns.object("serial")
    with _WriteLockHeld(ns):
        started = _queue_in_order(ns, groups, (store.put, {"warmup": b"1"}), [
            (store.commit, {"k": b"1"}, (), {"k": None}),
            (store.commit, {"k": b"2"}, (), {"k": None}),  # k exists by then: refused
            (store.commit, {"k": b"3"}, (), {"k": b"1"}),
        ])
    for thread, _ in started:
        thread.join(30)
    outcomes = [outcome for _, outcome in started]
    assert "error" not in outcomes[1] and "error" not in outcomes[3]
    assert isinstance(outcomes[2].get("error"), Conflict)
    assert [len(g) for g in groups] == [1, 3]
    assert store.get(["k"]) == {"k": b"3"}


def test_an_error_inside_a_group_fails_only_its_request(ns, monkeypatch):
    """Not only Conflict: any error while applying one request (here a value that is not
    bytes, slipped past the checks) is that request's alone."""
    groups = _record_groups(ns)
    store = ns.object("errors")
    with _WriteLockHeld(ns):
        started = _queue_in_order(ns, groups, (store.put, {"a": b"1"}), [
            (store.put, {"b": b"2"}),
            (store.put, {"c": b"3"}),
            (store.put, {"d": b"4"}),
        ])
        # corrupt the middle queued request after its checks passed
        ns._queue[1].writes = {"c": object()}
    for thread, _ in started:
        thread.join(30)
    outcomes = [outcome for _, outcome in started]
    assert isinstance(outcomes[2].get("error"), TypeError)
    assert [o.get("error") for i, o in enumerate(outcomes) if i != 2] == [None] * 3
    assert store.list() == {"a": b"1", "b": b"2", "d": b"4"}


def test_map_full_in_one_request_fails_only_that_request(tmp_path):
    """An LMDB error while applying one request of a group (here the map is full) aborts
    that request's nested transaction only; the group still commits the others."""
    ns = LmdbNamespace(str(tmp_path / "small"), map_size=2 << 20)
    try:
        groups = _record_groups(ns)
        store = ns.object("full")
        huge = {f"h{i}": b"x" * 100_000 for i in range(40)}  # 4 MB: within the limits, not the map
        with _WriteLockHeld(ns):
            started = _queue_in_order(ns, groups, (store.put, {"a": b"1"}), [
                (store.put, {"b": b"2"}),
                (store.put, huge),
                (store.put, {"c": b"3"}),
            ])
        for thread, _ in started:
            thread.join(30)
        outcomes = [outcome for _, outcome in started]
        assert isinstance(outcomes[2].get("error"), StorageError)
        assert [o.get("error") for i, o in enumerate(outcomes) if i != 2] == [None] * 3
        assert [len(g) for g in groups] == [1, 3]
        assert store.list() == {"a": b"1", "b": b"2", "c": b"3"}
    finally:
        ns._env.close()


class _InterruptedWait:
    """A follower's wake lock whose wait is interrupted (as KeyboardInterrupt does), either
    at once (still queued) or just after the leader released it (``after_wake``)."""

    def __init__(self, after_wake: bool):
        self.lock = _thread.allocate_lock()
        self.after_wake = after_wake
        self.calls = 0

    def acquire(self):
        self.calls += 1
        if self.calls == 1:  # taken by _submit itself, before waiting
            return self.lock.acquire()
        if self.after_wake:
            self.lock.acquire()
        raise KeyboardInterrupt

    def release(self):
        self.lock.release()


def _interrupt_thread(monkeypatch, name: str, after_wake: bool) -> None:
    from dolite.storage import lmdb_group as module

    def allocate_lock():
        if threading.current_thread().name == name:
            return _InterruptedWait(after_wake)
        return _thread.allocate_lock()

    monkeypatch.setattr(module, "_thread", types.SimpleNamespace(allocate_lock=allocate_lock))


@pytest.mark.parametrize("after_wake", [False, True])
def test_an_interrupted_follower_never_stalls_the_queue(ns, monkeypatch, after_wake):
    """Interrupted while queued, a follower is withdrawn and writes nothing; interrupted
    just as it was promoted to lead, it still leads its group before raising."""
    groups = _record_groups(ns)
    store = ns.object("interrupted")
    _interrupt_thread(monkeypatch, "victim", after_wake)
    with _WriteLockHeld(ns):
        lead = _start(store.put, {"a": b"1"})
        _wait_for(lambda: len(groups) == 1)
        victim = threading.Thread(target=lambda: victim_outcome.update(_catch(store.put, {"v": b"1"})),
                                  name="victim")
        victim_outcome: dict = {}
        victim.start()
        if after_wake:
            _wait_for(lambda: len(ns._queue) == 1)
        else:
            victim.join(10)
        other = _start(store.put, {"w": b"1"})
        _wait_for(lambda: len(ns._queue) == (2 if after_wake else 1))
    for thread in (lead[0], victim, other[0]):
        thread.join(30)
        assert not thread.is_alive()
    assert isinstance(victim_outcome.get("error"), KeyboardInterrupt)
    assert "error" not in other[1]
    if after_wake:  # promoted: it led [victim, other]
        assert store.list() == {"a": b"1", "v": b"1", "w": b"1"}
        assert [len(g) for g in groups] == [1, 2]
    else:  # withdrawn before any group took it
        assert store.list() == {"a": b"1", "w": b"1"}
        assert [len(g) for g in groups] == [1, 1]
    assert not ns._leading and not ns._queue


def _catch(target, *args) -> dict:
    try:
        return {"result": target(*args)}
    except BaseException as exc:  # noqa: BLE001 (inspected by the test)
        return {"error": exc}


def test_limit_exceeded_is_raised_before_anything_is_queued_or_written(ns):
    store = ns.object("limits")
    too_big = b"x" * (LMDB_LIMITS.max_value_bytes + 1)
    too_many = {f"k{i}": b"v" for i in range(LMDB_LIMITS.max_keys_per_call + 1)}
    with _WriteLockHeld(ns):
        lead = _start(store.put, {"ok": b"1"})
        _wait_for(lambda: ns._leading)
        # a group is in progress and blocked, yet these fail at once, in the caller
        with pytest.raises(LimitExceeded):
            store.commit({"good": b"1", "big": too_big})
        with pytest.raises(LimitExceeded):
            store.commit(too_many)
        with pytest.raises(LimitExceeded):
            store.commit({"k" * (LMDB_LIMITS.max_key_bytes + 1): b"1"})
        assert len(ns._queue) == 0
    lead[0].join(30)
    assert store.list() == {"ok": b"1"}


# -- durability and processes -------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import os, sys, threading
    from dolite.errors import Conflict
    from dolite.storage.lmdb import LmdbNamespace

    ns = LmdbNamespace(sys.argv[1])
    threads = int(sys.argv[2])

    def work(t):
        store, shared = ns.object(f"obj{t % 4}"), ns.object("shared")
        i = 0
        while True:
            i += 1
            store.put({f"t{t}/{i}": str(i).encode()})
            os.write(1, f"put {t} {i}\\n".encode())
            while True:
                old = shared.get(["n"]).get("n")
                new = int(old or b"0") + 1
                try:
                    shared.commit({"n": str(new).encode()}, expect={"n": old})
                except Conflict:
                    continue
                os.write(1, f"cas {new}\\n".encode())
                break

    for t in range(threads):
        threading.Thread(target=work, args=(t,), daemon=True).start()
    threading.Event().wait()
""")


def _child(path: str, threads: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", _CHILD, path, str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)


def test_sigkill_while_many_threads_commit_loses_no_returned_commit(tmp_path):
    path = str(tmp_path / "lmdb")
    for _round in range(3):
        proc = _child(path, 8)
        acked = 0
        while acked < 400:
            line = proc.stdout.readline()
            assert line, proc.stderr.read().decode()
            acked += 1
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err.decode()
        puts, cas = [], [0]
        for line in out.decode().splitlines():
            parts = line.split()
            if parts[:1] == ["put"] and len(parts) == 3:
                puts.append((int(parts[1]), int(parts[2])))
            elif parts[:1] == ["cas"] and len(parts) == 2:
                cas.append(int(parts[1]))
        ns = LmdbNamespace(path)
        try:
            for t, i in puts:
                assert ns.object(f"obj{t % 4}").get([f"t{t}/{i}"]) == {f"t{t}/{i}": str(i).encode()}
            counter = int(ns.object("shared").get(["n"])["n"])
            assert counter >= max(cas)
        finally:
            ns._env.close()


def test_processes_sharing_a_directory_lose_no_update(tmp_path):
    path = str(tmp_path / "lmdb")
    LmdbNamespace(path)._env.close()
    script = textwrap.dedent("""
        import sys, threading
        from dolite.errors import Conflict
        from dolite.storage.lmdb import LmdbNamespace
        ns = LmdbNamespace(sys.argv[1])
        store = ns.object("shared")
        def work():
            for _ in range(50):
                while True:
                    old = store.get(["n"]).get("n")
                    try:
                        store.commit({"n": str(int(old or b"0") + 1).encode()}, expect={"n": old})
                        break
                    except Conflict:
                        pass
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, path], env=env, cwd=ROOT,
                              stderr=subprocess.PIPE) for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    ns = LmdbNamespace(path)
    try:
        assert ns.object("shared").get(["n"]) == {"n": str(3 * 4 * 50).encode()}
    finally:
        ns._env.close()
