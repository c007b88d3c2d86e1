"""The benchmark harness produces well-formed figures (never asserts speed)."""

from __future__ import annotations

import json
import math

from typer.testing import CliRunner

from dolite.bench import runner

TINY = runner.Sizes(rounds=1, bulk_rows=2_000, durable_preload=200, durable_commits=20,
                    naive_durable_commits=5, select_rows=2_000, select_lookups=500,
                    mixed_transactions=30, growth_rows=(500, 3_000), growth_commits=5,
                    naive_growth_commits=2, naive_growth_max_rows=3_000,
                    concurrent_threads=3, concurrent_commits=5, idle_databases=20, big_txn_mb=4)


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_bench_quick_json_shape(monkeypatch):
    import typer

    from dolite.bench.cli import bench

    monkeypatch.setattr(runner, "QUICK", TINY)
    app = typer.Typer()
    app.command("bench")(bench)
    app.command("noop")(lambda: None)  # keep 'bench' a subcommand
    out = CliRunner().invoke(app, ["bench", "--quick", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert set(result["ratios"]) == {"bulk_insert", "durable_commit", "point_select"}
    assert all(_positive(v) for v in result["ratios"].values())
    assert _positive(result["write_amplification"])
    assert _positive(result["cold_read_bytes"])
    assert result["cold_read_bytes"] < result["cold_read"]["database_bytes"]
    for side in ("native", "dolite"):
        assert all(_positive(v) for v in result["throughput"][side].values())
    assert all(_positive(v) for v in result["naive_ratios"].values())
    cc = result["concurrent_commit"]
    assert cc["threads"] == TINY.concurrent_threads
    assert all(_positive(cc[k]) for k in ("native", "dolite", "ratio"))
    assert [p["rows"] for p in result["commit_vs_size"]] == list(TINY.growth_rows)
    assert all(_positive(p["dolite_ms"]) for p in result["commit_vs_size"])
    _memory_figures(result)


def _memory_figures(result: dict) -> None:
    """The memory figures of issue #15 and every goal, each with what it measured."""
    idle, big = result["idle_databases"], result["big_transaction"]
    assert idle["databases"] == TINY.idle_databases and "not the goal's 10,000" in idle["note"]
    assert result["idle_db_kib"] == idle["idle_db_kib"] and math.isfinite(idle["idle_db_kib"])
    assert 1 <= idle["open_at_most"] <= TINY.idle_databases
    assert big["megabytes"] == TINY.big_txn_mb and _positive(result["big_txn_peak_mib"])
    assert set(result["goals"]) == set(runner.GOALS)
    assert result["goals"]["durable_commit"]["goal"] == 0.5
    assert result["goals"]["durable_commit_stretch"]["goal"] == 1.0
    assert result["goals"]["durable_commit_stretch"]["measured"] == result["ratios"]["durable_commit"]
    for goal in result["goals"].values():
        assert goal["met"] == (goal["measured"] >= goal["goal"] if goal["comparison"] == ">="
                               else goal["measured"] <= goal["goal"])


def test_bench_text_report_on_memory_backend():
    from dolite.bench import report

    result = runner.run(quick=True, storage="memory:", sizes=TINY)
    text = report.text(result)
    assert "bulk insert" in text and "write amplification" in text and "concurrent commit" in text
    assert "idle databases" in text and "big transaction" in text and "stretch" in text
    assert result["storage"] == "memory:"
