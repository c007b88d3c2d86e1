"""``dolite serve --backup-to URL --backup-every P``: a real server backs up each database
after its commits, exports the lag as metrics, and /healthz turns degraded when a broken
target lets the lag pass ``--backup-max-lag``."""

from __future__ import annotations

import os
import time

import pytest

from dolite import backup
from dolite.server.backup_loop import parse_period
from tests.server.conftest import Server


def eventually(check, seconds=20.0):
    """Poll ``check()`` until it returns something truthy (a bound, not a timing claim)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    srv = Server(f"lmdb:{tmp_path}/data", "--backup-to", f"file://{folder}", "--backup-every", "200ms",
                 "--backup-max-lag", "1", log=tmp_path / "server.log").start()
    yield srv, folder
    srv.stop()


def query(client, name, sql):
    reply = client.post(f"/v1/databases/{name}/query", json={"sql": sql})
    assert reply.status_code == 200, reply.text
    return reply.json()


def newest_backup(folder, name):
    try:
        versions = backup.list_versions(name, from_=f"file://{folder}")
    except backup.BackupError:
        return None
    return versions[-1].version if versions else None


def test_commits_are_backed_up_continuously(served):
    srv, folder = served
    with srv.http() as client:
        assert client.post("/v1/databases", json={"name": "shop"}).status_code == 201
        query(client, "shop", "CREATE TABLE t(x)")
        for i in range(3):
            query(client, "shop", f"INSERT INTO t VALUES ({i})")
        version = client.get("/v1/databases/shop").json()["version"]
        assert eventually(lambda: newest_backup(folder, "shop") == version), "the commits were not backed up"
        metrics = client.get("/metrics").text
        assert 'dolite_backup_lag_seconds{database="shop"} 0.0' in metrics
        assert 'dolite_backup_last_success_timestamp{database="shop"}' in metrics
        assert client.get("/healthz").json()["status"] == "ok"
    restored = backup.restore("shop", from_=f"file://{folder}", storage="memory:", into="copy")
    assert restored.version == version


def test_a_broken_target_makes_healthz_degraded(served):
    srv, folder = served
    with srv.http() as client:
        assert client.post("/v1/databases", json={"name": "db"}).status_code == 201
        query(client, "db", "CREATE TABLE t(x)")
        assert eventually(lambda: newest_backup(folder, "db") is not None)
        os.rename(folder, folder.with_name("moved"))  # the target is gone (an unmounted share)
        query(client, "db", "INSERT INTO t VALUES (1)")
        health = eventually(lambda: (h := client.get("/healthz").json())["status"] == "degraded" and h)
        assert health, "a stalled backup did not make /healthz degraded"
        assert "backup of db" in health["reasons"][0] and "no such folder" in health["reasons"][0]
        lag = [line for line in client.get("/metrics").text.splitlines()
               if line.startswith('dolite_backup_lag_seconds{database="db"}')]
        assert lag and float(lag[0].split()[-1]) > 1
        os.rename(folder.with_name("moved"), folder)
        assert eventually(lambda: client.get("/healthz").json()["status"] == "ok"), "it did not recover"


def test_periods():
    assert parse_period("10s") == 10 and parse_period("500ms") == 0.5 and parse_period("2") == 2
    with pytest.raises(ValueError):
        parse_period("often")


def test_a_bad_backup_url_is_refused(tmp_path):
    srv = Server(f"lmdb:{tmp_path}/data", "--backup-to", "ftp://nowhere")
    with pytest.raises(RuntimeError, match="exited"):
        srv.start()
