"""Run the dolite storage Worker locally under ``workerd``, Cloudflare's open-source runtime.

The Worker's sources ship inside the package (:data:`WORKER_DIR`); its pinned npm packages
(workerd, wrangler) are installed once per user, on first use, into a cache directory named
by the hash of ``package.json`` and ``package-lock.json`` (:func:`npm_dir`), so a checkout and
a ``pip install dolite`` behave the same and no ``node_modules`` is ever shipped::

    handle = start_workerd(port=0, data_dir="./do-data", secret="s3cret")
    url = handle.storage_url         # do+http://127.0.0.1:PORT?secret=s3cret
    ...
    handle.stop()

``port=0`` lets the kernel pick a free port; workerd reports it on a control pipe, so there
is no race between choosing a port and binding it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from dolite.errors import DoliteError

WORKER_DIR = Path(__file__).resolve().parent / "worker"
"""The Worker as shipped: ``src/*.js``, the workerd configs, ``wrangler.toml``, ``package*.json``."""

CONFIGS = {"storage": "workerd.capnp", "bench": "workerd-bench.capnp"}
"""workerd configs by purpose. ``storage`` serves the storage contract alone (what
``wrangler.toml`` deploys); ``bench`` adds the benchmark-only native SQL route that
``dolite cloudflare bench`` compares against, and is never deployed."""

NPM_FILES = ("package.json", "package-lock.json")


class WorkerdError(DoliteError):
    """workerd (or npm, to install it) is missing, failed to start, or died."""


def cache_root() -> Path:
    """``$DOLITE_CACHE_DIR``, else ``$XDG_CACHE_HOME/dolite``, else ``~/.cache/dolite``."""
    if os.environ.get("DOLITE_CACHE_DIR"):
        return Path(os.environ["DOLITE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dolite"


def npm_dir() -> Path:
    """Where the pinned npm packages live: ``cache_root()/worker-<hash>``.

    The hash covers ``package.json`` and ``package-lock.json``, so a changed lock gets a new
    directory and an installed one is never modified.
    """
    digest = hashlib.sha256()
    for name in NPM_FILES:
        digest.update((WORKER_DIR / name).read_bytes())
    return cache_root() / f"worker-{digest.hexdigest()[:16]}"


def npm_binary(name: str) -> Path:
    """An executable of the installed npm packages (``workerd``, ``wrangler``)."""
    return npm_dir() / "node_modules" / ".bin" / name


def ensure_npm_packages() -> Path:
    """Install the pinned npm packages (``npm ci``) into :func:`npm_dir` unless there; return it.

    The install runs in a temporary sibling directory that is renamed into place once
    complete, so an interrupted or concurrent install never leaves a half-filled directory:
    :func:`npm_dir` either holds everything or does not exist.
    """
    target = npm_dir()
    if (target / "node_modules" / ".bin" / "workerd").exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise WorkerdError("npm is not installed: install Node.js (>= 20) to run workerd locally")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name in NPM_FILES:
            shutil.copyfile(WORKER_DIR / name, staging / name)
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=staging, capture_output=True, text=True,
        )
        if done.returncode != 0 or not (staging / "node_modules" / ".bin" / "workerd").exists():
            raise WorkerdError(f"npm ci for the dolite Worker failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        try:
            staging.rename(target)
        except OSError as exc:  # another install may have finished first: then use it
            if not (target / "node_modules" / ".bin" / "workerd").exists():
                raise WorkerdError(f"cannot install the npm packages into {target}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass
class WorkerdHandle:
    """A running workerd process serving the dolite Worker."""

    process: subprocess.Popen
    host: str
    port: int
    data_dir: Path
    secret: str = field(repr=False)
    log_path: Path
    _log: object = field(repr=False, default=None)

    @property
    def url(self) -> str:
        """The Worker's plain HTTP base URL, e.g. ``http://127.0.0.1:8787``."""
        return f"http://{self.host}:{self.port}"

    @property
    def storage_url(self) -> str:
        """The dolite storage URL that opens this Worker: ``do+http://HOST:PORT?secret=...``."""
        return f"do+http://{self.host}:{self.port}?secret={quote(self.secret, safe='')}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop workerd (``signal.SIGKILL`` simulates a crash) and wait for it to exit."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def wait(self) -> int:
        """Block until workerd exits; return its exit status."""
        return self.process.wait()

    def __enter__(self) -> WorkerdHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_workerd(
    *,
    port: int = 0,
    data_dir: str | os.PathLike,
    secret: str | None = None,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    log_path: str | os.PathLike | None = None,
    config: str = "storage",
) -> WorkerdHandle:
    """Start workerd serving the dolite Worker; return once it answers ``/v1/health``.

    ``port=0`` picks a free port. Object data persists in ``data_dir`` (created if needed), so
    a workerd restarted on the same directory sees every acknowledged commit. ``secret``
    defaults to ``$DOLITE_DO_SECRET`` or a fresh random token. workerd's output goes to
    ``log_path`` (default ``data_dir/workerd.log``). ``config`` names one of :data:`CONFIGS`:
    ``"bench"`` adds the benchmark-only native SQL route.
    """
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {sorted(CONFIGS)}, not {config!r}")
    ensure_npm_packages()
    binary = npm_binary("workerd")
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    secret = secret or os.environ.get("DOLITE_DO_SECRET") or secrets.token_urlsafe(24)
    log_file = Path(log_path) if log_path else data / "workerd.log"
    log = open(log_file, "ab")
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, DOLITE_SECRET=secret)
    command = [
        str(binary), "serve", str(WORKER_DIR / CONFIGS[config]),
        f"--socket-addr=http={host}:{port}",
        f"--directory-path=dolite-data={data}",
        f"--control-fd={write_fd}",
    ]
    try:
        process = subprocess.Popen(
            command, cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, pass_fds=(write_fd,), start_new_session=True,
        )
    except OSError as exc:
        log.close()
        raise WorkerdError(f"cannot run {binary}: {exc}") from exc
    finally:
        os.close(write_fd)
    handle = WorkerdHandle(process, host, port, data, secret, log_file, log)
    try:
        handle.port = _wait_for_port(handle, read_fd, timeout)
        _wait_healthy(handle, timeout)
    except BaseException:
        handle.stop(signal.SIGKILL)
        raise
    finally:
        os.close(read_fd)
    return handle


def _wait_for_port(handle: WorkerdHandle, read_fd: int, timeout: float) -> int:
    """Read workerd's control messages until the ``http`` socket reports its port."""
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], 0.1)
        if ready:
            chunk = os.read(read_fd, 4096)
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                if message.get("event") == "listen" and message.get("socket") == "http":
                    return int(message["port"])
            if not chunk and not handle.alive():
                break
        elif not handle.alive():
            break
    if not handle.alive():
        raise WorkerdError(f"workerd exited with status {handle.process.returncode}:\n{handle.log_tail()}")
    raise WorkerdError(f"workerd did not start listening within {timeout:.0f}s:\n{handle.log_tail()}")


def _wait_healthy(handle: WorkerdHandle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{handle.url}/v1/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if not handle.alive():
            raise WorkerdError(f"workerd exited with status {handle.process.returncode}:\n{handle.log_tail()}")
        if time.monotonic() > deadline:
            raise WorkerdError(f"workerd at {handle.url} did not answer within {timeout:.0f}s")
        time.sleep(0.05)
