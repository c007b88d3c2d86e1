"""kill -9 of a writer at random moments: no acknowledged commit is lost, no transaction
is half-applied, integrity_check passes, the balances invariant holds."""

from __future__ import annotations

import os
import random

import pytest

from tests.torture.conftest import scale
from tests.torture.killing import (acknowledged, check_survivor, committed_before, create_bank,
                                   kill_at_a_random_moment, spawn_writer)


def kill_at_random_moments(url: str, name: str, trials: int, seed: int, also_check=lambda: None,
                           retention: float | None = None) -> dict:
    """Start and SIGKILL a bank writer ``trials`` times, checking the store (and
    ``also_check()``) after each."""
    create_bank(url, name, retention)
    rng = random.Random(seed)
    committed = in_flight_landed = killed_before_ready = seen_late = 0
    for trial in range(trials):
        out, early = kill_at_a_random_moment(spawn_writer(url, name), rng)
        if early and b"ready" not in out:
            killed_before_ready += 1
        before = committed_before(out, committed, trial)
        late = before - committed  # the last trial's in-flight commit, seen only now
        seen_late += late
        last_ack = acknowledged(out, before)
        now = check_survivor(url, name, last_ack, trial)
        also_check()
        in_flight_landed += now - last_ack + late
        committed = now
    assert committed > 0
    return dict(trials=trials, transfers_committed=committed, killed_before_ready=killed_before_ready,
                unacknowledged_commit_landed=in_flight_landed, lost_acknowledged=0, integrity_failures=0,
                unacknowledged_commit_seen_late=seen_late)


@pytest.mark.parametrize("backend", ["lmdb", "sqlite"])
@pytest.mark.parametrize("retention", [None, 0.0], ids=["versions", "in_place"])
def test_kill9_writer_at_random_points(tmp_path, record, backend, retention):
    trials = int(os.environ.get("DOLITE_KILL9_TRIALS", 0)) or scale(10, 1500)
    seed = int(os.environ.get("DOLITE_TORTURE_SEED", "5"))
    figures = kill_at_random_moments(f"{backend}:{tmp_path}/{backend}", "bank", trials, seed, retention=retention)
    name = "kill9" if backend == "lmdb" else f"kill9_{backend}"
    record(name if retention is None else f"{name}_in_place", **figures)
