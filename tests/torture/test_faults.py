"""Storage faults in the middle of a commit, and corrupt chunks.

For every N, the N-th storage operation of a transaction (its reads, lease, log record,
chunk batches, head move) fails, loses its reply (applied, but the caller hears an
error) or stalls. Afterwards a fresh process-view of the database (a fresh namespace
wrapper: fresh VFS, empty cache) must see exactly the old or the new version (the new one
if the commit returned), pass integrity_check, accept new writes, and hold no debris.
A corrupt stored chunk must give CorruptChunk, never wrong data.
"""

from __future__ import annotations

import random

import pytest

import dolite
from dolite.pages.format import HEAD, Head, parse_log_key, split_chunk_key, stored_version
from dolite.storage import open_storage
from tests.torture.conftest import scale
from tests.torture.faulty import MODES, FaultyNamespace

SHAPES = ("small", "big", "shrink")


def _setup(conn, rng: random.Random) -> None:
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
    conn.execute("CREATE INDEX t_v ON t(v)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)",
                     [(i, f"row {i} " * rng.randint(1, 20), None) for i in range(1, 400)])
    conn.execute("COMMIT")


def _transaction(conn, shape: str, rng: random.Random) -> None:
    conn.execute("BEGIN")
    for _ in range(rng.randint(1, 5)):
        conn.execute("UPDATE t SET v = ? WHERE id = ?", (f"new {rng.random()}", rng.randint(1, 399)))
    if shape == "big":  # > 128 chunks: log record, several chunk batches, then the head
        conn.execute("INSERT INTO t VALUES (1000, 'blob', ?)", (rng.randbytes(700_000),))
    conn.execute("INSERT INTO t VALUES (?, 'inserted', NULL)", (2000 + rng.randint(0, 999),))
    if shape == "shrink":  # the file shrinks: truncation path
        conn.execute("DELETE FROM t WHERE id > 100")
    conn.execute("COMMIT")
    if shape == "shrink":
        conn.execute("VACUUM")


def _rows(conn):
    return conn.execute("SELECT id, v, b FROM t ORDER BY id").fetchall()


def _connect(namespace, name: str, retention: float | None = None):
    return dolite.connect(name, storage=namespace, isolation_level=None, retention=retention)


def _no_debris(inner, name: str) -> None:
    storage = inner.object(name)
    head = Head.decode(storage.get([HEAD])[HEAD])
    newer_chunks = [k for k, (c, v) in ((k, split_chunk_key(k)) for k in storage.list(prefix="c/"))
                    if (v if v is not None else stored_version(storage.get([k])[k], c, name)) > head.version]
    newer_logs = [k for k in storage.list(prefix="log/") if parse_log_key(k) > head.version]
    assert not newer_chunks and not newer_logs, (newer_chunks[:3], newer_logs[:3])


def _view_rows(inner, name: str):
    """The rows as a fresh process-view of the database sees them."""
    view = _connect(FaultyNamespace(inner), name)
    try:
        return _rows(view)
    finally:
        view.close()


def _trial(inner, name: str, shape: str, seed: int, mode: str, at: int | None,
           cold: bool = False, retention: float | None = None) -> tuple[str, int]:
    """Run one faulted transaction; return (outcome, storage ops the transaction made).
    ``cold``: the transaction runs in a fresh view (no cache, no lease yet). ``retention``
    0: commits write in place (pages/in_place.py)."""
    ns = FaultyNamespace(inner)
    conn = _connect(ns, name, retention)
    _setup(conn, random.Random(seed))
    old = _rows(conn)
    if cold:
        conn.close()
        ns = FaultyNamespace(inner)
        conn = _connect(ns, name)
    seen = []

    def concurrent_reader():
        rows = _view_rows(inner, name)
        assert rows in (old, _expected_new(shape, seed)), "a reader saw a half-committed version"
        seen.append(rows == old)

    ns.faults.on_stall = concurrent_reader
    ns.faults.arm(at, mode)
    try:
        _transaction(conn, shape, random.Random(seed + 1))
        returned = True
    except dolite.DoliteError:
        returned = False
    except dolite.Error:
        returned = False
    ops = ns.faults.ops
    ns.faults.arm(None)
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - the verdict comes from a fresh view below
        pass
    fresh = FaultyNamespace(inner)
    check = _connect(fresh, name)
    try:
        now = _rows(check)
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert now in (old, _expected_new(shape, seed)), "neither the old nor the new version"
        if returned:
            assert now == _expected_new(shape, seed), "a returned commit is missing"
        check.execute("INSERT INTO t VALUES (5000, 'after', NULL)")
        assert check.execute("SELECT v FROM t WHERE id = 5000").fetchone() == ("after",)
    finally:
        check.close()
    _no_debris(inner, name)
    outcome = "new" if now != old else "old"
    return ("returned" if returned else f"failed->{outcome}"), ops


_NEW: dict[tuple[str, int], list] = {}


def _expected_new(shape: str, seed: int):
    key = (shape, seed)
    if key not in _NEW:
        conn = _connect(open_storage("memory:"), "control")
        _setup(conn, random.Random(seed))
        _transaction(conn, shape, random.Random(seed + 1))
        _NEW[key] = _rows(conn)
        conn.close()
    return _NEW[key]


