"""Optimistic writers (issue #14): disjoint concurrent transactions all commit; conflicting
ones get exactly the outcome their policy documents; what cannot be rebased is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import dolite
from dolite.sql.optimistic import ConflictingRows, RowConflict

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def url():
    return f"memory:{uuid.uuid4().hex}"


@pytest.fixture
def setup(url):
    """A table t(k primary key, v, w) holding rows 1 and 2, made by a lease-mode connection."""
    conn = dolite.connect("db", url)
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT, w TEXT)")
    conn.execute("INSERT INTO t VALUES (1, 'a', 'x'), (2, 'b', 'y')")
    conn.commit()
    yield conn
    conn.close()


def rows(conn) -> list[tuple]:
    return conn.execute("SELECT * FROM t ORDER BY k").fetchall()


def optimistic(url, **options):
    return dolite.connect("db", url, concurrency="optimistic", **options)


def race(url, ours_sql: list[str], theirs_sql: list[str], **options):
    """Run ``ours_sql`` in an optimistic transaction, let another optimistic writer commit
    ``theirs_sql`` meanwhile, then commit ours (the commit may raise)."""
    ours, theirs = optimistic(url, **options), optimistic(url)
    for sql in ours_sql:
        ours.execute(sql)
    for sql in theirs_sql:
        theirs.execute(sql)
    theirs.commit()
    theirs.close()
    return ours


# -- disjoint writers -----------------------------------------------------------------------


def test_disjoint_changes_all_commit_with_one_rebase(url, setup):
    a, b = optimistic(url), optimistic(url)
    a.execute("UPDATE t SET v = 'A' WHERE k = 1")
    b.execute("UPDATE t SET v = 'B' WHERE k = 2")
    b.execute("INSERT INTO t VALUES (3, 'c', 'z')")
    a.execute("UPDATE t SET w = 'W' WHERE k = 2")  # another column of b's row: no conflict
    b.commit()
    a.commit()
    assert rows(setup) == [(1, "A", "x"), (2, "B", "W"), (3, "c", "z")]
    assert a.optimistic.stats["rebases"] == 1 and b.optimistic.stats["rebases"] == 0
    assert a.optimistic.stats["commits"] == b.optimistic.stats["commits"] == 1


def test_uncontended_commit_does_not_rebase_and_gives_the_lease_back(url, setup):
    conn = optimistic(url)
    conn.execute("UPDATE t SET v = 'A' WHERE k = 1")
    conn.commit()
    assert conn.optimistic.stats == {"commits": 1}
    assert not conn.database.store.lease.valid()


# -- each policy ----------------------------------------------------------------------------


def test_abort_lists_every_conflicting_row_and_stores_nothing(url, setup):
    ours = race(url, ["UPDATE t SET v = 'ours' WHERE k = 1", "INSERT INTO t VALUES (3, 'o3', 'o')",
                      "DELETE FROM t WHERE k = 2", "INSERT INTO t VALUES (9, 'free', 'f')"],
                ["UPDATE t SET v = 'theirs' WHERE k = 1", "INSERT INTO t VALUES (3, 't3', 't')",
                 "UPDATE t SET w = 'Y' WHERE k = 2"])
    with pytest.raises(ConflictingRows) as raised:
        ours.commit()
    assert isinstance(raised.value, dolite.Conflict)
    assert sorted(raised.value.conflicts, key=lambda c: c.key) == [
        RowConflict("t", (1,), "update", "changed", {"k": 1, "v": "theirs", "w": "x"}, {"k": 1, "v": "ours"}),
        RowConflict("t", (2,), "delete", "changed", {"k": 2, "v": "b", "w": "Y"}, None),
        RowConflict("t", (3,), "insert", "exists", {"k": 3, "v": "t3", "w": "t"}, {"k": 3, "v": "o3", "w": "o"}),
    ]
    assert rows(setup) == [(1, "theirs", "x"), (2, "b", "Y"), (3, "t3", "t")]  # first committer won
    assert not ours.in_transaction
    assert ours.optimistic.stats["aborted.abort"] == 1


def test_theirs_keeps_stored_rows_and_applies_the_rest(url, setup):
    ours = race(url, ["UPDATE t SET v = 'ours' WHERE k = 1", "INSERT INTO t VALUES (3, 'o3', 'o')",
                      "INSERT INTO t VALUES (9, 'free', 'f')"],
                ["UPDATE t SET v = 'theirs' WHERE k = 1", "INSERT INTO t VALUES (3, 't3', 't')"],
                on_conflict="theirs")
    ours.commit()
    assert rows(setup) == [(1, "theirs", "x"), (2, "b", "y"), (3, "t3", "t"), (9, "free", "f")]
    assert ours.optimistic.stats["conflicts.theirs"] == 2


def test_ours_replaces_stored_rows_column_by_column(url, setup):
    ours = race(url, ["UPDATE t SET v = 'ours' WHERE k = 1", "INSERT INTO t VALUES (3, 'o3', 'o')",
                      "DELETE FROM t WHERE k = 2"],
                ["UPDATE t SET v = 'theirs', w = 'tw' WHERE k = 1", "INSERT INTO t VALUES (3, 't3', 't')",
                 "UPDATE t SET v = 'B' WHERE k = 2"],
                on_conflict="ours")
    ours.commit()
    # Row 1: our column v wins, their column w stays; row 3: our insert replaces; row 2: deleted.
    assert rows(setup) == [(1, "ours", "tw"), (3, "o3", "o")]


def test_ours_cannot_bring_back_a_row_they_deleted_so_it_aborts(url, setup):
    ours = race(url, ["UPDATE t SET v = 'ours' WHERE k = 1", "INSERT INTO t VALUES (9, 'free', 'f')"],
                ["DELETE FROM t WHERE k = 1"], on_conflict="ours")
    with pytest.raises(ConflictingRows) as raised:
        ours.commit()
    assert [(c.key, c.reason, c.stored) for c in raised.value.conflicts] == [((1,), "deleted", None)]
    assert rows(setup) == [(2, "b", "y")]


def test_deleting_a_row_they_deleted_is_not_a_conflict(url, setup):
    ours = race(url, ["DELETE FROM t WHERE k = 1"], ["DELETE FROM t WHERE k = 1"])
    ours.commit()
    assert rows(setup) == [(2, "b", "y")]
    assert ours.optimistic.stats["conflicts.abort"] == 0


def test_callable_decides_each_row(url, setup):
    seen = []

    def decide(conflict):
        seen.append(conflict.key)
        return "ours" if conflict.key == (1,) else "theirs"

    ours = race(url, ["UPDATE t SET v = 'o1' WHERE k = 1", "UPDATE t SET v = 'o2' WHERE k = 2"],
                ["UPDATE t SET v = 't1' WHERE k = 1", "UPDATE t SET v = 't2' WHERE k = 2"],
                on_conflict=decide)
    ours.commit()
    assert sorted(seen) == [(1,), (2,)]
    assert rows(setup) == [(1, "o1", "x"), (2, "t2", "y")]
    assert ours.optimistic.stats["conflicts.callable"] == 2


def test_callable_can_abort(url, setup):
    ours = race(url, ["UPDATE t SET v = 'o1' WHERE k = 1", "INSERT INTO t VALUES (9, 'free', 'f')"],
                ["UPDATE t SET v = 't1' WHERE k = 1"], on_conflict=lambda c: "abort")
    with pytest.raises(ConflictingRows):
        ours.commit()
    assert rows(setup) == [(1, "t1", "x"), (2, "b", "y")]


def test_callable_returns_a_merged_row(url, setup):
    def merge(conflict):  # a dict: columns over the stored row
        return {"v": conflict.stored["v"] + "+" + conflict.ours["v"]}

    ours = race(url, ["UPDATE t SET v = 'o1' WHERE k = 1"], ["UPDATE t SET v = 't1', w = 'tw' WHERE k = 1"],
                on_conflict=merge)
    ours.commit()
    assert rows(setup) == [(1, "t1+o1", "tw"), (2, "b", "y")]


def test_callable_merged_tuple_brings_back_a_deleted_row(url, setup):
    ours = race(url, ["UPDATE t SET v = 'o1' WHERE k = 1"], ["DELETE FROM t WHERE k = 1"],
                on_conflict=lambda c: (1, c.ours["v"], "restored"))
    ours.commit()
    assert rows(setup) == [(1, "o1", "restored"), (2, "b", "y")]


@pytest.mark.parametrize("answer", ["mine", (1, 2), {"nope": 1}])
def test_a_bad_decision_is_refused_and_stores_nothing(url, setup, answer):
    ours = race(url, ["UPDATE t SET v = 'o1' WHERE k = 1", "INSERT INTO t VALUES (9, 'free', 'f')"],
                ["UPDATE t SET v = 't1' WHERE k = 1"], on_conflict=lambda c: answer)
    with pytest.raises(dolite.ProgrammingError):
        ours.commit()
    assert rows(setup) == [(1, "t1", "x"), (2, "b", "y")]
    assert not ours.in_transaction


def test_retries_bound_the_rebases(url, setup):
    ours = race(url, ["UPDATE t SET v = 'o1' WHERE k = 1"], ["UPDATE t SET v = 't2' WHERE k = 2"], retries=0)
    with pytest.raises(dolite.Conflict, match="after 0 rebase"):
        ours.commit()
    assert rows(setup) == [(1, "a", "x"), (2, "t2", "y")]
    assert ours.optimistic.stats["gave_up"] == 1


# -- what optimistic mode refuses -----------------------------------------------------------


def test_a_table_without_primary_key_is_refused_at_commit(url, setup):
    setup.execute("CREATE TABLE log(line TEXT)")
    setup.commit()
    conn = optimistic(url)
    conn.execute("UPDATE t SET v = 'A' WHERE k = 1")
    conn.execute("INSERT INTO log VALUES ('x')")
    with pytest.raises(dolite.NotSupportedError, match="no primary key"):
        conn.commit()
    assert rows(setup) == [(1, "a", "x"), (2, "b", "y")]
    assert setup.execute("SELECT count(*) FROM log").fetchone() == (0,)


def test_a_schema_change_is_refused_at_commit(url, setup):
    conn = optimistic(url)
    conn.execute("UPDATE t SET v = 'A' WHERE k = 1")
    conn.execute("CREATE TABLE other(k INTEGER PRIMARY KEY)")
    with pytest.raises(dolite.NotSupportedError, match="schema changes"):
        conn.commit()
    assert rows(setup) == [(1, "a", "x"), (2, "b", "y")]
    assert setup.execute("SELECT count(*) FROM sqlite_master WHERE name = 'other'").fetchone() == (0,)


def test_a_rebase_onto_a_changed_table_shape_aborts(url, setup):
    conn = optimistic(url)
    conn.execute("UPDATE t SET v = 'A' WHERE k = 1")
    setup.execute("ALTER TABLE t ADD COLUMN z")
    setup.commit()
    with pytest.raises(ConflictingRows, match="changed shape"):
        conn.commit()
    assert rows(setup) == [(1, "a", "x", None), (2, "b", "y", None)]


@pytest.mark.parametrize("options, message", [
    ({"concurrency": "wild"}, "concurrency must be"),
    ({"on_conflict": "ours"}, "optimistic' only"),
    ({"retries": 2}, "optimistic' only"),
    ({"concurrency": "optimistic", "exclusive": True}, "exclusive"),
])
def test_options_that_cannot_apply_are_refused(url, options, message):
    with pytest.raises(dolite.NotSupportedError, match=message):
        dolite.connect("db", url, **options)


@pytest.mark.parametrize("options", [{"on_conflict": "mine"}, {"retries": -1}, {"retries": "3"}])
def test_bad_policy_or_retries_are_refused(url, options):
    with pytest.raises(dolite.ProgrammingError):
        dolite.connect("db", url, concurrency="optimistic", **options)


# -- lease mode stays serializable ----------------------------------------------------------


def test_an_optimistic_commit_waits_for_a_lease_mode_writer_and_never_breaks_it(url, setup):
    setup.execute("UPDATE t SET v = 'lease' WHERE k = 1")  # lease-mode transaction open
    conn = optimistic(url, timeout=0.2)
    conn.execute("UPDATE t SET v = 'opt' WHERE k = 2")
    with pytest.raises(dolite.OperationalError):
        conn.commit()  # the lease-mode writer holds the lock: nothing stored
    assert not conn.in_transaction
    setup.commit()  # the lease-mode transaction commits as if alone
    assert rows(setup) == [(1, "lease", "x"), (2, "b", "y")]
    conn.execute("UPDATE t SET v = 'opt' WHERE k = 2")
    conn.commit()
    assert rows(setup) == [(1, "lease", "x"), (2, "opt", "y")]


def test_an_explicit_begin_is_not_recorded_and_commits_only_if_nobody_else_did(url, setup):
    conn = optimistic(url, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("UPDATE t SET v = 'A' WHERE k = 1")
    other = optimistic(url)
    other.execute("UPDATE t SET v = 'B' WHERE k = 2")
    other.commit()
    with pytest.raises(dolite.Conflict):
        conn.commit()
    assert rows(setup) == [(1, "a", "x"), (2, "B", "y")]


# -- two processes --------------------------------------------------------------------------

WRITER = """
import json, os, random, sys, time
import dolite
from dolite.sql.optimistic import metrics
url, me, count, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
conn = dolite.connect("db", url, concurrency="optimistic", retries=50, timeout=30)
open(f"{ready}.{me}", "w").close()
while not all(os.path.exists(f"{ready}.{i}") for i in (0, 1)):
    time.sleep(0.01)
