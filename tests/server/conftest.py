"""Servers for the service's tests: the app in-process, or real ``dolite serve`` processes.

In-process (``app_http``, ``app_db``, :func:`in_process`): the Starlette app of
``create_app`` driven by an ``httpx.AsyncClient`` over ``httpx.ASGITransport``, on an event
loop of its own thread (an anyio blocking portal) that also runs the app's lifespan, so the
object host starts and stops as under uvicorn; tests call it synchronously. Used by
test_api.py (routes, values, errors, bounds, sessions) and test_auth.py (tokens and
scopes): they test what the app answers, need no socket, and start in milliseconds.
``app_http`` has the limits the ``server`` fixture passes on the command line.

A subprocess (``server``, ``http``, ``db``, :class:`Server`) wherever the test needs a
real process or socket:

- test_restart.py, test_torture.py, test_lease.py: SIGKILL, restart, two processes on one
  LMDB directory (the lease between processes);
- test_hostile.py: slowloris, header/body timeouts, malformed framing (Content-Length),
  connection limits and the RSS budget belong to uvicorn and the guarded h11 protocol;
- test_api.py's client tests, test_sql_compat.py, test_concurrency.py, test_docs.py,
  test_fuzz.py: the Python client, the HTTP DB-API driver, curl and schemathesis take a URL;
- test_auth.py's startup refusals: the exit code and message of ``dolite serve``;
- test_backends.py, test_backup_loop.py, test_clusters.py: the command-line options end
  to end (storage URLs, the backup loop, clusters);
- test_objects.py: it reads the process's Prometheus gauges, which an in-process app would
  share with every other app of the test process.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import anyio.from_thread
import httpx
import pytest

from dolite.server.app import ServiceConfig, create_app
from dolite.server.auth import Auth
from dolite.server.objects import Bounds, HostConfig, ObjectConfig, ObjectHost
from dolite.server.objects.sessions import SessionLimits

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``python -m dolite.server`` subprocess."""

    def __init__(self, storage: str, *args: str, token: str | None = TOKEN, port: int | None = None,
                 log: Path | None = None):
        self.storage, self.args, self.token = storage, list(args), token
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "dolite.server", "--storage", self.storage,
               "--host", "127.0.0.1", "--port", str(self.port), *self.args]
        if self.token:
            cmd += ["--token", self.token]
        return cmd

    def start(self, timeout: float = 20.0) -> Server:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=out, stderr=out,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease release."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def headers(self, token: str | None = None) -> dict:
        token = token or self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def http(self, token: str | None = None, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(token), timeout=30, **kwargs)


def start_with_second_admin(path: Path, token: str, *options: str) -> Server:
    """A server on a fresh LMDB directory under ``path`` whose token file adds ``token`` as
    a second admin token (state set by one token must not reach another's requests)."""
    (path / "tokens.json").write_text(json.dumps({"tokens": [{"token": token, "scopes": {"*": "admin"}}]}))
    return Server(f"lmdb:{path}/data", "--token-file", str(path / "tokens.json"), *options,
                  log=path / "server.log").start()


# The limits of both module servers below, as ``dolite serve`` options and as the configs
# that ``serve`` builds from them (dolite/server/cli.py).
LIMITS = {"statement_timeout": 2, "max_body": 65536, "max_result": 200_000, "max_statements": 50,
          "session_timeout": 3}


def limit_options() -> list[str]:
    return [arg for key, value in LIMITS.items() for arg in (f"--{key.replace('_', '-')}", str(value))]


def limit_configs() -> tuple[HostConfig, ServiceConfig]:
    bounds = Bounds(max_statements=LIMITS["max_statements"], max_result_bytes=LIMITS["max_result"],
                    statement_seconds=LIMITS["statement_timeout"])
    host = HostConfig(object=ObjectConfig(bounds=bounds),
                      sessions=SessionLimits(idle_timeout=LIMITS["session_timeout"]))
    return host, ServiceConfig(max_body_bytes=LIMITS["max_body"], max_statements=LIMITS["max_statements"])


class InProcessClient:
    """The synchronous face of an ``httpx.AsyncClient`` over the app: each request runs on
    the portal's event loop, the loop the app's lifespan started the object host on."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, client: httpx.AsyncClient):
        self.portal, self.client = portal, client

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@contextlib.contextmanager
def in_process(storage: str, auth: Auth, host: HostConfig | None = None, service: ServiceConfig | None = None,
               token: str | None = None):
    """A client of the app of ``create_app`` running in this process, its lifespan (the
    object host) started on entry and stopped on exit; ``token`` is sent by default. An
    exception the app does not turn into a response fails the test (no silent 500)."""
    app = create_app(ObjectHost(storage, host or HostConfig()), auth, service or ServiceConfig())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://dolite.test", headers=headers)
    with anyio.from_thread.start_blocking_portal() as portal, \
            portal.wrap_async_context_manager(app.router.lifespan_context(app)), \
            portal.wrap_async_context_manager(client):
        yield InProcessClient(portal, client)


def fresh_database(http: httpx.Client | InProcessClient, test_name: str) -> str:
    """A new, empty database named after the test (any old one of that name deleted)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name)[:80].strip("-.") + f"-{zlib.crc32(test_name.encode()):08x}"
    http.delete(f"/v1/databases/{name}")
    assert http.post("/v1/databases", json={"name": name}).status_code == 201
    return name


@pytest.fixture(scope="module")
def app_http(tmp_path_factory):
    """The app in-process on a fresh LMDB directory, with the limits of ``server``, shared by
    a test module; admin token :data:`TOKEN`."""
    host, service = limit_configs()
    path = tmp_path_factory.mktemp("app")
    with in_process(f"lmdb:{path}/data", Auth.from_options(TOKEN), host, service, token=TOKEN) as client:
        yield client


@pytest.fixture
def app_db(app_http, request):
    return fresh_database(app_http, request.node.name)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server on a fresh LMDB directory, shared by a test module."""
    path = tmp_path_factory.mktemp("serve")
    srv = Server(f"lmdb:{path}/data", *limit_options(), log=path / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture
def http(server):
    with server.http() as client:
        yield client


@pytest.fixture
def db(http, request):
    return fresh_database(http, request.node.name)
