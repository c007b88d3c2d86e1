"""The cluster API: routing, the shard map, transactions (own writes, rollback, atomic
view), execute_all's atomicity, and deadlocks that end in Conflict, never a hang."""

from __future__ import annotations

import threading

import pytest

import dolite
from dolite.cluster import coordinator
from dolite.cluster import map as shardmap
from dolite.pages import twophase
from dolite.storage import open_storage
from tests.torture.faulty import FaultyNamespace


@pytest.fixture
def ns(tmp_path):
    return open_storage(f"lmdb:{tmp_path}/lmdb")


@pytest.fixture
def bank(ns):
    c = dolite.cluster("bank", storage=ns, shards=4, timeout=1.0)
    c.execute_all("CREATE TABLE IF NOT EXISTS acct(id TEXT PRIMARY KEY, bal INTEGER)")
    for name in ("alice", "bob", "carol", "dave", "erin"):
        c.execute("INSERT INTO acct VALUES (?, ?)", (name, 100), key=name)
    yield c
    c.close()


def _two_keys_on_different_shards(c) -> tuple[str, str]:
    first = "alice"
    other = next(k for k in ("bob", "carol", "dave", "erin") if c.shard_for(k) != c.shard_for(first))
    return first, other


def test_the_slot_hash_is_stable_and_not_pythons_hash():
    assert [shardmap.slot_of(k) for k in ("alice", b"alice", 42, "")] == \
        [shardmap.slot_of("alice"), shardmap.slot_of("alice"), shardmap.slot_of("42"), shardmap.slot_of("")]
    assert shardmap.slot_of("alice") == 649  # the same in every process and release
    with pytest.raises(TypeError):
        shardmap.slot_of(1.5)


def test_a_row_lives_on_the_shard_its_key_routes_to(bank, ns):
    shard = bank.shard_for("alice")
    direct = dolite.connect(shard, storage=ns, create=False, check_same_thread=False)
    try:
        assert direct.execute("SELECT bal FROM acct WHERE id = 'alice'").fetchall() == [(100,)]
    finally:
        direct.close()
    assert sorted(bank.query_all("SELECT id FROM acct")) == [(k,) for k in ("alice", "bob", "carol", "dave", "erin")]


def test_another_opening_sees_the_same_map_and_refuses_a_different_count(bank, ns):
    again = dolite.cluster("bank", storage=ns)
    assert again.map == bank.map
    assert again.execute("SELECT bal FROM acct WHERE id = ?", ("carol",), key="carol").fetchone() == (100,)
    again.close()
    with pytest.raises(dolite.ProgrammingError, match="4 shards"):
        dolite.cluster("bank", storage=ns, shards=5)
    with pytest.raises(dolite.DatabaseNotFound):
        dolite.cluster("nothere", storage=ns)


def test_the_map_changes_only_by_compare_and_set(bank, ns):
    storage = ns.object(shardmap.map_object("bank"))
    moved = bank.map.moved([0, 1], bank.map.shards[-1])
    shardmap.replace_map(storage, bank.map, moved)
    with pytest.raises(dolite.Conflict):
        shardmap.replace_map(storage, bank.map, bank.map.moved([2], bank.map.shards[0]))
    assert shardmap.read_map(storage, "bank") == moved


def test_a_transaction_sees_its_own_writes_and_commits_atomically(bank, ns):
    a, b = _two_keys_on_different_shards(bank)
    with bank.transaction() as tx:
        tx.execute("UPDATE acct SET bal = bal - 10 WHERE id = ?", (a,), key=a)
        tx.execute("UPDATE acct SET bal = bal + 10 WHERE id = ?", (b,), key=b)
        assert tx.execute("SELECT bal FROM acct WHERE id = ?", (b,), key=b).fetchone() == (110,)
        assert tx.query_all("SELECT sum(bal) FROM acct") and \
            sum(r[0] or 0 for r in tx.query_all("SELECT sum(bal) FROM acct")) == 500
    assert bank.execute("SELECT bal FROM acct WHERE id = ?", (a,), key=a).fetchone() == (90,)
    assert bank.execute("SELECT bal FROM acct WHERE id = ?", (b,), key=b).fetchone() == (110,)
    coordinator.wait_for_applies()
    assert not ns.object("bank.txn").list()  # the decision is forgotten once applied everywhere
    for shard in bank.map.shards:
        assert not ns.object(shard).list(prefix="prepare/")