for i in range(count):
    conn.execute("INSERT INTO t VALUES (?, ?, ?)", [(me + 1) * 1_000_000 + i, str(me), str(i)])
    conn.execute("UPDATE t SET w = ? WHERE k = ?", [str(i + 1), me])
    conn.commit()
    time.sleep(0.002 * random.random())  # room for the other writer between commits
conn.close()
print(json.dumps(metrics()))
"""


def test_two_processes_of_disjoint_optimistic_transactions(tmp_path):
    count = 1000 if os.environ.get("DOLITE_TORTURE") == "long" else 200
    url = f"lmdb:{tmp_path}/lmdb"
    conn = dolite.connect("db", url)
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT, w TEXT)")
    conn.execute("INSERT INTO t VALUES (0, 'counter', '0'), (1, 'counter', '0')")
    conn.commit()
    conn.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(me), str(count), str(tmp_path / "ready")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for me in (0, 1)]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
    stats = [json.loads(out) for out, _ in results]
    conn = dolite.connect("db", url)
    written = {k for (k,) in conn.execute("SELECT k FROM t WHERE k > 1")}
    assert written == {(me + 1) * 1_000_000 + i for me in (0, 1) for i in range(count)}
    assert conn.execute("SELECT w FROM t WHERE k IN (0, 1) ORDER BY k").fetchall() == [(str(count),)] * 2
    assert [s["commits"] for s in stats] == [count, count]
    assert sum(s.get("rebases", 0) for s in stats) > 0, stats
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


# -- a model of interleaved optimistic writers ----------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

KEYS = range(3)
WRITERS = 3


def model_decide(policy, k: int, stored, ours):
    """What the documented policy does with one conflicting row of kv(k, v)."""
    if policy != "callable":
        return policy
    return ("ours", "theirs", {"v": 1000 + k})[k % 3]


def model_commit(committed: dict, snapshot: dict, view: dict, policy) -> tuple[dict, list, bool]:
    """The documented outcome of committing a writer's changes (``snapshot`` -> ``view``)
    onto ``committed``: (new committed state, conflicting keys, aborted)."""
    out, found, aborted = dict(committed), [], False
    for k in KEYS:
        base, final, cur = snapshot.get(k), view.get(k), committed.get(k)
        if base == final or (final is None and cur is None):
            continue  # no change, or deleted on both sides
        if cur == base:
            out[k] = final
            if final is None:
                del out[k]
            continue
        found.append(k)
        decision = model_decide(policy, k, cur, final)
        if isinstance(decision, dict):
            out[k] = decision["v"]
        elif decision == "theirs":
            pass
        elif decision == "ours" and not (cur is None and final is not None):
            if final is None:
                del out[k]
            else:
                out[k] = final
        else:  # abort, or "ours" for an update of a row they deleted
            aborted = True
    return (committed if aborted else out), found, aborted


def decide_callable(conflict):
    return model_decide("callable", conflict.key[0], conflict.stored, conflict.ours)


# ops: ("set" | "del" | "commit", writer, key, value); sets outnumber deletes and commits
step = st.tuples(st.sampled_from(["set", "set", "set", "del", "commit", "commit"]),
                 st.integers(0, WRITERS - 1), st.sampled_from(KEYS), st.integers(0, 3))


@settings(max_examples=2000 if os.environ.get("DOLITE_TORTURE") == "long" else 150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(policies=st.lists(st.sampled_from(["abort", "theirs", "ours", "callable"]),
                         min_size=WRITERS, max_size=WRITERS),
       initial=st.dictionaries(st.sampled_from(KEYS), st.integers(0, 3)),
       steps=st.lists(step, min_size=5, max_size=40))
def test_interleaved_writers_match_the_policy_model(policies, initial, steps):
    url, name = f"memory:{uuid.uuid4().hex}", "kv"
    reader = dolite.connect(name, url, isolation_level=None)
    reader.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v INTEGER)")
    for k, v in initial.items():
        reader.execute("INSERT INTO kv VALUES (?, ?)", [k, v])
    committed = dict(initial)
    writers = [dolite.connect(name, url, concurrency="optimistic", retries=1,
                              on_conflict=decide_callable if p == "callable" else p) for p in policies]
    snapshots: list[dict | None] = [None] * WRITERS
    views: list[dict] = [{} for _ in range(WRITERS)]
    try:
        for op, w, k, v in steps + [("commit", w, 0, 0) for w in range(WRITERS)]:
            conn = writers[w]
            if op == "commit":
                if snapshots[w] is None:
                    continue
                expected, found, aborted = model_commit(committed, snapshots[w], views[w], policies[w])
                if aborted:
                    with pytest.raises(ConflictingRows) as raised:
                        conn.commit()
                    assert sorted(c.key[0] for c in raised.value.conflicts) == found
                else:
                    conn.commit()
                committed, snapshots[w] = expected, None
                assert dict(reader.execute("SELECT k, v FROM kv").fetchall()) == committed
                continue
            if snapshots[w] is None:  # the driver begins (and pins) at the first DML
                snapshots[w], views[w] = dict(committed), dict(committed)
            if op == "set":
                conn.execute("INSERT INTO kv VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", [k, v])
                views[w][k] = v
            else:
                conn.execute("DELETE FROM kv WHERE k = ?", [k])
                views[w].pop(k, None)
    finally:
        for conn in writers:
            conn.close()
        reader.close()


# -- the isolation examples of docs/CONCURRENCY.md -------------------------------------------

GO_OFF = ("UPDATE doctors SET on_call = 0 WHERE name = ? "
          "AND (SELECT count(*) FROM doctors WHERE on_call) = 2")


def doctors(url):
    conn = dolite.connect("db", url, isolation_level=None)
    conn.execute("CREATE TABLE doctors(name TEXT PRIMARY KEY, on_call INTEGER)")
    conn.execute("INSERT INTO doctors VALUES ('alice', 1), ('bob', 1)")
    return conn


def test_write_skew_is_refused_in_lease_mode(url):
    check = doctors(url)
    alice, bob = dolite.connect("db", url), dolite.connect("db", url, timeout=0.1)
    alice.execute(GO_OFF, ["alice"])
    with pytest.raises(dolite.OperationalError):
        bob.execute(GO_OFF, ["bob"])  # Alice is writing: Bob waits, then gives up
    alice.commit()
    bob.rollback()
    bob.execute(GO_OFF, ["bob"])  # now Bob sees one doctor on call: nothing changes
    bob.commit()
    assert check.execute("SELECT count(*) FROM doctors WHERE on_call").fetchone() == (1,)


def test_write_skew_is_possible_in_optimistic_mode(url):
    check = doctors(url)
    alice, bob = optimistic(url), optimistic(url)
    alice.execute(GO_OFF, ["alice"])
    bob.execute(GO_OFF, ["bob"])
    alice.commit()
    bob.commit()  # rebased: no row conflict, so it commits
    assert check.execute("SELECT count(*) FROM doctors WHERE on_call").fetchone() == (0,)
    assert bob.optimistic.stats["rebases"] == 1
