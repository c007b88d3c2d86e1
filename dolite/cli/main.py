"""The ``dolite`` command: a thin layer over the library (every command is a library call)."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from dolite.ops import admin, snapshot
from dolite.ops.files import atomic_output
from dolite.ops.sqlite_source import sqlite_view
from dolite.sql.dbapi import DEFAULT_STORAGE
from dolite.errors import AlreadyExists, DatabaseNotFound, DoliteError

app = typer.Typer(help="SQLite databases stored in Durable-Object-style key-value storage.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)

StorageOpt = typer.Option(DEFAULT_STORAGE, "--storage", "-s", envvar="DOLITE_STORAGE",
                          help="Storage URL: lmdb:PATH, memory:, do+http://HOST:PORT, or a server http(s):// URL")


def _fail(exc: Exception | str) -> None:
    err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
    raise typer.Exit(1)


def _missing_store(storage: str) -> Path | None:
    """The folder of an ``lmdb:`` store that does not exist (commands that only read or
    delete must not create it), else None."""
    if not storage.startswith("lmdb:"):
        return None
    path = Path(storage.removeprefix("lmdb:").split("?", 1)[0])
    return None if path.exists() else path


def _existing(storage: str, name: str) -> str:
    """``storage``, or DatabaseNotFound if it is an ``lmdb:`` folder that does not exist."""
    if (path := _missing_store(storage)) is not None:
        raise DatabaseNotFound(f"database {name!r} does not exist (no store at {path})")
    return storage


def _progress(total: int) -> Progress:
    return Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), console=err, transient=True, disable=not err.is_terminal)


@app.command("import")
def import_(file: Path, name: str, storage: str = StorageOpt,
            replace: bool = typer.Option(False, help="Replace an existing database")) -> None:
    """Import a SQLite file (or a base64 JSON export) as database NAME. The file is read as
    SQLite sees it: committed transactions still in its -wal file are included."""
    try:
        if storage.startswith(("http://", "https://")):
            with sqlite_view(file) as source:
                facts = _remote(storage).import_from(name, source.file, replace=replace)
            _notes(source.notes)
            console.print(f"imported {file} as {name!r} on {storage}: {facts}")
        else:
            with _progress(file.stat().st_size) as bar:
                task = bar.add_task(f"import {name}", total=file.stat().st_size)
                imported = snapshot.import_file(storage, name, file, replace=replace,
                                                progress=lambda n: bar.advance(task, n))
            _notes(imported.notes)
            console.print(f"imported {file} as {name!r}: {imported.head.size} bytes, "
                          f"version {imported.head.version}")
    except (AlreadyExists, FileExistsError):
        _fail(f"database {name!r} already exists: pass --replace to replace it")
    except (DoliteError, OSError) as exc:
        _fail(exc)


def _notes(notes: list[str]) -> None:
    for note in notes:
        err.print(f"[yellow]note:[/] {note}")


@app.command()
def export(name: str, file: str = typer.Argument(..., help="Output file, or - for standard output"),
           storage: str = StorageOpt,
           base64: bool = typer.Option(False, "--base64", help="Write base64 JSON instead of .sqlite"),
           force: bool = typer.Option(False, "--force", "-f", help="Overwrite FILE if it exists")) -> None:
    """Export database NAME to a plain SQLite FILE (or base64 JSON), or to standard output
    with "-". FILE appears only once the export is complete; on failure an existing FILE is
    left as it was. An existing FILE is only overwritten with --force."""
    to_stdout = file == "-"
    dest = sys.stdout.buffer if to_stdout else Path(file)
    if not to_stdout and dest.exists() and not force:
        _fail(f"{file} exists: pass --force to overwrite it")
    say = err if to_stdout else console
    try:
        if storage.startswith(("http://", "https://")):
            if base64:
                raise typer.BadParameter("--base64 is not available from a server")
            if to_stdout:
                written = _remote(storage).export_to(name, dest)
            else:
                with atomic_output(dest) as out:
                    written = _remote(storage).export_to(name, out)
            say.print(f"exported {name!r} from {storage} to {file}: {written} bytes")
            return
        size = admin.info(_existing(storage, name), name)["size"]
        with _progress(size) as bar:
            task = bar.add_task(f"export {name}", total=size)
            written = snapshot.export_file(storage, name, dest, base64_json=base64,
                                           progress=lambda n: bar.advance(task, n))
        if to_stdout:
            dest.flush()
        say.print(f"exported {name!r} to {file}: {written} bytes")
    except (DoliteError, OSError) as exc:
        _fail(exc)


@app.command()
def shell(name: str, storage: str = StorageOpt,
          token: Optional[str] = typer.Option(None, envvar="DOLITE_TOKEN", help="Server token"),
          create: bool = typer.Option(False, "--create", help="Create database NAME if it does not exist")) -> None:
    """A SQL prompt on database NAME, like the sqlite3 CLI (".help" lists the dot commands).
    Statements autocommit unless wrapped in BEGIN ... COMMIT. On a terminal: line editing,
    history, Ctrl-C drops the line, Ctrl-D exits. Piped input runs without prompts and
    stops at the first error with exit status 1 (like sqlite3 -bail)."""
    from dolite.cli.shell import run_shell

    try:
        code = run_shell(name, storage, token=token, create=create)
    except DatabaseNotFound:
        _fail(f"no database {name!r} in {storage}: pass --create to make it")
    except DoliteError as exc:
        _fail(exc)
    raise typer.Exit(code)


@app.command()
def check(name: str, storage: str = StorageOpt,
          salvage: Optional[Path] = typer.Option(None, "--salvage", metavar="FILE",
                                                 help="Also copy every readable row into a new SQLite FILE"),
          repair: bool = typer.Option(False, "--repair", help="First reset a damaged write lease or GC "
                                      "cursor (they hold no data) and, with --from, replace each corrupt chunk "
                                      "version with the identical, verified bytes from that backup"),
          from_: Optional[str] = typer.Option(None, "--from", help="Backup URL to repair chunks from (with --repair)")) -> None:
    """Verify every stored chunk's checksum, name the tables and indexes owning damaged
    pages, and run PRAGMA integrity_check. With --repair, first reset a damaged lease or
    GC cursor; with --repair --from URL, also repair the chunks the backup can (and say
    exactly what it cannot)."""
    if from_ is not None and not repair:
        _fail("--from goes with --repair: dolite check NAME --repair --from URL")
    try:
        if repair:
            for line in admin.reset_damaged_records(_existing(storage, name), name):
                console.print(f"reset: {line}", highlight=False)
        if from_ is not None:
            _repair(_existing(storage, name), name, from_)
        report = admin.check(_existing(storage, name), name)
    except DoliteError as exc:
        _fail(exc)
    for problem in report.corrupt:
        err.print(f"[red]corrupt:[/] {problem}")
    if repair and from_ is None and report.corrupt:
        err.print(f"corrupt chunk versions are repaired from a backup: dolite check {name} --repair --from URL")
    console.print(f"{name}: {report.chunks_checked} chunk versions checked, "
                  f"{len(report.corrupt)} corrupt; integrity_check: {'; '.join(report.integrity[:5])}")
    if salvage is not None:
        _salvage(storage, name, salvage)
    raise typer.Exit(0 if report.ok else 2)


def _repair(storage: str, name: str, from_: str) -> None:
    from dolite.backup import repair

    result = repair(storage, name, from_=from_)
    for fixed in result.repaired:
        console.print(f"repaired: {fixed}", highlight=False)
    for problem in result.unrepairable:
        err.print(f"[red]not repaired:[/] {problem}", highlight=False)
    console.print(f"{name}: {len(result.repaired)} chunk versions repaired from {result.target}, "
                  f"{len(result.unrepairable)} not repairable", highlight=False)


def _salvage(storage: str, name: str, dest: Path) -> None:
    from dolite.ops.salvage import salvage

    try:
        saved = salvage(storage, name, dest)
    except (DoliteError, OSError) as exc:
        _fail(exc)
    for table in saved.tables:
        lost = ", ".join(f"({'-inf' if lo is None else lo}, {'+inf' if hi is None else hi}]" for lo, hi in table.lost)
        console.print(f"salvaged {table.name}: {table.rows} rows"
                      + (f"; lost rowid ranges {lost}" if lost else "")
                      + (f"; {table.error}" if table.error else ""))
    for skipped in saved.skipped:
        err.print(f"[yellow]not salvaged:[/] {skipped}")
    console.print(f"wrote {dest}" + ("" if saved.complete else " (incomplete: see above)"))


@app.command()
def gc(names: list[str] = typer.Argument(None, help="Databases to collect (or --all)"),
       storage: str = StorageOpt,
       all_: bool = typer.Option(False, "--all", help="Every database in the store"),
       drop_history: bool = typer.Option(False, "--drop-history",
                                         help="Also delete versions inside the retention window "
                                              "(point-in-time restore to them becomes impossible)")) -> None:
    """Garbage-collect old versions now, freeing space (a way out of a full store)."""
    try:
        if all_ == bool(names):
            raise typer.BadParameter("name databases or give --all, not both")
        for name in admin.list_databases(_existing(storage, "")) if all_ else names:
            _existing(storage, name)
            console.print(f"{name}: {admin.gc(storage, name, drop_history=drop_history)} keys deleted")
    except DoliteError as exc:
        _fail(exc)


@app.command()
def rm(name: str, storage: str = StorageOpt,
       yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation")) -> None:
    """Delete database NAME and every version of it (works on a full store)."""
    if _missing_store(storage) is None and not yes:
        typer.confirm(f"delete database {name!r} and all its versions?", abort=True)
    try:
        admin.drop(_existing(storage, name), name)
    except DoliteError as exc:
        _fail(exc)
    console.print(f"deleted {name!r}")


@app.command("ls")
def ls(storage: str = StorageOpt) -> None:
    """List databases (a store folder that does not exist is listed as empty, not created)."""
    if (path := _missing_store(storage)) is not None:
        err.print(f"note: no store at {path}: no databases", highlight=False)
        return
    try:
        remote = storage.startswith(("http://", "https://"))
        for name in _remote(storage).databases() if remote else admin.list_databases(storage):
            console.print(name, highlight=False)
    except DoliteError as exc:
        _fail(exc)


@app.command()
def info(name: str, storage: str = StorageOpt,
         as_json: bool = typer.Option(False, "--json", help="Print JSON (raw numbers: bytes, Unix seconds)")) -> None:
    """Size, pages, versions, chunks, last commit, write lease and replicas' last sync of
    database NAME."""
    from dolite.cli.human import info_rows

    try:
        remote = storage.startswith(("http://", "https://"))
        facts = _remote(storage).info(name) if remote else admin.info(_existing(storage, name), name)
    except DoliteError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    replicas = facts.pop("replicas", [])
    table = Table(show_header=False, box=None)
    for label, text in info_rows(facts) + _replica_rows(replicas):
        table.add_row(label, text)
    console.print(table, highlight=False)


def _replica_rows(replicas: list[dict] | str) -> list[tuple[str, str]]:
    """One row per local replica that pushed to the database: its last sequence number
    applied and when (admin.info's ``replicas``)."""
    from dolite.cli.human import moment

    if isinstance(replicas, str):
        return [("replicas", replicas)]
    return [(f"replica {r['replica']}", f"seq {r['seq']}, last sync "
             + (moment(r["synced"]) if r["synced"] is not None else "not recorded")) for r in replicas]


@app.command()
def versions(name: str, storage: str = StorageOpt) -> None:
    """Versions of NAME that can still be restored (within its retention window)."""
    from dolite.cli.human import utc
    from dolite.ops.restore import retained_versions

    try:
        for version, at in retained_versions(_existing(storage, name), name):
            console.print(f"{version}\t{utc(at)}", highlight=False)
    except DoliteError as exc:
        _fail(exc)


@app.command()
def restore(name: str, storage: str = StorageOpt,
            version: Optional[int] = typer.Option(None, "--version", help="Version to go back to"),
            at: Optional[str] = typer.Option(None, "--at", help="Time to go back to: ISO 8601 (local time "
                                             "unless it names a zone), Unix seconds, or ago: -5m, -2h, -1d"),
            into: Optional[str] = typer.Option(None, "--into", help="Copy into this new database instead")) -> None:
    """Point-in-time restore of NAME to a retained version (as a new version on top)."""
    from dolite.cli.human import parse_at
    from dolite.ops.restore import restore as restore_database

    if (version is None) == (at is None):
        _fail("give exactly one of --version or --at")
    try:
        when = None if at is None else parse_at(at)
        head = restore_database(_existing(storage, name), name, version=version, at=when, into=into)
    except FileExistsError:
        _fail(f"database {into!r} already exists: --into needs a new name")
    except (DoliteError, ValueError) as exc:
        _fail(exc)
    console.print(f"restored {name!r}{f' into {into!r}' if into else ''}: now version {head.version}, "
                  f"{head.size} bytes", highlight=False)


@app.command()
def fork(source: str, new: str, storage: str = StorageOpt,
         version: Optional[int] = typer.Option(None, "--version", help="Retained version to fork from"),
         at: Optional[str] = typer.Option(None, "--at", help="Fork the version current at this time: ISO 8601 "
                                          "(local time unless it names a zone), Unix seconds, or ago: -5m, -2h")) -> None:
    """Make NEW a writable copy of SOURCE as of its current version, or of any retained
    --version / --at (SOURCE is not changed)."""
    from dolite.cli.human import parse_at
    from dolite.ops.fork import fork as fork_database

    if version is not None and at is not None:
        _fail("give at most one of --version or --at")
    try:
        when = None if at is None else parse_at(at)
        head = fork_database(_existing(storage, source), source, new, version=version, at=when)
    except (DoliteError, ValueError) as exc:
        _fail(exc)
    console.print(f"forked {source!r} into {new!r}: {head.size} bytes", highlight=False)


@app.command()
def demo(storage: str = StorageOpt) -> None:
    """A short tour on the embedded store: create, write, read, check."""
    from dolite.cli.demo import run_demo

    run_demo(storage, console)


# Commands that live with the subsystem they drive.
for command, target in [("serve", "dolite.server.cli:serve"), ("bench", "dolite.bench.cli:bench")]:
    module, attr = target.split(":")
    try:
        app.command(command)(getattr(importlib.import_module(module), attr))
    except ImportError as exc:  # pragma: no cover - only while a subsystem is missing
        if os.environ.get("DOLITE_DEBUG"):
            print(f"dolite: {command} unavailable: {exc}", file=sys.stderr)
from dolite.cli.backup import backup_app  # noqa: E402 - after the commands it sits beside

app.add_typer(backup_app, name="backup", help="Back up to file:// or s3:// and restore, verified.")
from dolite.cli.cluster import cluster_app  # noqa: E402
app.add_typer(cluster_app, name="cluster", help="Clusters: many databases, atomic cross-shard transactions.")
try:
    from dolite.cloudflare.cli import app as cloudflare_app

    app.add_typer(cloudflare_app, name="cloudflare", help="Run or deploy the Durable Object Worker.")
except ImportError:  # pragma: no cover
    pass


def _remote(url: str):
    from dolite.remote.client import Client

    return Client(url, token=os.environ.get("DOLITE_TOKEN"))


if __name__ == "__main__":
    app()