def test_an_exception_rolls_every_shard_back(bank):
    a, b = _two_keys_on_different_shards(bank)
    with pytest.raises(RuntimeError):
        with bank.transaction() as tx:
            tx.execute("UPDATE acct SET bal = 0 WHERE id = ?", (a,), key=a)
            tx.execute("UPDATE acct SET bal = 0 WHERE id = ?", (b,), key=b)
            raise RuntimeError("changed my mind")
    assert sorted(bank.query_all("SELECT bal FROM acct")) == [(100,)] * 5


def test_execute_all_is_all_or_nothing(bank, ns):
    victim = bank.map.shards[2]
    direct = dolite.connect(victim, storage=ns, create=False, check_same_thread=False)
    direct.execute("CREATE TABLE extra(x)")
    direct.commit()
    direct.close()
    with pytest.raises(dolite.OperationalError, match="already exists"):
        bank.execute_all("CREATE TABLE extra(x)")
    counts = bank.query_all("SELECT count(*) FROM sqlite_schema WHERE name = 'extra'")
    assert counts == [(0,), (0,), (1,), (0,)]


def test_a_single_shard_transaction_skips_two_phase_commit(bank, ns):
    with bank.transaction() as tx:
        tx.execute("UPDATE acct SET bal = 1 WHERE id = 'alice'", key="alice")
    assert not ns.object("bank.txn").list()


