"""A cluster on a dolite server: ``dolite.cluster("http://HOST:PORT/NAME", token=...)``.

The same surface as :class:`dolite.cluster.Cluster` where it maps onto the HTTP API
(``POST /v1/clusters/{name}/query``, docs/SERVICE.md "Clusters")::

    c = dolite.cluster("http://127.0.0.1:8787/bank", token="s3cret", shards=8)
    c.execute_all("CREATE TABLE IF NOT EXISTS acct(id TEXT PRIMARY KEY, bal INTEGER)")
    c.execute("INSERT INTO acct VALUES (?, ?)", ("alice", 100), key="alice")
    c.batch([("alice", "UPDATE acct SET bal = bal - 10 WHERE id = ?", ("alice",)),
             ("bob", "UPDATE acct SET bal = bal + 10 WHERE id = ?", ("bob",))])  # atomic
    c.query_all("SELECT id, bal FROM acct")

What differs from a local cluster:

* ``transaction()`` is a client-side batch: statements are kept and sent as one atomic
  batch when the block ends; ``tx.execute`` returns None (results are in ``tx.results``
  after the commit), so a statement cannot read what the transaction wrote before it is
  sent. ``tx.query_all`` and ``shard=`` are not supported.
* ``execute_all`` returns one result (every shard's rows, ``rowcount`` summed), not one a shard.
* ``shard_for`` is not available (the map stays on the server): a result's ``shard`` says
  where a routed statement ran.

Importable without APSW.
"""

from __future__ import annotations

from collections.abc import Iterable

from dolite.errors import AlreadyExists, DatabaseNotFound, NotSupportedError, ProgrammingError
from dolite.remote.api import Result, endpoints
from dolite.remote.client import Client
from dolite.remote.httpdbapi import split_url
from dolite.sql.pep249 import CommitOnExit, FetchedRows


class RemoteResult(FetchedRows):
    """A cursor-like view of one statement's result: ``fetchone``, ``fetchmany``,
    ``fetchall``, iteration, ``description``, ``rowcount``, ``lastrowid``, ``shard``."""

    def __init__(self, result: Result):
        super().__init__(result.rows)
        self.description = tuple((c, None, None, None, None, None, None) for c in result.columns) or None
        self.rowcount = -1 if result.columns else result.rows_changed
        self.lastrowid = result.last_insert_rowid or None
        self.shard = result.shard


class RemoteTransaction(CommitOnExit):
    """A client-side batch: statements kept until the block ends, then sent as one
    transaction, atomic across shards (see the module docstring)."""

    def __init__(self, cluster: RemoteCluster):
        self.cluster = cluster
        self._statements: list[tuple] = []
        self.results: list[RemoteResult] | None = None

    def execute(self, sql: str, parameters=(), *, key=None, shard: str | None = None) -> None:
        if shard is not None or key is None:
            raise NotSupportedError("over HTTP a transaction's statements are routed by key= only")
        if self.results is not None:
            raise ProgrammingError("this transaction has ended")
        self._statements.append((key, sql, parameters))

    def query_all(self, sql: str, parameters=()):
        raise NotSupportedError("tx.query_all needs a server-side transaction: not available over HTTP "
                                "(use cluster.query_all, or a local cluster)")

    def commit(self) -> None:
        if self.results is not None:
            raise ProgrammingError("this transaction has ended")
        self.results = self.cluster.batch(self._statements) if self._statements else []

    def rollback(self) -> None:
        self._statements, self.results = [], self.results or []



class RemoteCluster:
    """Cluster ``name`` on the server ``client`` talks to."""

    def __init__(self, client: Client, name: str):
        self.client, self.name = client, name

    def execute(self, sql: str, parameters=(), *, key) -> RemoteResult:
        """Run one statement on the shard that holds ``key``, in its own transaction."""
        return RemoteResult(self.client.send(endpoints.cluster_query(self.name, sql, parameters, key=key)))

    def execute_all(self, sql: str, parameters=()) -> RemoteResult:
        """Run one statement on every shard in one transaction (all shards or none)."""
        return RemoteResult(self.client.send(endpoints.cluster_all(self.name, sql, parameters)))

    def query_all(self, sql: str, parameters=()) -> list[tuple]:
        """The rows of a read on every shard, concatenated in shard order (each shard its
        own snapshot: not one global snapshot)."""
        return self.execute_all(sql, parameters).fetchall()

    def batch(self, statements: Iterable) -> list[RemoteResult]:
        """Run ``[(key, sql, params), ...]`` as one transaction, atomic across shards."""
        return [RemoteResult(r) for r in self.client.send(endpoints.cluster_batch(self.name, statements))]

    def transaction(self) -> RemoteTransaction:
        return RemoteTransaction(self)

    def info(self) -> dict:
        return self.client.send(endpoints.cluster_info(self.name))

    def shard_for(self, key):
        raise NotSupportedError("over HTTP the shard map stays on the server: a routed result's .shard "
                                "names the shard it ran on")

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RemoteCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(url: str, token: str | None = None, *, shards: int | None = None,
            timeout: float = 60.0) -> RemoteCluster:
    """Open cluster ``NAME`` on the server at ``http(s)://HOST:PORT/NAME``; with ``shards``,
    create it if missing (admin token), and refuse an existing one of another size."""
    base, name = split_url(url)
    client = Client(base, token=token, timeout=timeout)
    try:
        info = _existing(client, name, shards)
    except BaseException:
        client.close()
        raise
    if shards is not None and len(info["shards"]) != shards:
        client.close()
        raise ProgrammingError(f"cluster {name!r} has {len(info['shards'])} shards, not {shards}")
    return RemoteCluster(client, name)


def _existing(client: Client, name: str, shards: int | None) -> dict:
    try:
        return client.cluster_info(name)
    except DatabaseNotFound:
        if shards is None:
            raise
    try:
        return client.create_cluster(name, shards)
    except AlreadyExists:  # created meanwhile by someone else
        return client.cluster_info(name)
