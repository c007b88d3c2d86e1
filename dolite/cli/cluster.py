"""``dolite cluster create|ls|info|query``: clusters of databases (docs/CLUSTERS.md), in a
storage URL or, with an ``http(s)://`` ``--storage``, on a dolite server (token from
``--token`` or ``$DOLITE_TOKEN``). Every command is one library call."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from dolite.errors import Error
from dolite.sql.dbapi import DEFAULT_STORAGE

cluster_app = typer.Typer(help="Clusters: data partitioned across databases (shards), atomic "
                               "cross-shard transactions.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

StorageOpt = typer.Option(DEFAULT_STORAGE, "--storage", "-s", envvar="DOLITE_STORAGE",
                          help="Storage URL: lmdb:PATH, memory:, do+http://HOST:PORT, or a server http(s):// URL")
TokenOpt = typer.Option(None, "--token", envvar="DOLITE_TOKEN", help="Bearer token (server URLs only)")
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON")


def _remote(storage: str) -> bool:
    return storage.startswith(("http://", "https://"))


@contextmanager
def _failing():
    """Turn dolite errors into a one-line message and exit status 1."""
    try:
        yield
    except (Error, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


@contextmanager
def _opened(name: str, storage: str, token: str | None, shards: int | None = None):
    """The cluster, local or on a server (its ``execute``/``query_all``/``info`` alike)."""
    if _remote(storage):
        from dolite.remote.cluster import connect

        c = connect(f"{storage.rstrip('/')}/{name}", token, shards=shards)
    else:
        from dolite.cluster import Cluster

        c = Cluster(name, storage, shards=shards)
    try:
        yield c
    finally:
        c.close()


@cluster_app.command()
def create(name: str, shards: int = typer.Option(..., "--shards", "-n", help="Number of shards"),
           storage: str = StorageOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Create cluster NAME with N shards (or open it, if it exists with N shards)."""
    with _failing(), _opened(name, storage, token, shards) as c:
        _print_info(c.info(), as_json)


@cluster_app.command("ls")
def ls(storage: str = StorageOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
    """List the clusters."""
    with _failing():
        if _remote(storage):
            from dolite.remote.client import Client

            with Client(storage, token=token) as client:
                names = client.clusters()
        else:
            from dolite.server.clusters import cluster_names
            from dolite.storage import open_storage

            names = cluster_names(open_storage(storage))
    if as_json:
        print(json.dumps(names))
    for name in [] if as_json else names:
        console.print(name, highlight=False)


@cluster_app.command()
def info(name: str, storage: str = StorageOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Shards (slots, version, size), transactions in doubt, decisions on record, 2PC metrics."""
    with _failing(), _opened(name, storage, token) as c:
        _print_info(c.info(), as_json)


@cluster_app.command()
def query(name: str, sql: str, key: Optional[str] = typer.Option(None, "--key", "-k", help="Routing key"),
          all_: bool = typer.Option(False, "--all", help="Every shard (a read: rows of every shard; "
                                    "a write: every shard in one transaction)"),
          params: str = typer.Option("[]", "--params", "-p", help="Parameters as a JSON list"),
          storage: str = StorageOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Run SQL on the shard that holds --key, or on every shard with --all."""
    if (key is None) == (not all_):
        raise typer.BadParameter("give --key KEY or --all (not both)")
    try:
        values = json.loads(params)
    except ValueError as exc:
        raise typer.BadParameter(f"--params must be a JSON list: {exc}") from None
    if not isinstance(values, list):
        raise typer.BadParameter("--params must be a JSON list")
    with _failing(), _opened(name, storage, token) as c:
        if all_:
            rows, columns = _all(c, sql, values)
        else:
            result = c.execute(sql, values, key=key)
            rows, columns = result.fetchall(), [d[0] for d in result.description or ()]
    _print_rows(columns, rows, as_json)


def _all(c, sql: str, values: list) -> tuple[list, list]:
    """Rows and columns of ``--all``: a local cluster's execute_all gives a result a shard."""
    results = c.execute_all(sql, values)
    results = results if isinstance(results, list) else [results]
    columns = [d[0] for d in results[0].description or ()]
    return [row for r in results for row in r.fetchall()], columns


def _print_rows(columns: list, rows: list, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"columns": columns, "rows": [list(r) for r in rows]}, default=repr))
        return
    if not columns:
        console.print("ok")
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)


def _print_info(doc: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(doc))
        return
    table = Table("shard", "slots", "version", "size", "in doubt", title=f"cluster {doc['name']} "
                  f"(map v{doc['map_version']}, {doc['slots']} slots)")
    for shard in doc["shards"]:
        table.add_row(shard["name"], str(shard["slots"]), str(shard["version"]), str(shard["size"]),
                      ", ".join(shard["in_doubt"]) or "-")
    console.print(table)
    console.print(f"decisions on record: {doc['decisions'] or 'none'}", highlight=False)
    console.print(f"2PC metrics (this process): {doc['stats']}", highlight=False)
