"""A cluster: many ordinary dolite databases (shards) behind one routing API, with atomic
cross-shard transactions. See docs/CLUSTERS.md.

    c = dolite.cluster("bank", storage="lmdb:./data", shards=8)
    c.execute("INSERT INTO acct VALUES (?, ?)", ("alice", 100), key="alice")
    with c.transaction() as tx:
        tx.execute("UPDATE acct SET bal = bal - 10 WHERE id = ?", ("alice",), key="alice")
        tx.execute("UPDATE acct SET bal = bal + 10 WHERE id = ?", ("bob",), key="bob")

Objects: ``<cluster>.map`` (the shard map), ``<cluster>.s<N>`` (the shards),
``<cluster>.txn`` (decisions of cross-shard transactions).
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from dolite.cluster import coordinator
from dolite.cluster import map as shardmap
from dolite.cluster.results import Result, run
from dolite.cluster.transaction import Shard, Transaction
from dolite.errors import DatabaseNotFound
from dolite.names import validate_name
from dolite.pages import twophase
from dolite.pages.format import HEAD, Head, decode_record
from dolite.sql import dbapi
from dolite.storage import Namespace, open_storage

READS = ("SELECT", "VALUES", "EXPLAIN")  # anything else (WITH may write) runs in a transaction


class Cluster:
    """Routes statements to shards by key; thread-safe (one :class:`Transaction` per
    thread at a time)."""

    def __init__(self, name: str, storage: str | Namespace | None = None, *, shards: int | None = None,
                 timeout: float = 5.0, lease_ttl: float | None = None, hold_leases: bool = False):
        self.name = validate_name(name)
        self.hold_leases = hold_leases
        self.namespace = open_storage(storage or dbapi.DEFAULT_STORAGE)
        self.timeout = timeout
        self._connect_options = {"timeout": timeout, "lease_ttl": lease_ttl}
        self.map = self._open_map(shards)
        self.coordinator_name = validate_name(f"{name}.txn")
        self.coordinator = self.namespace.object(self.coordinator_name)
        self.ttl = lease_ttl or 30.0
        self.shards = {s: Shard(s, self._connect) for s in self.map.shards}
        self._closed = False

    def _open_map(self, shards: int | None) -> shardmap.ShardMap:
        where = self.namespace.object(shardmap.map_object(self.name))
        stored = shardmap.read_map(where, self.name)
        if stored is None:
            if shards is None:
                raise DatabaseNotFound(f"cluster {self.name!r} does not exist in {self.namespace.url} "
                                       "(pass shards=N to create it)")
            wanted = shardmap.ShardMap.initial(self.name, shards)
            for shard in wanted.shards:  # every shard exists before the map names it
                self._connect(shard, create=True).close()
            stored = shardmap.create_map(where, wanted, self.name)
        if shards is not None and shards != len(stored.shards):
            raise dbapi.ProgrammingError(f"cluster {self.name!r} has {len(stored.shards)} shards, not {shards}")
        return stored

    def _connect(self, shard: str, *, create: bool = False) -> dbapi.Connection:
        return dbapi.connect(shard, self.namespace, create=create, isolation_level=None,
                             **self._connect_options)

    # -- routing -------------------------------------------------------------------------

    def shard_for(self, key: str | bytes | int) -> str:
        """The name of the shard (an ordinary dolite database) that holds ``key``."""
        return self.map.shard_for(key)

    def transaction(self) -> Transaction:
        """A transaction over any shards, atomic across them (two-phase commit when it
        wrote to more than one). Use as a context manager, or call commit/rollback."""
        self._check_open()
        return Transaction(self)

    def execute(self, sql: str, parameters=(), *, key) -> Result:
        """Run one statement on the shard that holds ``key``, in its own transaction.
        A read runs on a snapshot of that shard; a write commits before this returns."""
        self._check_open()
        shard = self.shards[self.shard_for(key)]
        if sql.lstrip().upper().startswith(READS):
            return self._read(shard, sql, parameters)
        with self.transaction() as tx:
            return tx.execute(sql, parameters, shard=shard.name)

    def execute_all(self, sql: str, parameters=()) -> list[Result]:
        """Run one statement on every shard, in one cross-shard transaction; one result a
        shard, in shard order."""
        with self.transaction() as tx:
            return [tx.execute(sql, parameters, shard=s) for s in self.map.shards]

    def batch(self, statements) -> list[Result]:
        """Run ``[(key, sql, params), ...]`` as one transaction, atomic across the shards
        it touches; one result a statement (the shape of the service's ``batch``)."""
        with self.transaction() as tx:
            return [tx.execute(sql, params, key=key) for key, sql, params in statements]

    def query_all(self, sql: str, parameters=()) -> list[tuple]:
        """The rows of ``sql`` on every shard, concatenated in shard order. Each shard is
        read on its own snapshot, in parallel: this is not one global snapshot (a
        transaction's ``query_all`` is)."""
        self._check_open()
        with ThreadPoolExecutor(min(8, len(self.shards))) as pool:
            results = pool.map(lambda s: self._read(s, sql, parameters), self.shards.values())
            return [row for result in results for row in result.fetchall()]

    def _read(self, shard: Shard, sql: str, parameters) -> Result:
        conn = shard.reader()
        try:
            twophase.settle(conn.database.store)  # never older than a committed decision
            return run(conn, sql, parameters)
        finally:
            shard.give_back(conn)

    def info(self) -> dict:
        """Shards (slots, version, size, prepared versions in doubt), the decisions on
        record, and this process's 2PC metrics. Reads storage; takes no lease."""
        slots = Counter(self.map.slots)
        shards = []
        for index, name in enumerate(self.map.shards):
            storage = self.namespace.object(name)
            head = Head.decode(storage.get([HEAD])[HEAD], name)
            in_doubt = [decode_record(raw, key, name)["txn"]
                        for key, raw in storage.list(prefix=twophase.PREPARE_PREFIX).items()]
            shards.append({"name": name, "slots": slots[index], "version": head.version,
                           "size": head.size, "in_doubt": in_doubt})
        decisions = Counter(decode_record(raw, key, self.coordinator_name)["state"]
                            for key, raw in self.coordinator.list(prefix=twophase.TXN_PREFIX).items())
        return {"name": self.name, "map_version": self.map.version, "slots": shardmap.SLOTS,
                "shards": shards, "decisions": dict(decisions),
                "stats": {**coordinator.stats, **twophase.stats}}

    # -- lifecycle -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise dbapi.ProgrammingError(f"cluster {self.name!r} is closed")

    def close(self) -> None:
        """Wait for this process's commits to finish moving heads, then close every shard."""
        self._closed = True
        coordinator.wait_for_applies()
        for shard in self.shards.values():
            shard.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_open_lock = threading.Lock()


def cluster(name: str, storage: str | Namespace | None = None, *, shards: int | None = None,
            timeout: float = 5.0, lease_ttl: float | None = None, hold_leases: bool = False) -> Cluster:
    """Open cluster ``name`` in ``storage`` (a URL or Namespace), creating it with
    ``shards`` shards if it does not exist. ``shards`` given for an existing cluster must
    match. ``timeout`` bounds every wait for a shard another transaction holds (then
    :class:`dolite.Conflict`: retry). ``hold_leases``: keep the shards' write leases
    between transactions (renewed by commits, given back on close): far fewer storage calls
    when one process does the writing; other processes' writers wait meanwhile."""
    with _open_lock:
        return Cluster(name, storage, shards=shards, timeout=timeout, lease_ttl=lease_ttl,
                       hold_leases=hold_leases)
