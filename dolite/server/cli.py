"""``dolite serve``: the HTTP service on one storage namespace (registered by dolite/cli/main.py)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import typer

DEFAULT_STORAGE = "lmdb:./.dolite"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", "-s", envvar="DOLITE_STORAGE",
                                help="Storage URL: lmdb:PATH, memory:, do+http://HOST:PORT"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    port: int = typer.Option(8787, "--port", help="Port to listen on"),
    token: str | None = typer.Option(None, "--token", envvar="DOLITE_TOKEN",
                                        help="Bearer token with admin access to every database"),
    token_file: Path | None = typer.Option(None, "--token-file",
                                              help="JSON file of tokens with per-database read/write/admin scopes"),
    lease_ttl: float = typer.Option(30.0, help="Seconds a write lease lasts without renewal"),
    idle_timeout: float = typer.Option(10.0, help="Evict a database idle this many seconds"),
    session_timeout: float = typer.Option(10.0, help="Roll back a session idle this many seconds"),
    queue_timeout: float = typer.Option(30.0, help="Give up (503) after waiting this long for a busy database"),
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
    from dolite.server.app import ServiceConfig, create_app
    from dolite.server.auth import Auth

    try:
        auth = Auth.from_options(token, token_file)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not auth.enabled and not is_loopback(host):
        typer.echo(f"error: refusing to listen on {host} without a token: pass --token or --token-file "
                   "(or listen on 127.0.0.1)", err=True)
        raise typer.Exit(2)
    bounds = Bounds(max_statements=max_statements, max_result_bytes=max_result,
                    statement_seconds=statement_timeout)
    config = HostConfig(object=ObjectConfig(lease_ttl=lease_ttl, cache_bytes=cache_bytes, bounds=bounds),
                        idle_timeout=idle_timeout, max_objects=max_objects, session_timeout=session_timeout,
                        queue_timeout=queue_timeout)
    try:
        object_host = ObjectHost(storage, config)
    except Exception as exc:  # noqa: BLE001 - a bad URL or unreachable storage
        typer.echo(f"error: cannot open storage {storage}: {exc}", err=True)
        raise typer.Exit(2) from None
    app = create_app(object_host, auth, ServiceConfig(max_body_bytes=max_body, max_import_bytes=max_import,
                                                      max_statements=max_statements))
    shown = f"[{host}]" if ":" in host else host
    print(f"dolite: serving {storage} on http://{shown}:{port}"
          f"{'' if auth.enabled else ' (no token: loopback only)'}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=5)


def main() -> None:
    """``python -m dolite.server``."""
    typer.run(serve)