def test_shards_taken_in_opposite_orders_end_in_conflict_not_a_hang(bank):
    a, b = _two_keys_on_different_shards(bank)
    both_in = threading.Barrier(2)
    results: dict[str, object] = {}

    def transfer(first: str, second: str) -> None:
        try:
            with bank.transaction() as tx:
                tx.execute("UPDATE acct SET bal = bal - 1 WHERE id = ?", (first,), key=first)
                both_in.wait()
                tx.execute("UPDATE acct SET bal = bal + 1 WHERE id = ?", (second,), key=second)
            results[first] = "committed"
        except dolite.Conflict as exc:
            results[first] = exc

    threads = [threading.Thread(target=transfer, args=pair) for pair in ((a, b), (b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "deadlocked"
    assert any(isinstance(r, dolite.Conflict) for r in results.values()), results
    assert sum(r[0] for r in bank.query_all("SELECT sum(bal) FROM acct") if r[0]) == 500


def test_routing_needs_exactly_one_target(bank):
    with bank.transaction() as tx, pytest.raises(dolite.ProgrammingError):
        tx.execute("SELECT 1")
    with pytest.raises(dolite.ProgrammingError):
        dolite.cluster("bad", storage="memory:", shards=0)


class _Recorder:
    """A namespace that records every storage call (object, call, thread) and holds the
    shards' calls made after the decision until ``go`` is set."""

    def __init__(self, inner, coordinator_object: str):
        self.inner, self.url, self.limits = inner, inner.url, inner.limits
        self.coordinator_object = coordinator_object
        self.calls: list[tuple[str, str, int]] = []
        self.decided, self.go = threading.Event(), threading.Event()
        self.go.set()
        self.prepares: threading.Barrier | None = None  # set: shard commits must meet there

    def object(self, name: str):
        return _RecordingStorage(self, name, self.inner.object(name))

    def names(self):
        return self.inner.names()

    def drop(self, name):
        self.inner.drop(name)

    def close(self):
        pass


class _RecordingStorage:
    def __init__(self, recorder: _Recorder, name: str, inner):
        self.recorder, self.name, self.inner, self.limits = recorder, name, inner, inner.limits

    def _call(self, kind: str, call):
        rec = self.recorder
        if self.name != rec.coordinator_object and rec.decided.is_set():
            assert rec.go.wait(10)
        elif self.name != rec.coordinator_object and kind == "commit" and rec.prepares is not None:
            rec.prepares.wait()  # breaks (an error) unless every prepare is in flight at once
        rec.calls.append((self.name, kind, threading.get_ident()))
        result = call()
        if self.name == rec.coordinator_object and kind == "commit":
            rec.decided.set()
        return result

    def get(self, keys):
        return self._call("get", lambda: self.inner.get(keys))

    def put(self, entries):
        return self._call("put", lambda: self.inner.put(entries))

    def delete(self, keys):
        return self._call("delete", lambda: self.inner.delete(keys))

    def list(self, **kwargs):
        return self._call("list", lambda: self.inner.list(**kwargs))

    def commit(self, writes, deletes=(), expect=None):
        return self._call("commit", lambda: self.inner.commit(writes, deletes, expect))


def test_a_cross_shard_commit_answers_after_two_round_trips(ns):
    """Before the caller is answered: one call per shard (its prepare, all in flight at
    once), then the decision. The heads move afterwards."""
    rec = _Recorder(ns, "bank.txn")
    c = dolite.cluster("bank", storage=rec, shards=4)
    c.execute_all("CREATE TABLE acct(id TEXT PRIMARY KEY, bal INTEGER)")
    a, b = _two_keys_on_different_shards(c)
    for key in (a, b):
        c.execute("INSERT INTO acct VALUES (?, 100)", (key,), key=key)
    tx = c.transaction()
    tx.execute("UPDATE acct SET bal = bal - 1 WHERE id = ?", (a,), key=a)
    tx.execute("UPDATE acct SET bal = bal + 1 WHERE id = ?", (b,), key=b)
    coordinator.wait_for_applies()
    rec.calls.clear()
    rec.decided.clear()
    rec.go.clear()
    rec.prepares = threading.Barrier(2, timeout=10)
    tx.commit()
    answered = list(rec.calls)
    rec.go.set()
    coordinator.wait_for_applies()
    shard_calls = [(name, kind) for name, kind, _ in answered if name != "bank.txn"]
    assert sorted(shard_calls) == sorted([(c.shard_for(a), "commit"), (c.shard_for(b), "commit")])
    assert [(name, kind) for name, kind, _ in answered if name == "bank.txn"] == [("bank.txn", "commit")]
    assert answered[-1][0] == "bank.txn"  # the decision comes last
    assert sorted(c.query_all("SELECT bal FROM acct")) == [(99,), (101,)]
    c.close()


def test_batch_is_one_transaction_and_info_reports_the_shards(bank, ns):
    a, b = _two_keys_on_different_shards(bank)
    with pytest.raises(dolite.IntegrityError):
        bank.batch([(a, "UPDATE acct SET bal = 0 WHERE id = ?", (a,)),
                    (b, "INSERT INTO acct VALUES (?, 1)", (b,))])  # duplicate: nothing applies
    assert bank.execute("SELECT bal FROM acct WHERE id = ?", (a,), key=a).fetchone() == (100,)
    results = bank.batch([(a, "UPDATE acct SET bal = 1 WHERE id = ?", (a,)),
                          (b, "SELECT bal FROM acct WHERE id = ?", (b,))])
    assert results[0].rowcount == 1 and results[1].fetchall() == [(100,)]
    coordinator.wait_for_applies()  # else a head may still be moving (shown as in doubt)
    info = bank.info()
    assert [s["name"] for s in info["shards"]] == list(bank.map.shards)
    assert sum(s["slots"] for s in info["shards"]) == shardmap.SLOTS
    assert all(s["version"] > 0 and s["size"] > 0 and s["in_doubt"] == [] for s in info["shards"])
    assert info["stats"]["cross_shard_commits"] >= 1


def test_after_an_abort_no_connection_keeps_the_aborted_pages(ns, monkeypatch):
    """SQLite believes a prepared participant committed: after an abort its page cache
    holds the aborted pages, under the version number the next real commit will get."""
    ours = dolite.cluster("bank", storage=ns, shards=4, timeout=1.0)
    ours.execute_all("CREATE TABLE acct(id TEXT PRIMARY KEY, bal INTEGER)")
    a, b = _two_keys_on_different_shards(ours)
    for key in (a, b):
        ours.execute("INSERT INTO acct VALUES (?, 100)", (key,), key=key)
    real_decide = twophase.decide
    monkeypatch.setattr(twophase, "decide", lambda co, txn, state: real_decide(co, txn, twophase.ABORTED))
    with pytest.raises(dolite.Conflict, match="aborted"):
        with ours.transaction() as tx:
            tx.execute("UPDATE acct SET bal = 1 WHERE id = ?", (a,), key=a)
            tx.execute("UPDATE acct SET bal = 1 WHERE id = ?", (b,), key=b)
    monkeypatch.setattr(twophase, "decide", real_decide)
    other_process = dolite.cluster("bank", storage=FaultyNamespace(ns))  # its own page stores
    other_process.execute("UPDATE acct SET bal = 2 WHERE id = ?", (a,), key=a)
    other_process.close()
    with ours.transaction() as tx:
        assert tx.execute("SELECT bal FROM acct WHERE id = ?", (a,), key=a).fetchone() == (2,)
    ours.close()


@pytest.mark.parametrize("view", ["same", "other"])
def test_reads_are_monotonic_across_shards(ns, view):
    """A reader that saw one shard's head move for a transaction never then sees another
    participant without it: reading a then b, b is never behind (in this process's view
    of the stores, and in another one's: its own page stores, as another process has)."""
    c = dolite.cluster("mono", storage=ns, shards=2, timeout=2.0)
    c.execute_all("CREATE TABLE seq(id TEXT PRIMARY KEY, n INTEGER)")
    a, b = "k0", next(k for k in (f"k{i}" for i in range(1, 99)) if c.shard_for(k) != c.shard_for("k0"))
    c.batch([(a, "INSERT INTO seq VALUES (?, 0)", (a,)), (b, "INSERT INTO seq VALUES (?, 0)", (b,))])
    reader = c if view == "same" else dolite.cluster("mono", storage=FaultyNamespace(ns))
    done, seen = threading.Event(), []

    def read() -> None:
        while not done.is_set():
            na = reader.execute("SELECT n FROM seq WHERE id = ?", (a,), key=a).fetchone()[0]
            nb = reader.execute("SELECT n FROM seq WHERE id = ?", (b,), key=b).fetchone()[0]
            seen.append((na, nb))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for n in range(1, 40):
            c.batch([(a, "UPDATE seq SET n = ? WHERE id = ?", (n, a)),
                     (b, "UPDATE seq SET n = ? WHERE id = ?", (n, b))])
    finally:
        done.set()
        thread.join(30)
    behind = [(na, nb) for na, nb in seen if nb < na]
    assert seen and not behind, behind[:5]
    if reader is not c:
        reader.close()
    c.close()


def test_the_cluster_bench_runs_and_holding_leases_saves_storage_calls(ns):
    from dolite.cluster import bench

    figures = bench.run(ns, shard_counts=(1, 2), seconds=0.1, threads=2, transfers=5)
    assert set(figures["single_shard_commits_per_s"]) == {1, 2}
    released = figures["cross_shard_transfer"]["storage_calls"]
    held = figures["cross_shard_transfer_holding_leases"]["storage_calls"]
    assert held <= 8 < released, (held, released)  # prepares, decision, applies, forget
