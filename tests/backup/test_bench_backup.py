"""The ``backup`` workload of ``dolite bench`` reports well-formed figures (never speed)."""

from __future__ import annotations

import dataclasses

from dolite.backup.manifest import FULL_EVERY, MAX_CHAIN, full_every
from dolite.bench import runner


def test_backup_workload_reports_upload_cost_per_commit():
    sizes = dataclasses.replace(runner.QUICK, backup_rows=3_000, backup_commits=40)
    bench = runner.Bench(sizes, "memory:")
    try:
        out = bench.backup()
    finally:
        bench.close()
    assert out["commits"] > 30 and out["full_push"]["versions"] == 1
    assert out["incremental_push"]["versions"] == out["commits"]
    assert out["uploaded_bytes_per_commit"] > out["uploaded_chunk_bytes_per_commit"] > 0
    assert 0 < out["chunk_upload_ratio"] <= out["upload_ratio"]
    assert out["goal"] == {"upload_ratio": 1.1, "met": out["upload_ratio"] <= 1.1}


def test_large_files_get_longer_chains_so_full_manifests_stay_cheap():
    assert full_every(40) == FULL_EVERY and full_every(8 * 500) == 500 and full_every(10**7) == MAX_CHAIN
