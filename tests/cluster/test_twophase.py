"""Two-phase commit on the page store: the primitives, recovery, and a fault at every
storage operation of a cross-shard commit (each participant's prepare, the decision,
each head move): after recovery the outcome is all-or-nothing, every time."""

from __future__ import annotations

import time

import pytest

import dolite
from dolite.errors import LeaseHeld
from dolite.cluster import coordinator
from dolite.pages import PageStore, twophase
from dolite.pages.format import HEAD, Head, parse_chunk_key, parse_log_key
from dolite.pages.store import GC_EVERY
from dolite.storage import open_storage
from tests.torture.faulty import FaultyNamespace

ACCOUNTS = {"alice": 100, "bob": 100, "carol": 100, "dave": 100}


def _store(ns, name: str) -> PageStore:
    store = PageStore(ns.object(name), name, objects=ns.object)
    store.create(chunk_size=512)
    return store


def _txn(**kw) -> twophase.TxnRef:
    return twophase.TxnRef(id="t1", coordinator="co", expires=time.time() + 30, **kw)


def _prepared(ns, name="db", **kw):
    store = _store(ns, name)
    base = store.read_head()
    prepared = twophase.prepare(store, base, {0: b"x" * 512, 1: b"y" * 100}, 612, _txn(**kw))
    return store, base, prepared


def _other_process(ns, name="db") -> PageStore:
    """A page store as another process sees it (its own lease owner), after ours ended."""
    return PageStore(ns.object(name), name, objects=ns.object)


def test_prepare_does_not_move_the_head_apply_does():
    ns = open_storage("memory:")
    store, base, prepared = _prepared(ns)
    assert store.read_head() == base
    assert store.read_chunk(base, 0) == b""  # nothing past the old size
    with pytest.raises(LeaseHeld, match="being decided"):
        store.ensure_writable()  # no other writer here while the decision is pending
    new = twophase.apply(prepared)
    assert store.read_head().version == new.version == base.version + 1
    assert store.read_chunk(new, 0) == b"x" * 512
    assert not ns.object("db").list(prefix="prepare/")


def test_abort_removes_every_key_of_the_prepared_version():
    ns = open_storage("memory:")
    store, base, prepared = _prepared(ns)
    twophase.abort(prepared)
    keys = ns.object("db").list()
    assert not [k for k in keys if k.startswith(("prepare/", "log/", "c/"))], list(keys)
    assert store.read_head() == base
    store.ensure_writable()


@pytest.mark.parametrize("decision", [twophase.COMMITTED, twophase.ABORTED])
def test_recovery_follows_the_decision(decision):
    ns = open_storage("memory:")
    store, base, _ = _prepared(ns)
    store.lease.release()
    twophase.decide(ns.object("co"), "t1", decision)
    other = _other_process(ns)
    other.ensure_writable()  # lease taken: debris cleanup resolves the transaction
    head = other.read_head()
    assert head.version == (base.version + 1 if decision == twophase.COMMITTED else base.version)
    assert not ns.object("db").list(prefix="prepare/")
    _no_debris(ns, "db")


def test_undecided_with_a_live_coordinator_waits_and_a_gone_one_is_presumed_aborted():
    ns = open_storage("memory:")
    with twophase.coordinating("t1"):
        store, base, _ = _prepared(ns)
        store.lease.release()
        other = _other_process(ns)
        with pytest.raises(LeaseHeld, match="in doubt"):
            other.ensure_writable()
        assert ns.object("db").list(prefix="prepare/")  # never removed while it may commit
    other.ensure_writable()  # the coordinator stopped deciding: presumed abort
    assert twophase.read_decision(ns.object("co"), "t1") == twophase.ABORTED
    assert other.read_head().version == base.version
    _no_debris(ns, "db")


def test_an_expired_coordinator_of_another_process_is_presumed_aborted():
    ns = open_storage("memory:")
    store = _store(ns, "db")
    txn = twophase.TxnRef(id="t2", coordinator="co", owner="elsewhere:1:x", expires=time.time() - 1)
    twophase.prepare(store, store.read_head(), {0: b"z" * 512}, 512, txn)
    store.in_doubt = None
    store.lease.release()
    _other_process(ns).ensure_writable()
    assert twophase.read_decision(ns.object("co"), "t2") == twophase.ABORTED


def test_a_reader_rolls_forward_a_committed_decision():
    ns = open_storage("memory:")
    store, base, prepared = _prepared(ns)
    twophase.decide(ns.object("co"), "t1", twophase.COMMITTED)
    reader = _other_process(ns)
    twophase.settle(reader)
    assert reader.read_head().version == base.version + 1
    assert twophase.apply(prepared).version == base.version + 1  # the coordinator agrees


def _no_debris(inner, name: str) -> None:
    storage = inner.object(name)
    head = Head.decode(storage.get([HEAD])[HEAD])
    assert not storage.list(prefix="prepare/")
    assert not [k for k in storage.list(prefix="c/") if parse_chunk_key(k)[1] > head.version]
    assert not [k for k in storage.list(prefix="log/") if parse_log_key(k) > head.version]


# -- a fault at every storage operation of a cross-shard commit ----------------------------


