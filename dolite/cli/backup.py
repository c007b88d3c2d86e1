"""``dolite backup``: push databases to a backup target, list and restore their versions.
A thin layer over :mod:`dolite.backup` (every command is one library call)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from dolite import backup
from dolite.errors import Error
from dolite.sql.dbapi import DEFAULT_STORAGE
from dolite.storage import open_storage

backup_app = typer.Typer(help="Continuous backups to a folder (file:///DIR) or an S3-compatible store "
                              "(s3://BUCKET/PREFIX?endpoint_url=...).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

StorageOpt = typer.Option(DEFAULT_STORAGE, "--storage", "-s", envvar="DOLITE_STORAGE",
                          help="Storage URL: lmdb:PATH, memory:, do+http://HOST:PORT")
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON")


def _fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(1)


def _local(storage: str) -> str:
    if storage.startswith(("http://", "https://")):
        raise typer.BadParameter("backups run next to the storage, not through a dolite server: "
                                 "give the server's storage URL (lmdb:, do+http://)", param_hint="--storage")
    return storage


@contextmanager
def _bar(what: str):
    """A progress callback ``(done, total)`` drawing a bar on a terminal (nothing otherwise)."""
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@backup_app.command()
def push(name: Optional[str] = typer.Argument(None, help="Database to back up (or --all)"),
         to: str = typer.Option(..., "--to", help="Target URL: file:///DIR or s3://BUCKET/PREFIX?endpoint_url=URL"),
         all_: bool = typer.Option(False, "--all", help="Back up every database in the storage"),
         storage: str = StorageOpt, as_json: bool = JsonOpt) -> None:
    """Copy the versions of NAME committed since the last push (the first push copies the
    current version whole). Resumes where an interrupted push stopped."""
    if bool(name) == all_:
        raise typer.BadParameter("give a database NAME or --all (not both)")
    try:
        names = [name] if name else open_storage(_local(storage)).names()
        target = backup.open_target(to)

        def push_one(db):
            with _bar(f"push {db}") as progress:
                return [backup.push(_local(storage), db, to=target, progress=progress)]
        results, locked = _each_unless_locked(names, push_one)
    except Error as exc:
        _fail(exc)
    if as_json:
        console.print_json(json.dumps([r.as_dict() for r in results] if all_ else results[0].as_dict()))
    else:
        for r in results:
            span = f"v{r.versions[0]}..v{r.versions[-1]}" if r.versions else "nothing new"
            console.print(f"{r.name} -> {r.target}: {span}, {r.chunks_uploaded} chunks uploaded "
                          f"({r.bytes_uploaded} bytes), {r.chunks_present} already there; backed up to v{r.version}")
            if r.full_snapshot:
                err.print(f"[yellow]note:[/] {r.name}: full snapshot of v{r.version}: {r.reason}")
    _report_locked(locked)


def _each_unless_locked(names: list[str], run) -> tuple[list, list[Error]]:
    """``run(name)`` (a list of results) for each database; one locked by another push or
    prune is skipped, not the end of the rest (a single NAME that is locked still fails)."""
    results, locked = [], []
    for name in names:
        try:
            results += run(name)
        except backup.BackupLocked as exc:
            if len(names) == 1:
                raise
            locked.append(exc)
    return results, locked


def _report_locked(locked: list[Error]) -> None:
    for exc in locked:
        err.print(f"[bold red]skipped:[/] {exc}")
    if locked:
        raise typer.Exit(1)


@backup_app.command("list")
def list_(name: str, from_: str = typer.Option(..., "--from", help="Target URL"), as_json: bool = JsonOpt) -> None:
    """The restorable versions of NAME in the target, with their commit times."""
    try:
        versions = backup.list_versions(name, from_=from_)
    except Error as exc:
        _fail(exc)
    if as_json:
        console.print_json(json.dumps([{"version": v.version, "time": v.time} for v in versions]))
        return
    table = Table("version", "committed (UTC)")
    for v in versions:
        table.add_row(str(v.version), datetime.fromtimestamp(v.time, timezone.utc).isoformat(timespec="milliseconds"))
    console.print(table)


@backup_app.command()
def restore(name: str, from_: str = typer.Option(..., "--from", help="Target URL"),
            into: str = typer.Option(..., "--into", help="New database to create"),
            version: Optional[int] = typer.Option(None, "--version", help="Backed-up version to restore"),
            at: Optional[str] = typer.Option(None, "--at", help="Restore the version current at this time: "
                                             "Unix seconds or ISO 8601 (UTC unless an offset is given)"),
            storage: str = StorageOpt, as_json: bool = JsonOpt) -> None:
    """Restore NAME (its newest backup, or --version / --at) as the new database INTO. Every
    chunk is checked against its hash and the file passes integrity_check before INTO exists."""
    try:
        with _bar(f"restore {name}") as progress:
            result = backup.restore(name, from_=from_, storage=_local(storage), into=into, version=version,
                                    at=parse_time(at) if at is not None else None, progress=progress)
    except Error as exc:
        _fail(exc)
    if as_json:
        console.print_json(json.dumps(result.as_dict()))
        return
    when = datetime.fromtimestamp(result.time, timezone.utc).isoformat(timespec="milliseconds")
    console.print(f"restored {name} v{result.version} ({when}, {result.size} bytes) as {into!r}")


def parse_time(text: str) -> float:
    """Unix seconds, or an ISO 8601 date and time (UTC unless it carries an offset)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is neither Unix seconds nor an ISO 8601 time", param_hint="--at") from exc
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


