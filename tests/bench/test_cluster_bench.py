"""The ``cluster`` workload of ``dolite bench`` produces well-formed figures (never asserts speed)."""

from __future__ import annotations

from dolite.bench import report, runner
from tests.bench.test_bench import TINY


def test_bench_has_the_cluster_workload():
    result = runner.run(quick=True, storage="memory:", sizes=TINY)
    cluster = result["cluster"]
    assert list(cluster["single_shard_commits_per_s"]) == list(TINY.cluster_shards)
    assert all(v > 0 for v in cluster["single_shard_commits_per_s"].values())
    for key in ("cross_shard_transfer", "cross_shard_transfer_holding_leases", "one_database_transfer"):
        assert cluster[key]["median_ms"] > 0
    assert cluster["cross_shard_transfer"]["storage_calls"] > cluster["cross_shard_transfer_holding_leases"]["storage_calls"] > 0
    assert "cross-shard transfer" in report.text(result)
