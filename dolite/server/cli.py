"""``dolite serve``: the HTTP service on one storage namespace (registered by dolite/cli/main.py)."""

from __future__ import annotations

import functools
import ipaddress
import socket
import sys
from pathlib import Path

import typer

from dolite.storage import DEFAULT_STORAGE


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cannot_listen(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (None if it can): bound here as uvicorn will
    bind it (SO_REUSEADDR), so a busy port is told in one line before anything starts."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return exc.strerror
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def serve(
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", "-s", envvar="DOLITE_STORAGE",
                                help="Storage URL: lmdb:PATH, memory:, do+http://HOST:PORT"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    port: int = typer.Option(8787, "--port", help="Port to listen on"),
    backup_to: str | None = typer.Option(
        None, "--backup-to", "--backup-target", envvar="DOLITE_BACKUP_TO",
        help="Back up every database continuously to this URL (file:///DIR or s3://BUCKET/PREFIX); "
             "the console and /v1/health report each database's lag behind it"),
    backup_every: str = typer.Option("10s", "--backup-every", help="With --backup-to: push the databases "
                                     "that committed since their last push this often (10s, 1m, 500ms)"),
    backup_max_lag: float = typer.Option(60.0, "--backup-max-lag", help="With --backup-to: /healthz says "
                                         "degraded while a commit has waited longer than this for its backup, s"),
    token: str | None = typer.Option(None, "--token", envvar="DOLITE_TOKEN",
                                        help="Bearer token with admin access to every database"),
    token_file: Path | None = typer.Option(None, "--token-file",
                                              help="JSON file of tokens with per-database read/write/admin scopes"),
    lease_ttl: float = typer.Option(30.0, help="Seconds a write lease lasts without renewal"),
    idle_timeout: float = typer.Option(10.0, help="Evict a database idle this many seconds"),
    session_timeout: float = typer.Option(10.0, help="Roll back a session idle this many seconds"),
    session_lifetime: float = typer.Option(60.0, help="Roll back a session this many seconds after it opened"),
    max_sessions: int = typer.Option(64, help="Sessions open at once"),
    token_sessions: int = typer.Option(8, help="Sessions open at once per token"),
    queue_timeout: float = typer.Option(30.0, help="Give up (503) after waiting this long for a busy database"),
    request_timeout: float = typer.Option(30.0, help="Total deadline of a request (queueing and all its "
                                          "statements), seconds"),
    token_concurrency: int = typer.Option(8, help="Requests one token runs at once"),
    token_queue: int = typer.Option(64, help="Requests of one token waiting beyond those (then 429)"),
    workers: int = typer.Option(32, help="Worker threads running SQL"),
    memory_budget: int = typer.Option(1 << 30, help="SQLite's heap limit for the whole process, bytes "
                                      "(page caches, sorts, values; see docs/SECURITY.md)"),
    max_temp: int = typer.Option(64 << 20, help="Temporary storage (sorts, temp indexes) of one request, bytes"),
    max_temp_total: int = typer.Option(256 << 20, help="Temporary storage of all requests together, bytes"),
    max_connections: int = typer.Option(1000, help="Open HTTP connections; more get 503"),
    header_timeout: float = typer.Option(10.0, help="Seconds for a request's line and headers to arrive"),
    body_timeout: float = typer.Option(30.0, help="Seconds for a request body to arrive (plus 1 s per 64 KiB)"),
    keep_alive: float = typer.Option(5.0, help="Close an idle keep-alive connection after this many seconds"),
    max_objects: int = typer.Option(256, help="Databases loaded at once"),
    max_body: int = typer.Option(1 << 20, help="Largest JSON request body, bytes"),
    max_import: int = typer.Option(1 << 30, help="Largest imported file, bytes"),
    max_result: int = typer.Option(8 << 20, help="Largest result of one request, bytes (approximate)"),
    max_statements: int = typer.Option(1000, help="Most statements in one batch"),
    statement_timeout: float = typer.Option(10.0, help="Interrupt a statement running longer, seconds"),
    cache_bytes: int = typer.Option(16 << 20, help="Page cache per loaded database, bytes"),
    log_level: str = typer.Option("warning", help="uvicorn log level"),
) -> None:
    """Serve databases over HTTP (see docs/SERVICE.md). Refuses a non-loopback address
    without a token."""
    import uvicorn

    from dolite.server.objects import Bounds, HostConfig, ObjectConfig, ObjectHost
    from dolite.server.objects.sessions import SessionLimits
    from dolite.server.app import ServiceConfig, create_app
    from dolite.server.auth import Auth
    from dolite.server.backup_loop import parse_period
    from dolite.errors import DoliteError
    from dolite.server.protocol import BodyTimeout, ConnectionLimits, GuardedH11Protocol

    try:
        auth = Auth.from_options(token, token_file)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not auth.enabled and not is_loopback(host):
        typer.echo(f"error: refusing to listen on {host} without a token: pass --token or --token-file "
                   "(or listen on 127.0.0.1)", err=True)
        raise typer.Exit(2)
    shown = f"[{host}]" if ":" in host else host
    if (problem := cannot_listen(host, port)) is not None:
        typer.echo(f"error: cannot listen on {shown}:{port}: {problem}", err=True)
        raise typer.Exit(2)
    bounds = Bounds(max_statements=max_statements, max_result_bytes=max_result,
                    statement_seconds=statement_timeout, max_temp_bytes=max_temp)
    sessions = SessionLimits(idle_timeout=session_timeout, lifetime=session_lifetime, max_open=max_sessions,
                             max_per_token=token_sessions)
    config = HostConfig(object=ObjectConfig(lease_ttl=lease_ttl, cache_bytes=cache_bytes, bounds=bounds),
                        idle_timeout=idle_timeout, max_objects=max_objects, sessions=sessions,
                        queue_timeout=queue_timeout, workers=workers, temp_bytes=max_temp_total,
                        sqlite_heap_bytes=memory_budget)
    try:
        object_host = ObjectHost(storage, config)
    except Exception as exc:  # noqa: BLE001 - a bad URL or unreachable storage
        typer.echo(f"error: cannot open storage {storage}: {exc}", err=True)
        raise typer.Exit(2) from None
    service = ServiceConfig(max_body_bytes=max_body, max_import_bytes=max_import, max_statements=max_statements,
                            request_timeout=request_timeout, token_concurrency=token_concurrency,
                            token_queue=token_queue, body_timeout=BodyTimeout(seconds=body_timeout))
    try:
        every = parse_period(backup_every)
        app = create_app(object_host, auth, service, backup_target=backup_to,
                         backup_every=every if backup_to else None, backup_max_lag=backup_max_lag)
    except (ValueError, DoliteError) as exc:  # a bad backup URL or period
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    protocol = functools.partial(GuardedH11Protocol, limits=ConnectionLimits(max_connections, header_timeout))
    print(f"dolite: serving {storage} on http://{shown}:{port}"
          f"{'' if auth.enabled else ' (no token: loopback only)'}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, http=protocol,
                timeout_keep_alive=keep_alive, timeout_graceful_shutdown=5)


def main() -> None:
    """``python -m dolite.server``."""
    typer.run(serve)
