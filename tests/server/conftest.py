"""Real ``dolite serve`` processes on free loopback ports, for the end-to-end suite."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server on a fresh LMDB directory, shared by a test module."""
    path = tmp_path_factory.mktemp("serve")
    srv = Server(f"lmdb:{path}/data", "--statement-timeout", "2", "--max-body", "65536",
                 "--max-result", "200000", "--max-statements", "50", "--session-timeout", "3",
                 log=path / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture
def http(server):
    with server.http() as client:
        yield client


@pytest.fixture
def db(http, request):
    """A fresh database named after the test."""
    import re
    import zlib

    node = request.node.name
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", node)[:80].strip("-.") + f"-{zlib.crc32(node.encode()):08x}"
    http.delete(f"/v1/databases/{name}")
    assert http.post("/v1/databases", json={"name": name}).status_code == 201
    return name
