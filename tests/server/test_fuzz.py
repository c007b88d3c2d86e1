"""Schemathesis against the served OpenAPI description: no input may cause a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.server.conftest import Server

CONFIG = """
[dictionaries.names]
values = ["shop"]

[dictionaries.sql]
values = ["SELECT * FROM t", "INSERT INTO t VALUES (?)", "SELECT ?", "UPDATE t SET v = v || ?",
          "DELETE FROM t", "CREATE TABLE IF NOT EXISTS t(v)", "VACUUM", "PRAGMA integrity_check"]

[parameters]
"path.name" = { dictionary = "names", probability = 0.7 }
"body.sql" = { dictionary = "sql", probability = 0.5 }
"""


def test_schemathesis_finds_no_server_errors(tmp_path: Path):
    srv = Server(f"lmdb:{tmp_path}/data", "--session-timeout", "0.5", "--queue-timeout", "20",
                 "--statement-timeout", "1", "--max-body", "262144", log=tmp_path / "server.log").start()
    try:
        with srv.http() as http:
            assert http.post("/v1/databases", json={"name": "shop"}).status_code == 201
            http.post("/v1/databases/shop/query", json={"sql": "CREATE TABLE t(v)"})
        config = tmp_path / "schemathesis.toml"
        config.write_text(CONFIG)
        run = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
             f"{srv.url}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "20",
             "--generation-deterministic", "--header", f"Authorization: Bearer {srv.token}",
             "--request-timeout", "30", "--no-color", "--workers", "1"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-6000:]
        assert "passed" in output and "failed" not in output.split("SUMMARY")[-1], output[-3000:]
        assert httpx.get(srv.url + "/healthz").status_code == 200
        assert srv.proc.poll() is None
    finally:
        srv.stop()
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-4000:]