@pytest.mark.parametrize("backend", ["memory", "lmdb", "sqlite"])
@pytest.mark.parametrize("retention", [None, 0.0], ids=["versions", "in_place"])
def test_fault_at_every_operation_of_a_commit(backend, tmp_path, record, retention):
    inner = open_storage("memory:" if backend == "memory" else f"{backend}:{tmp_path}/{backend}")
    seeds = range(scale(1, 12))
    outcomes: dict[str, int] = {}
    trials = 0
    for shape in SHAPES:
        for seed in seeds:
            for cold in (False, True):
                _, total = _trial(inner, f"probe-{shape}-{seed}-{cold}", shape, seed, "fail", None, cold,
                                  retention)
                assert total > 0
                for mode in MODES:
                    for at in range(1, total + 1):
                        outcome, _ = _trial(inner, f"{shape}-{seed}-{cold}-{mode}-{at}", shape, seed,
                                            mode, at, cold, retention)
                        outcomes[f"{mode}:{outcome}"] = outcomes.get(f"{mode}:{outcome}", 0) + 1
                        trials += 1
    assert any(k.startswith("fail:failed") for k in outcomes)
    record(f"faults_{backend}" + ("_in_place" if retention == 0 else ""), trials=trials, outcomes=outcomes,
           wrong_versions=0)


CORRUPTIONS = ("flip", "truncate", "swap")


def _corrupt(value: bytes, other: bytes, how: str, rng: random.Random) -> bytes:
    if how == "flip":
        i = rng.randrange(len(value))
        return value[:i] + bytes([value[i] ^ (1 << rng.randrange(8))]) + value[i + 1:]
    if how == "truncate":
        return value[: rng.randrange(len(value))]
    return other


def test_corrupt_chunk_is_an_error_never_wrong_data(record):
    inner = open_storage("memory:")
    conn = _connect(inner, "c")
    _setup(conn, random.Random(7))
    conn.execute("INSERT INTO t VALUES (1000, 'blob', ?)", (random.Random(8).randbytes(50_000),))
    expected = _rows(conn)
    conn.close()
    storage = inner.object("c")
    chunks = storage.list(prefix="c/")
    rng = random.Random(9)
    rounds = scale(1, 10)
    errors = clean = 0
    for _ in range(rounds):
        for key, value in chunks.items():
            for how in CORRUPTIONS:
                other = rng.choice([v for k, v in chunks.items() if k != key])
                storage.put({key: _corrupt(value, other, how, rng)})
                view = None
                try:
                    view = _connect(FaultyNamespace(inner), "c")
                    rows = _rows(view)
                    ok = view.execute("PRAGMA integrity_check").fetchall()
                    assert rows == expected and ok == [("ok",)], f"wrong data after {how} of {key}"
                    clean += 1  # the chunk holds no live page (e.g. freelist): never read
                except dolite.CorruptChunk:
                    errors += 1
                finally:
                    if view is not None:
                        view.close()
                    storage.put({key: value})
    assert errors > 0
    record("corrupt_chunks", checks=errors + clean, corrupt_chunk_errors=errors,
           unread_chunks=clean, wrong_data=0)


def test_lease_taken_under_a_lost_reply_is_given_back_on_close():
    """The commit that took the lease applied, but its reply was lost: closing must still
    release it, or every other writer waits out the whole lease."""
    inner = open_storage("memory:")
    ns = FaultyNamespace(inner)
    conn = _connect(ns, "lease")
    conn.execute("CREATE TABLE t(x)")
    conn.close()
    ns = FaultyNamespace(inner)
    conn = _connect(ns, "lease")
    ns.faults.arm(3, "lost_reply")  # 1: head, 2: read the lease, 3: the commit taking it
    with pytest.raises(dolite.DoliteError):
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
    ns.faults.arm(None)
    conn.close()
    other = _connect(FaultyNamespace(inner), "lease")  # another writer, same process
    other.execute("INSERT INTO t VALUES (2)")
    other.commit()
    assert other.execute("SELECT x FROM t").fetchall() == [(2,)]
    other.close()


def test_corrupt_head_lease_or_log_is_an_error_never_an_older_version(record):
    """Damage to the head, the lease or a commit record (a flipped bit, a truncation, the
    value of another record of the same kind, an older head): a fresh view gets a clear
    error or exactly the current rows, never an older version served as current, and
    never loses a version to 'debris' cleanup."""
    inner = open_storage("memory:")
    conn = _connect(inner, "r")
    _setup(conn, random.Random(3))
    storage = inner.object("r")
    old_head = storage.get(["head"])["head"]
    for i in range(3):
        conn.execute("INSERT INTO t VALUES (?, 'later', NULL)", (2000 + i,))
        conn.commit()
    expected = _rows(conn)
    conn.close()
    records = {k: v for k, v in storage.list().items() if not k.startswith("c/")}
    logs = [k for k in records if k.startswith("log/")]
    rng = random.Random(11)
    errors = clean = 0
    for _ in range(scale(2, 20)):
        for key, value in records.items():
            same_kind = [records[k] for k in logs if k != key] if key.startswith("log/") else [old_head]
            for how in CORRUPTIONS:
                if how == "swap" and not same_kind:
                    continue
                storage.put({key: _corrupt(value, rng.choice(same_kind or [b""]), how, rng)})
                view = None
                try:
                    view = _connect(FaultyNamespace(inner), "r")
                    rows = _rows(view)
                    view.execute("BEGIN")  # the first write takes the lease: debris cleanup
                    view.execute("INSERT INTO t VALUES (9999, 'probe', NULL)")
                    view.execute("ROLLBACK")
                    assert rows == expected, f"an older version served after {how} of {key}"
                    clean += 1  # e.g. a damaged old log record: not needed to read or write
                except dolite.CorruptChunk:
                    errors += 1
                finally:
                    if view is not None:
                        view.close()
                    storage.put({key: value})
        check = _connect(FaultyNamespace(inner), "r")
        assert _rows(check) == expected  # nothing was lost to cleanup under damage
        check.close()
    assert errors > 0
    record("corrupt_records", checks=errors + clean, clear_errors=errors, harmless=clean,
           older_version_served=0)
