"""kill -9 on the Durable Object path: a bank writer commits over ``do+http`` to local
workerd, and at a random moment either the writer is killed, or workerd (the storage
itself, as when an object's host crashes) and then the writer. workerd restarts on the
same data; no acknowledged commit is lost, no transaction is half-applied (the Worker's
commit is one atomic batch: worker.js), integrity_check passes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from dolite.cloudflare.dev import start_workerd
from tests.torture.conftest import scale
from tests.torture.killing import acknowledged, check_survivor, create_bank, reap_killed, spawn_writer

SECRET = "kill9-do"


def _kill_storage_then_writer(server, proc: subprocess.Popen) -> bytes:
    """SIGKILL workerd, then the writer (which may have exited on the lost connection)."""
    server.stop(signal.SIGKILL)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    return out


@pytest.mark.parametrize("retention", [None, 0.0], ids=["versions", "in_place"])
def test_kill9_workerd_or_writer_at_random_points(tmp_path, record, retention):
    trials = int(os.environ.get("DOLITE_KILL9_TRIALS", 0)) or scale(4, 120)
    rng = random.Random(int(os.environ.get("DOLITE_TORTURE_SEED", "5")))
    data = tmp_path / "do-data"
    server = start_workerd(port=0, data_dir=data, secret=SECRET)
    committed = in_flight_landed = storage_kills = 0
    try:
        create_bank(server.storage_url, "bank", retention)
        for trial in range(trials):
            proc = spawn_writer(server.storage_url, "bank")
            line = proc.stdout.readline()
            assert line == b"ready\n", (line, proc.stderr.read().decode())
            time.sleep(rng.uniform(0.0, 0.5))
            if trial % 2 or rng.random() < 0.25:  # the storage dies mid-commit
                out = _kill_storage_then_writer(server, proc)
                storage_kills += 1
                server = start_workerd(port=0, data_dir=data, secret=SECRET)
            else:
                proc.send_signal(signal.SIGKILL)
                out = reap_killed(proc)
            last_ack = acknowledged(out, committed)
            now = check_survivor(server.storage_url, "bank", last_ack, trial)
            in_flight_landed += now - last_ack
            committed = now
    finally:
        server.stop(signal.SIGKILL)
    assert committed > 0 and storage_kills > 0
    record("kill9_do" if retention is None else "kill9_do_in_place", trials=trials, storage_kills=storage_kills, transfers_committed=committed,
           unacknowledged_commit_landed=in_flight_landed, lost_acknowledged=0, integrity_failures=0)
