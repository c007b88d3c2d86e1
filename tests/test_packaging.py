"""dolite as users install it: a built wheel in a fresh venv outside the checkout.

``python -m build`` makes the sdist and, from it, the wheel; the wheel goes into a new venv
(its dependencies from the package index, through pip's cache), and everything then runs
from a directory outside the checkout with nothing of the checkout importable: the CLI,
``dolite cloudflare dev`` against a real workerd (its npm packages installed on first use
into an empty per-user cache) and ``dolite serve`` storing in it, with one SQL round trip
through each. About 10 s with warm pip and npm caches.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKER_FILES = {"package.json", "package-lock.json", "workerd.capnp", "workerd-bench.capnp",
                "wrangler.toml", "wrangler-kv.toml", "src/worker.js", "src/http.js", "src/records.js", "src/bench.js"}


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", str(out), str(ROOT))
    return out


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> dict:
    """A fresh venv holding the wheel; returns the environment to run it in (outside ROOT)."""
    home = tmp_path_factory.mktemp("user")
    target = home / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(target))
    wheel = next(dist.glob("dolite-*.whl"))
    run(sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install",
        "--quiet", "--disable-pip-version-check", str(wheel))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{target / 'bin'}{os.pathsep}{env['PATH']}", DOLITE_CACHE_DIR=str(home / "cache"),
               PYTHONUNBUFFERED="1", NO_COLOR="1")
    return {"env": env, "cwd": str(home), "bin": target / "bin", "home": home}


def test_wheel_ships_the_worker_and_no_npm_packages(dist):
    wheel = next(dist.glob("dolite-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    worker = {n.removeprefix("dolite/cloudflare/worker/") for n in names if n.startswith("dolite/cloudflare/worker/")}
    assert worker == WORKER_FILES
    assert not [n for n in names if "node_modules" in n]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert len(list(dist.glob("dolite-*.tar.gz"))) == 1


def test_installed_cli_runs_the_worker_and_the_service(venv):
    bin_, cwd, env = venv["bin"], venv["cwd"], venv["env"]
    where = run(str(bin_ / "python"), "-c", "import dolite; print(dolite.__file__)", cwd=cwd, env=env)
    assert where.stdout.startswith(str(bin_.parent)), where.stdout
    assert "cloudflare" in run(str(bin_ / "dolite"), "--help", cwd=cwd, env=env).stdout
    dev = subprocess.Popen(
        [str(bin_ / "dolite"), "cloudflare", "dev", "--port", "0", "--data", "do-data", "--secret", "pkg-secret"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        storage_url = _storage_url(dev)
        assert list(Path(env["DOLITE_CACHE_DIR"]).glob("worker-*/node_modules/.bin/workerd"))
        _sql_round_trip(bin_, cwd, env, storage_url)
        _serve_round_trip(bin_, cwd, env, storage_url)
    finally:
        dev.send_signal(signal.SIGTERM)
        output = dev.communicate(timeout=30)[0]
    assert dev.returncode == 0 and "stopped" in output, output


def _storage_url(dev: subprocess.Popen) -> str:
    """The storage URL ``dolite cloudflare dev`` prints once workerd answers."""
    lines = []
    for line in dev.stdout:  # npm ci into the empty cache, then workerd's start
        lines.append(line)
        found = re.match(r"storage URL: (\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError("dolite cloudflare dev exited:\n" + "".join(lines))


def _sql_round_trip(bin_: Path, cwd: str, env: dict, storage_url: str) -> None:
    script = (
        "import sys, dolite\n"
        "conn = dolite.connect('pkg', storage=sys.argv[1])\n"
        "conn.execute('CREATE TABLE t(v TEXT)')\n"
        "conn.execute('INSERT INTO t VALUES (?)', ['from the wheel'])\n"
        "conn.commit()\n"
        "again = dolite.connect('pkg', storage=sys.argv[1], create=False)\n"
        "print(again.execute('SELECT v FROM t').fetchall())\n"
    )
    done = run(str(bin_ / "python"), "-c", script, storage_url, cwd=cwd, env=env)
    assert done.stdout.strip() == "[('from the wheel',)]"


def _serve_round_trip(bin_: Path, cwd: str, env: dict, storage_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = subprocess.Popen(
        [str(bin_ / "dolite"), "serve", "--storage", storage_url, "--port", str(port)],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(serve, f"{url}/healthz")
        answer = httpx.post(f"{url}/v1/databases/pkg/query", json={"sql": "SELECT v FROM t"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"] == [["from the wheel"]]
    finally:
        serve.terminate()
        serve.wait(30)


def _wait_ready(process: subprocess.Popen, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout:.0f}s")
