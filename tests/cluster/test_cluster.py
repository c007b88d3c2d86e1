"""The cluster API: routing, the shard map, transactions (own writes, rollback, atomic
view), execute_all's atomicity, and deadlocks that end in Conflict, never a hang."""

from __future__ import annotations

import threading

import pytest

import dolite
from dolite.cluster import map as shardmap
from dolite.storage import open_storage


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