@backup_app.command()
def verify(name: str, from_: str = typer.Option(..., "--from", help="Target URL"), as_json: bool = JsonOpt) -> None:
    """Check NAME's backup: re-hash every chunk of every manifest and integrity-check the
    newest version, assembled in a temporary file (no database is created). Exit 1 if
    anything is damaged, naming it and the versions it affects."""
    try:
        with _bar(f"verify {name}") as progress:
            result = backup.verify(name, from_=from_, progress=progress)
    except Error as exc:
        _fail(exc)
    if as_json:
        console.print_json(json.dumps(result.as_dict()))
    else:
        console.print(f"{name} at {result.target}: {result.versions} versions, {result.chunks} chunks "
                      f"({result.bytes} bytes) verified; newest restorable: "
                      f"{'v%d' % result.newest if result.newest is not None else 'NO'} "
                      f"({result.seconds:.1f} s)")
        for problem in result.problems:
            err.print(f"[bold red]damaged:[/] {problem}")
    if not result.ok:
        raise typer.Exit(1)


@backup_app.command()
def prune(name: Optional[str] = typer.Argument(None, help="Database to prune (default: every database "
                                              "in the target)"),
          from_: str = typer.Option(..., "--from", help="Target URL"),
          keep: str = typer.Option(..., "--keep", help="Window to keep: 30d, 12h, 90m, 2w"),
          as_json: bool = JsonOpt) -> None:
    """Delete backed-up versions older than --keep and the chunks only they use. Every
    version inside the window (and the one current at its start) stays restorable; the
    newest backup is always kept. Safe beside pushes: the database's backup lock refuses the
    one that comes second (BackupLocked) until the other has finished."""
    try:
        seconds = backup.parse_duration(keep)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--keep") from None
    try:
        target = backup.open_target(from_)
        names = [name] if name is not None else backup.databases(target)
        results, locked = _each_unless_locked(names, lambda db: backup.prune(db, from_=target, keep=seconds))
    except Error as exc:
        _fail(exc)
    if as_json:
        console.print_json(json.dumps([r.as_dict() for r in results]))
    else:
        for r in results:
            console.print(f"{r.name} at {r.target}: {r.manifests_deleted} versions and {r.chunks_deleted} chunks "
                          f"deleted; {r.kept} manifests kept, oldest restorable v{r.oldest_kept}")
    _report_locked(locked)
