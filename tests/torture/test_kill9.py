"""kill -9 of a writer at random moments: no acknowledged commit is lost, no transaction
is half-applied, integrity_check passes, the balances invariant holds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import dolite
from tests.torture import bank
from tests.torture.conftest import scale

ROOT = Path(__file__).resolve().parents[2]


def _spawn(url: str, name: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.torture.bank", url, name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)


def _verify(url: str, name: str) -> int:
    conn = dolite.connect(name, storage=url, create=False, isolation_level=None)
    try:
        return bank.verify(conn)
    finally:
        conn.close()


def test_kill9_writer_at_random_points(tmp_path, record):
    trials = int(os.environ.get("DOLITE_KILL9_TRIALS", 0)) or scale(10, 1500)
    url, name = f"lmdb:{tmp_path}/lmdb", "bank"
    conn = dolite.connect(name, storage=url, isolation_level=None)
    bank.create(conn)
    conn.close()
    rng = random.Random(int(os.environ.get("DOLITE_TORTURE_SEED", "5")))
    committed = 0
    in_flight_landed = 0
    killed_before_ready = 0
    for trial in range(trials):
        proc = _spawn(url, name)
        early = rng.random() < 0.15
        if early:  # during start-up: open, lease takeover, debris cleanup
            time.sleep(rng.uniform(0.0, 0.4))
        else:
            line = proc.stdout.readline()
            assert line == b"ready\n", (line, proc.stderr.read().decode())
            time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, err.decode()
        acks = [int(x) for x in out.split() if x.isdigit()]
        if early and b"ready" not in out:
            killed_before_ready += 1
        last_ack = max(acks, default=committed)
        now = _verify(url, name)
        assert now >= last_ack, f"trial {trial}: commit {last_ack} was acknowledged but is lost (have {now})"
        assert now <= last_ack + 1, f"trial {trial}: {now} transfers, only {last_ack} were attempted"
        in_flight_landed += now - last_ack
        committed = now
    assert committed > 0
    record("kill9", trials=trials, transfers_committed=committed,
           killed_before_ready=killed_before_ready, unacknowledged_commit_landed=in_flight_landed,
           lost_acknowledged=0, integrity_failures=0)
