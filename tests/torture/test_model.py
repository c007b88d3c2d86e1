"""Hypothesis drives dolite and stdlib sqlite3 through the same random operations —
writes, blobs, savepoints, commits, rollbacks, VACUUM, reopening, concurrent readers —
and their contents must always agree."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import dolite
from dolite.storage import open_storage
from tests.torture.conftest import scale
from tests.torture.faulty import FaultyNamespace

SCHEMA = ["CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT, n INTEGER, b BLOB)", "CREATE INDEX t_n ON t(n)"]
keys = st.integers(min_value=0, max_value=300)
texts = st.text(alphabet="abcxyz é", max_size=40)


class DoliteVsSqlite(RuleBasedStateMachine):
    backend = "memory"

    def __init__(self):
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="dolite-model-")
        url = f"memory:{uuid.uuid4().hex}" if self.backend == "memory" else f"{self.backend}:{self.tmp}/{self.backend}"
        self.inner = open_storage(url)
        self.ref = sqlite3.connect(":memory:", isolation_level=None)
        self.ns, self.dol = self._open()
        for sql in SCHEMA:
            self.ref.execute(sql)
            self.dol.execute(sql)
        self.in_tx = False
        self.savepoint = False
        self.committed = self._rows(self.ref)

    def _open(self):
        """A connection in a fresh VFS (a fresh namespace wrapper), as another process
        would open the database; returns (namespace, connection)."""
        ns = FaultyNamespace(self.inner)
        return ns, dolite.connect("m", storage=ns, isolation_level=None)

    @staticmethod
    def _rows(conn):
        return conn.execute("SELECT k, v, n, b FROM t ORDER BY k").fetchall()

    def _both(self, sql, params=()):
        self.ref.execute(sql, params)
        self.dol.execute(sql, params)

    def teardown(self):
        self.dol.close()
        self.ref.close()
        if self.backend != "memory":
            self.inner.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- transactions ---------------------------------------------------------------

    @precondition(lambda self: not self.in_tx)
    @rule()
    def begin(self):
        self._both("BEGIN")
        self.in_tx = True

    @precondition(lambda self: self.in_tx)
    @rule()
    def commit(self):
        self._both("COMMIT")
        self.in_tx = self.savepoint = False
        self.committed = self._rows(self.ref)

    @precondition(lambda self: self.in_tx)
    @rule()
    def rollback(self):
        self._both("ROLLBACK")
        self.in_tx = self.savepoint = False

    @precondition(lambda self: self.in_tx and not self.savepoint)
    @rule()
    def savepoint_begin(self):
        self._both("SAVEPOINT sp")
        self.savepoint = True

    @precondition(lambda self: self.savepoint)
    @rule(release=st.booleans())
    def savepoint_end(self, release):
        self._both("RELEASE sp" if release else "ROLLBACK TO sp")
        if release:
            self.savepoint = False

    # -- writes (autocommit outside a transaction) -----------------------------------

    def _wrote(self):
        if not self.in_tx:
            self.committed = self._rows(self.ref)

    @rule(k=keys, v=texts, n=st.integers(-5, 5))
    def upsert(self, k, v, n):
        self._both("INSERT OR REPLACE INTO t(k, v, n) VALUES (?, ?, ?)", (k, v, n))
        self._wrote()

    @rule(k=keys, size=st.sampled_from([0, 100, 5_000, 70_000, 300_000]), seed=st.integers(0, 255))
    def blob(self, k, size, seed):
        data = bytes((seed + i * 31) % 251 for i in range(size)) if size < 10_000 else \
            bytes([seed]) * (size // 2) + bytes(range(256)) * (size // 512)
        self._both("INSERT OR REPLACE INTO t(k, v, n, b) VALUES (?, 'blob', 0, ?)", (k, data))
        self._wrote()

    @rule(lo=keys, span=st.integers(0, 100), delta=st.integers(-3, 3))
    def update_range(self, lo, span, delta):
        self._both("UPDATE t SET n = n + ?, v = v || 'u' WHERE k BETWEEN ? AND ?", (delta, lo, lo + span))
        self._wrote()

    @rule(lo=keys, span=st.integers(0, 150))
    def delete_range(self, lo, span):
        self._both("DELETE FROM t WHERE k BETWEEN ? AND ?", (lo, lo + span))
        self._wrote()

    @rule(count=st.integers(1, 400), start=st.integers(1000, 5000))
    def many_rows(self, count, start):
        rows = [(start + i, f"bulk {i}", i % 7) for i in range(count)]
        for conn in (self.ref, self.dol):
            conn.executemany("INSERT OR REPLACE INTO t(k, v, n) VALUES (?, ?, ?)", rows)
        self._wrote()

    @precondition(lambda self: not self.in_tx)
    @rule()
    def vacuum(self):
        self._both("VACUUM")

    # -- reopening and other readers -----------------------------------------------

    @rule()
    def reopen(self):
        if self.in_tx:
            self.ref.execute("ROLLBACK")
            self.in_tx = self.savepoint = False
        self.dol.close()  # an open transaction is discarded, like the rollback above
        self.ns, self.dol = self._open()

    @rule()
    def reader_elsewhere(self):
        """A reader in another VFS (another process) sees the last committed version,
        whatever the writer has in flight."""
        _, reader = self._open()
        try:
            assert self._rows(reader) == self.committed
        finally:
            reader.close()

    @rule()
    def reader_here(self):
        """A second connection on the writer's own VFS sees the last committed version."""
        reader = dolite.connect("m", storage=self.ns, isolation_level=None, timeout=0)
        try:
            assert self._rows(reader) == self.committed
        except dolite.OperationalError as exc:  # the writer is mid-commit: busy is fine
            assert "lock" in str(exc).lower() or "busy" in str(exc).lower()
        finally:
            reader.close()

    @invariant()
    def same_contents(self):
        assert self._rows(self.dol) == self._rows(self.ref)

    @invariant()
    def same_transaction_state(self):
        assert self.dol.in_transaction == self.ref.in_transaction == self.in_tx


class DoliteVsSqliteLmdb(DoliteVsSqlite):
    backend = "lmdb"


class DoliteVsSqliteOnSqlite(DoliteVsSqlite):
    backend = "sqlite"


def _run(machine, examples: int, steps: int):
    machine.TestCase.settings = settings(
        max_examples=examples, stateful_step_count=steps, deadline=None,
        suppress_health_check=list(HealthCheck), derandomize=False)
    machine.TestCase().runTest()


def test_model_memory(record):
    examples, steps = scale(30, 600), scale(30, 60)
    _run(DoliteVsSqlite, examples, steps)
    record("model_memory", examples=examples, steps_per_example=steps, mismatches=0)


@pytest.mark.parametrize("machine", [DoliteVsSqliteLmdb, DoliteVsSqliteOnSqlite], ids=["lmdb", "sqlite"])
def test_model_durable(machine, record):
    examples, steps = scale(10, 200), scale(25, 60)
    _run(machine, examples, steps)
    record(f"model_{machine.backend}", examples=examples, steps_per_example=steps, mismatches=0)
