"""What ``dolite bench`` measures at each size, and issue #15's goals for its figures."""

from __future__ import annotations

from dataclasses import dataclass

# Issue #15's goals: figure -> (comparison, target). durable_commit's goal is 0.5x native;
# 1.0x is its stretch goal, reported beside it. idle_db_kib is the at 10,000 databases.
GOALS = {"bulk_insert": (">=", 1.0), "durable_commit": (">=", 0.5), "durable_commit_stretch": (">=", 1.0),
         "point_select": (">=", 1.0), "write_amplification": ("<=", 1.25),
         "idle_db_kib": ("<=", 50.0), "big_txn_peak_mib": ("<=", 128.0)}
IDLE_GOAL_DATABASES = 10_000


@dataclass(frozen=True)
class Sizes:
    rounds: int  # each timed workload runs this many times per side; the best run counts
    bulk_rows: int
    durable_preload: int
    durable_commits: int
    naive_durable_commits: int
    select_rows: int
    select_lookups: int
    mixed_transactions: int
    growth_rows: tuple[int, ...]  # database sizes (rows) for commit cost vs size
    growth_commits: int
    naive_growth_commits: int
    naive_growth_max_rows: int
    concurrent_threads: int = 8  # concurrent_commit: threads, each with its own database
    concurrent_commits: int = 500  # single-row commits per thread
    backup_rows: int = 20_000  # backup: table size pushed whole first
    backup_commits: int = 100  # backup: small transactions then pushed incrementally
    cluster_shards: tuple[int, ...] = (1, 2)  # cluster: single-shard commits/s at these shard counts
    cluster_seconds: float = 0.2  # cluster: seconds of commits per shard count
    cluster_transfers: int = 5  # cluster: cross-shard transfers timed (and in one database)
    idle_databases: int = IDLE_GOAL_DATABASES  # idle_db_kib: databases touched, then left idle
    big_txn_mb: int = 300  # big_txn_peak_mib: 1 MB rows in the one transaction


FULL = Sizes(rounds=3, bulk_rows=200_000, durable_preload=10_000, durable_commits=2_000,
             naive_durable_commits=100, select_rows=200_000, select_lookups=200_000,
             mixed_transactions=3_000, growth_rows=(10_000, 100_000, 400_000, 1_600_000),
             growth_commits=300, naive_growth_commits=5, naive_growth_max_rows=1_600_000,
             concurrent_threads=8, concurrent_commits=500, backup_rows=200_000, backup_commits=1_000,
             cluster_shards=(1, 2, 4, 8), cluster_seconds=2.0, cluster_transfers=100)
QUICK = Sizes(rounds=2, bulk_rows=100_000, durable_preload=10_000, durable_commits=300,
              naive_durable_commits=30, select_rows=100_000, select_lookups=30_000,
              mixed_transactions=300, growth_rows=(5_000, 50_000, 200_000),
              growth_commits=60, naive_growth_commits=3, naive_growth_max_rows=200_000,
              concurrent_threads=8, concurrent_commits=100,
              cluster_shards=(1, 2, 4, 8), cluster_seconds=0.3, cluster_transfers=20,
              idle_databases=1_000)  # 10,000 take 45-90 s here (the synced commits creating them)


def goals(measured: dict[str, float]) -> dict[str, dict]:
    """Each of :data:`GOALS`: ``{"goal", "comparison", "measured", "met"}``."""
    out = {}
    for name, (comparison, target) in GOALS.items():
        value = measured[name]
        out[name] = {"goal": target, "comparison": comparison, "measured": value,
                     "met": value >= target if comparison == ">=" else value <= target}
    return out
