"""A transaction over the shards of a cluster.

A shard is enlisted by the first statement routed to it: the transaction then holds the
shard (in this process its lock, across processes its write lease, taken by ``BEGIN
IMMEDIATE``) until it ends, so its reads see its own writes and nobody else's, and a
``query_all`` that enlists every shard is one atomic view. Waits are bounded by the
cluster's timeout and end in :class:`dolite.Conflict`: shards taken in different orders by
two transactions can never hang. At the end, one enlisted shard commits as usual; several
commit by two-phase commit (dolite/cluster/coordinator.py). The shards' write leases are
given back afterwards, so writers in other processes can take their turn.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable

from dolite.cluster import coordinator
from dolite.cluster.results import Result, run
from dolite.errors import Conflict
from dolite.sql import dbapi
from dolite.sql.pep249 import CommitOnExit


_store_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_store_locks_guard = threading.Lock()


def lock_of(store) -> threading.Lock:
    """The process-wide lock of one database's page store: one cluster transaction at a
    time per shard, whichever Cluster object opened it."""
    with _store_locks_guard:
        lock = _store_locks.get(store)
        if lock is None:
            lock = _store_locks[store] = threading.Lock()
        return lock


class Shard:
    """One shard as a Cluster uses it: the connection its transactions write through (one
    at a time: see :attr:`lock`) and a pool of snapshot readers."""

    def __init__(self, name: str, connect: Callable[[str], dbapi.Connection]):
        self.name = name
        self._connect = connect
        self._writer: dbapi.Connection | None = None
        self._readers: list[dbapi.Connection] = []
        self._pool_lock = threading.Lock()

    def writer(self) -> dbapi.Connection:
        """The transactions' connection (use it with :attr:`lock` held)."""
        with self._pool_lock:
            if self._writer is None:
                self._writer = self._connect(self.name)
            return self._writer

    @property
    def lock(self) -> threading.Lock:
        return lock_of(self.writer().database.store)

    def reader(self) -> dbapi.Connection:
        with self._pool_lock:
            if self._readers:
                return self._readers.pop()
        return self._connect(self.name)

    def give_back(self, conn: dbapi.Connection) -> None:
        with self._pool_lock:
            self._readers.append(conn)

    def drop_writer(self, conn: dbapi.Connection) -> None:
        """Close the transactions' connection (the next transaction opens a new one)."""
        with self._pool_lock:
            if self._writer is conn:
                self._writer = None
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        with self._pool_lock:
            conns, self._readers = self._readers, []
            if self._writer is not None:
                conns.append(self._writer)
            self._writer = None
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()


class Transaction(CommitOnExit):
    """Statements routed by key (or shard name) inside one atomic transaction."""

    def __init__(self, cluster):  # a dolite.cluster.Cluster (not imported: it imports us)
        self.cluster = cluster
        self._enlisted: dict[str, dbapi.Connection] = {}
        self._done = False

    def execute(self, sql: str, parameters=(), *, key=None, shard: str | None = None) -> Result:
        """Run ``sql`` on the shard holding ``key`` (or on ``shard``, by name)."""
        if (key is None) == (shard is None):
            raise dbapi.ProgrammingError("pass exactly one of key= and shard=")
        name = self.cluster.shard_for(key) if shard is None else shard
        if name not in self.cluster.shards:
            raise dbapi.ProgrammingError(f"cluster {self.cluster.name!r} has no shard {name!r}")
        return run(self._enlist(name), sql, parameters)

    def query_all(self, sql: str, parameters=()) -> list[tuple]:
        """The rows of ``sql`` on every shard (all enlisted: one atomic view), in shard order."""
        rows: list[tuple] = []
        for name in self.cluster.map.shards:
            rows += run(self._enlist(name), sql, parameters).fetchall()
        return rows

    @property
    def shards(self) -> list[str]:
        """The shards enlisted so far, in the order they were."""
        return list(self._enlisted)

    def _enlist(self, name: str) -> dbapi.Connection:
        if self._done:
            raise dbapi.ProgrammingError("this transaction has ended")
        conn = self._enlisted.get(name)
        if conn is not None:
            return conn
        shard = self.cluster.shards[name]
        lock = _acquire(shard, self.cluster.timeout)
        try:
            conn = shard.writer()
            run(conn, "BEGIN IMMEDIATE")
        except BaseException:
            lock.release()
            raise
        self._enlisted[name] = conn
        return conn

    def commit(self) -> None:
        """Make every enlisted shard's writes durable, all or nothing. Returns once the
        outcome is durable (for several shards: the 2PC decision; their heads then move in
        the background before the shards are released)."""
        if self._done:
            raise dbapi.ProgrammingError("this transaction has ended")
        self._done = True
        enlisted, self._enlisted = self._enlisted, {}
        if len(enlisted) < 2:
            try:
                for conn in enlisted.values():
                    run(conn, "COMMIT")
            finally:
                _end(self.cluster, enlisted, caches_valid=True)  # SQLite knows how its commit ended
            return
        participants = [coordinator.Participant(name, conn.database.store, _statement(conn, "COMMIT"),
                                                conn.rollback) for name, conn in enlisted.items()]
        txn = coordinator.new_txn(self.cluster.coordinator_name, self.cluster.ttl)
        coordinator.commit(participants, self.cluster.coordinator, txn,
                           finish=lambda committed: _end(self.cluster, enlisted, caches_valid=committed))

    def rollback(self) -> None:
        if not self._done:
            self._done = True
            enlisted, self._enlisted = self._enlisted, {}
            _end(self.cluster, enlisted, caches_valid=True)



def _acquire(shard: Shard, timeout: float) -> threading.Lock:
    """Take the shard's lock, waiting at most ``timeout`` (then Conflict). Re-checked once
    held: the lock belongs to the page store, which is new if the store was reopened."""
    while True:
        lock = shard.lock
        if not lock.acquire(timeout=timeout):
            raise Conflict(f"shard {shard.name!r} is held by another transaction in this process "
                           f"(waited {timeout:g} s): retry")
        if lock is shard.lock:
            return lock
        lock.release()


def _end(cluster, enlisted: dict[str, dbapi.Connection], caches_valid: bool) -> None:
    """Roll back what is still open, give the write leases back, release the shards.
    ``caches_valid`` is False after a 2PC that did not commit (or whose outcome is
    unknown): the connections are closed too, since SQLite believes a prepared participant
    committed, and its page cache then holds pages of an aborted version under the version
    number the next real commit gets."""
    for name, conn in enlisted.items():
        store = conn.database.store
        try:
            with contextlib.suppress(Exception):
                conn.rollback()
            if not cluster.hold_leases:
                with contextlib.suppress(Exception):
                    store.close()  # gives the write lease back
            if not caches_valid:
                cluster.shards[name].drop_writer(conn)
        finally:
            lock_of(store).release()


def _statement(conn: dbapi.Connection, sql: str) -> Callable[[], None]:
    return lambda: run(conn, sql)
