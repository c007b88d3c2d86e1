"""``dolite cloudflare``: run the Durable Object Worker locally, or deploy it to Cloudflare.

    dolite cloudflare dev --port 8787 --data ./do-data [--secret S]
    dolite cloudflare deploy [--secret S] [--dry-run]
    dolite cloudflare bench [--quick] [--json] [--rtt-ms N]
    dolite cloudflare install     (the pinned npm packages, done on first use anyway)

The main CLI mounts :data:`app` as its ``cloudflare`` sub-command.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import typer

from dolite.cloudflare.dev import (
    WORKER_DIR,
    WorkerdError,
    cache_root,
    ensure_npm_packages,
    npm_binary,
    start_workerd,
)

app = typer.Typer(
    help="Run dolite's Durable Object Worker locally (workerd) or deploy it to Cloudflare.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


@app.command()
def dev(
    port: int = typer.Option(8787, help="TCP port to listen on (0 picks a free one)."),
    data: Path = typer.Option(..., help="Directory where object data persists."),
    secret: str = typer.Option(
        None, envvar="DOLITE_DO_SECRET", help="Shared secret clients must send (default: random)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
) -> None:
    """Serve the Worker with workerd until Ctrl-C; prints the storage URL to use."""
    try:
        handle = start_workerd(port=port, data_dir=data, secret=secret, host=host)
    except WorkerdError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"workerd serving dolite Durable Objects on {handle.url} (data in {handle.data_dir})")
    typer.echo(f"storage URL: {handle.storage_url}")
    typer.echo(f"log: {handle.log_path}   (Ctrl-C to stop)")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        status = handle.wait()
    except KeyboardInterrupt:
        handle.stop()
        typer.echo("stopped")
        return
    handle.stop()
    raise _fail(f"workerd exited with status {status}:\n{handle.log_tail()}")


@app.command()
def install() -> None:
    """Install the Worker's pinned npm packages (workerd, wrangler) into the per-user cache."""
    try:
        typer.echo(f"npm packages for the dolite Worker in {ensure_npm_packages()}")
    except WorkerdError as exc:
        raise _fail(str(exc)) from None


DEPLOY_FILES = ("wrangler.toml", "src/worker.js", "src/http.js", "src/records.js")
"""What ``wrangler deploy`` needs: the storage Worker alone (never ``src/bench.js``)."""


STORAGE_CLASSES = {"sqlite": "wrangler.toml", "kv": "wrangler-kv.toml"}
"""Durable Object storage kinds and the wrangler config that creates each."""


def _stage_deploy(storage_class: str = "sqlite") -> Path:
    """Copy the Worker's deployable sources into ``cache_root()/deploy`` and return it,
    with the wrangler config of ``storage_class`` as its ``wrangler.toml``.

    wrangler writes state (``.wrangler/``) next to its config, which an installed package's
    directory may not allow, so it runs on this copy, refreshed before every deploy.
    """
    target = cache_root() / "deploy"
    for name in DEPLOY_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        source = STORAGE_CLASSES[storage_class] if name == "wrangler.toml" else name
        shutil.copyfile(WORKER_DIR / source, target / name)
    return target


@app.command()
def deploy(
    secret: str = typer.Option(
        None, envvar="DOLITE_DO_SECRET",
        help="Also store this shared secret as the Worker secret DOLITE_SECRET.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Bundle and validate only; upload nothing."),
    storage_class: str = typer.Option(
        "sqlite", "--storage-class",
        help="Durable Object storage kind: sqlite (any account, the Free plan too) or kv "
             "(accounts that can still create KV-backed classes).",
    ),
) -> None:
    """Deploy the storage Worker to Cloudflare with ``wrangler deploy`` (needs Cloudflare credentials)."""
    if storage_class not in STORAGE_CLASSES:
        raise _fail(f"--storage-class must be one of {', '.join(STORAGE_CLASSES)}, not {storage_class!r}")
    try:
        ensure_npm_packages()
    except WorkerdError as exc:
        raise _fail(str(exc)) from None
    wrangler = npm_binary("wrangler")
    directory = _stage_deploy(storage_class)
    if not dry_run and not os.environ.get("CLOUDFLARE_API_TOKEN") and not _logged_in(wrangler, directory):
        raise _fail(
            "no Cloudflare credentials: set CLOUDFLARE_API_TOKEN (and CLOUDFLARE_ACCOUNT_ID), "
            f"or run `{wrangler} login`"
        )
    outdir = directory / "dist"
    command = [str(wrangler), "deploy"] + (["--dry-run", "--outdir", str(outdir)] if dry_run else [])
    if subprocess.run(command, cwd=directory).returncode != 0:
        raise _fail("wrangler deploy failed (see its output above)")
    if dry_run:
        typer.echo(f"dry run: the bundle is in {outdir}; nothing was uploaded")
        return
    if secret:
        put = subprocess.run(
            [str(wrangler), "secret", "put", "DOLITE_SECRET"], cwd=directory, input=secret.encode()
        )
        if put.returncode != 0:
            raise _fail("wrangler secret put DOLITE_SECRET failed (see its output above)")
    typer.echo("deployed. Point dolite at it with do+https://<worker>.<account>.workers.dev?secret=...")


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="Small sizes; finishes in well under 30 s."),
    json_: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    rtt_ms: float = typer.Option(
        0, "--rtt-ms", min=0, max=1000,
        help="Add this round-trip delay (ms) between the client and workerd, for both sides.",
    ),
) -> None:
    """dolite over a Durable Object vs the same SQL in a SQLite-backed one (local workerd).

    Reports, for both sides, transactions/s, round trips, rows read and written (counted in
    the Worker) and the cost per million transactions; see benchmarks/durable_object.md.
    """
    import json

    from dolite.cloudflare.bench import print_report, run_do_bench

    progress = None if json_ else (lambda message: typer.echo(f"  {message}", err=True))
    try:
        result = run_do_bench(quick=quick, rtt_ms=rtt_ms, progress=progress)
    except WorkerdError as exc:
        raise _fail(str(exc)) from None
    if json_:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_report(result)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _logged_in(wrangler: Path, directory: Path) -> bool:
    """Whether ``wrangler whoami`` finds an OAuth login (only tried when interactive)."""
    if not sys.stdin.isatty() or shutil.which("node") is None:
        return False
    done = subprocess.run([str(wrangler), "whoami"], cwd=directory, capture_output=True, text=True)
    return done.returncode == 0 and "not authenticated" not in (done.stdout + done.stderr).lower()