def _keys(c) -> list[str]:
    """Three accounts on three different shards."""
    found: dict[str, str] = {}
    n = 0
    while len(found) < 3:
        key = f"acct{n}"
        found.setdefault(c.shard_for(key), key)
        n += 1
    return sorted(found.values())


def _setup(inner, name: str):
    c = dolite.cluster(name, storage=inner, shards=3)
    c.execute_all("CREATE TABLE acct(id TEXT PRIMARY KEY, bal INTEGER, pad BLOB)")
    keys = _keys(c)
    for key in keys:
        c.execute("INSERT INTO acct VALUES (?, 100, NULL)", (key,), key=key)
    c.close()
    return keys


def _transfer(c, keys, big: bool) -> None:
    a, b, d = keys
    with c.transaction() as tx:
        tx.execute("UPDATE acct SET bal = bal - 30 WHERE id = ?", (a,), key=a)
        tx.execute("UPDATE acct SET bal = bal + 10 WHERE id = ?", (b,), key=b)
        tx.execute("UPDATE acct SET bal = bal + 20 WHERE id = ?", (d,), key=d)
        if big:  # > 128 chunks on one shard: log record, chunk batches, then the prepare record
            tx.execute("UPDATE acct SET pad = randomblob(700000) WHERE id = ?", (b,), key=b)


def _balances(inner, name: str) -> list[int]:
    """Recover (a fresh view, as another process would) and read every balance at once."""
    c = dolite.cluster(name, storage=FaultyNamespace(inner))
    try:
        with c.transaction() as tx:
            rows = sorted(tx.query_all("SELECT id, bal FROM acct"))
            for shard in c.map.shards:
                ok = tx.execute("PRAGMA integrity_check", shard=shard).fetchall()
                assert ok == [("ok",)], (shard, ok)
        for shard in c.map.shards:
            _no_debris(inner, shard)
        return [r[1] for r in rows]
    finally:
        c.close()


def _trial(inner, name: str, mode: str, at: int | None, big: bool, held: bool = False) -> tuple[str, int]:
    """One transfer over three shards with the ``at``-th storage operation faulted; then
    recovery as another process would do it. Returns (outcome, operations made)."""
    keys = _setup(inner, name)
    ns = FaultyNamespace(inner)
    c = dolite.cluster(name, storage=ns, timeout=1.0, hold_leases=held)
    if held:  # the shards' leases are already held when the transfer starts
        with c.transaction() as tx:
            tx.query_all("SELECT count(*) FROM acct")
    ns.faults.arm(at, mode)
    try:
        _transfer(c, keys, big)
        returned = True
    except dolite.Error:
        returned = False
    coordinator.wait_for_applies()  # its head moves (after the answer) are operations too
    ops = ns.faults.ops
    ns.faults.arm(None)
    c.close()
    before, after = [100, 100, 100], [70, 110, 120]
    got = _balances(inner, name)
    assert got in (before, after), f"{mode} at {at}: half-applied: {got}"
    if returned:
        assert got == after, f"{mode} at {at}: the commit returned but is not there"
    return ("returned" if returned else f"failed->{'new' if got == after else 'old'}"), ops


@pytest.mark.parametrize("backend,held", [("memory", False), ("memory", True), ("lmdb", False)],
                         ids=["memory", "memory-holding-leases", "lmdb"])
@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
def test_fault_at_every_storage_operation_of_a_2pc_commit(backend, held, big, tmp_path):
    inner = open_storage("memory:" if backend == "memory" else f"lmdb:{tmp_path}/lmdb")
    _, total = _trial(inner, "probe", "fail", None, big, held)
    outcomes: dict[str, int] = {}
    for mode in ("fail", "lost_reply"):
        for at in range(1, total + 1):
            outcome, _ = _trial(inner, f"b-{mode}-{at}", mode, at, big, held)
            outcomes[f"{mode}:{outcome}"] = outcomes.get(f"{mode}:{outcome}", 0) + 1
    assert outcomes.get("fail:failed->old") and outcomes.get("fail:returned"), outcomes


def test_a_prepare_record_out_of_place_is_damage_to_a_writer_and_skipped_by_a_reader():
    ns = open_storage("memory:")
    store = _store(ns, "db")
    key = twophase.prepare_key(store.read_head().version + 2)
    ns.object("db").put({key: twophase.encode_record(key, {"txn": "x", "coordinator": "co",
                                                           "owner": "o", "expires": 0, "size": 0, "time": 0})})
    twophase.settle(_other_process(ns))  # a reader racing a writer may see a newer record
    with pytest.raises(dolite.CorruptChunk, match="does not follow the head"):
        _other_process(ns).ensure_writable()
    assert key in ns.object("db").list(prefix="prepare/")  # reported, never deleted


def test_garbage_collection_runs_on_a_shard_only_written_by_two_phase_commits():
    ns = open_storage("memory:")
    store = PageStore(ns.object("db"), "db", objects=ns.object)
    store.create(chunk_size=512, retention=0.0)
    for n in range(GC_EVERY + 6):  # more than GC_EVERY applies, with a retention of 0 s
        head = store.read_head()
        prepared = twophase.prepare(store, head, {0: bytes([n % 256]) * 512}, 512,
                                    twophase.TxnRef(id=f"t{n}", coordinator="co"))
        coordinator.apply_and_collect(prepared)
    assert len(ns.object("db").list(prefix="c/")) < GC_EVERY + 6
