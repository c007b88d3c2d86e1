"""Text and chart renderings of a benchmark result."""

from __future__ import annotations

from pathlib import Path

LABELS = {"bulk_insert": "bulk insert", "durable_commit": "durable commit", "point_select": "point select"}


def text(result: dict) -> str:
    t, r = result["throughput"], result["ratios"]
    units = result["units"]
    lines = [f"dolite bench ({'quick' if result['quick'] else 'full'}; storage {result['storage']}; "
             f"{result['seconds']:.1f} s)", ""]
    lines.append(f"{'workload':<16}{'dolite':>14}{'sqlite3 WAL':>14}{'ratio':>8}{'goal':>7}"
                 f"{'naive':>12}{'vs naive':>10}")
    for key, label in LABELS.items():
        naive = t["naive"].get(key)
        lines.append(
            f"{label:<16}{t['dolite'][key]:>14,.0f}{t['native'][key]:>14,.0f}{r[key]:>7.2f}x"
            f"{'ok' if result['goals'][key]['met'] else 'MISS':>7}"
            + (f"{naive:>12,.0f}{result['naive_ratios'][key]:>9.1f}x" if naive else f"{'-':>12}{'-':>10}")
            + f"   {units[key]}")
    cc = result["concurrent_commit"]
    lines.append(f"{'concurrent commit':<16}{cc['dolite']:>14,.0f}{cc['native']:>14,.0f}{cc['ratio']:>7.2f}x"
                 f"{'':>7}{'-':>12}{'-':>10}   commits/s, {cc['threads']} threads, a database each "
                 f"({cc['dolite_vs_single_thread']:.1f}x dolite's single-thread rate)")
    layers = result["point_select_layers"]
    lines.append("point select by layer (dolite/native): " + ", ".join(
        f"{k} {v['ratio_to_native']:.2f}x" for k, v in layers.items()))
    wa = result["write_amplification_detail"]
    lines += ["",
              f"write amplification {result['write_amplification']:.3f} (goal <= 1.25: "
              f"{'ok' if result['goals']['write_amplification']['met'] else 'MISS'}); "
              f"{wa['bytes_written']:,} bytes written for {wa['dirty_page_bytes']:,} bytes of dirty pages, "
              f"{wa['dirty_pages_per_transaction']:.1f} pages per transaction",
              ]
    lines += _goal_lines(result)
    c = result["cold_read"]
    lines.append(f"cold read: {c['cold_read_bytes']:,} bytes ({c['chunks_read']} chunks, "
                 f"{c['storage_calls']} storage calls) to open a {c['database_bytes'] / 1e6:,.1f} MB "
                 f"database and run one point query")
    lines += _cluster_lines(result["cluster"]) if "cluster" in result else []
    lines += ["", "commit cost vs database size (ms per single-row commit):",
              f"{'rows':>10}{'MB':>9}{'dolite':>9}{'sqlite3':>9}{'naive':>10}{'dolite bytes/commit':>21}"]
    for p in result["commit_vs_size"]:
        naive = f"{p['naive_ms']:>10.2f}" if "naive_ms" in p else f"{'-':>10}"
        lines.append(f"{p['rows']:>10,}{p['size_bytes'] / 1e6:>9.1f}{p['dolite_ms']:>9.3f}{p['native_ms']:>9.3f}"
                     f"{naive}{p['dolite_bytes_per_commit']:>21,.0f}")
    growth = result["commit_growth"]
    lines.append("growth of commit cost, largest / smallest database: " +
                 ", ".join(f"{k} {v:.2f}x" for k, v in growth.items()))
    return "\n".join(lines)


def _verdict(result: dict, goal: str) -> str:
    g = result["goals"][goal]
    return f"goal {g['comparison']} {g['goal']:g}: {'ok' if g['met'] else 'MISS'}"


def _goal_lines(result: dict) -> list[str]:
    """The durable-commit stretch goal and the memory goals (issue #15)."""
    ratio, idle, big = result["ratios"]["durable_commit"], result["idle_databases"], result["big_transaction"]
    note = f"; {idle['note']}" if "note" in idle else ""
    return [f"durable commit {ratio:.2f}x native ({_verdict(result, 'durable_commit')}; stretch "
            f"{_verdict(result, 'durable_commit_stretch')})",
            f"idle databases: {idle['idle_db_kib']:.1f} KiB each ({_verdict(result, 'idle_db_kib')}), RSS growth "
            f"over {idle['databases']:,} databases the object host closed once idle ({idle['idle_db_anon_kib']:.1f}"
            f" KiB anonymous; at most {idle['open_at_most']} open at once){note}",
            f"big transaction: {big['big_txn_peak_mib']:.0f} MiB peak anonymous memory for one "
            f"{big['megabytes']} MB transaction ({_verdict(result, 'big_txn_peak_mib')})"]


def _cluster_lines(c: dict) -> list[str]:
    per_shards = ", ".join(f"{n} shards {v:,.0f}" for n, v in c["single_shard_commits_per_s"].items())
    x, held, one = c["cross_shard_transfer"], c["cross_shard_transfer_holding_leases"], c["one_database_transfer"]
    return ["", f"cluster: single-shard commits/s ({c['threads']} threads): {per_shards}",
            f"cluster: cross-shard transfer {x['median_ms']:.2f} ms median, {x['storage_calls']:.0f} storage calls "
            f"({x['round_trips_before_answer']} sequential round trips before the answer); holding leases "
            f"{held['median_ms']:.2f} ms, {held['storage_calls']:.0f} calls; in one database {one['median_ms']:.2f} ms"]


def chart(result: dict, path: Path) -> Path:
    """A PNG: dolite/native ratios (left) and commit cost vs database size (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    keys = list(LABELS)
    ratios = [result["ratios"][k] for k in keys]
    bars = left.bar([LABELS[k] for k in keys], ratios,
                    color=["#2a9d8f" if r >= 1.0 else "#e76f51" for r in ratios])
    left.axhline(1.0, color="black", linewidth=1, linestyle="--", label="stdlib sqlite3 (WAL file) = 1.0")
    for bar, value in zip(bars, ratios):
        left.text(bar.get_x() + bar.get_width() / 2, value, f"{value:.2f}x", ha="center", va="bottom")
    left.set_ylabel("dolite / native (higher is better)")
    left.set_title(f"throughput ratios; write amplification {result['write_amplification']:.2f}")
    left.legend(loc="upper right", fontsize=8)
    left.set_ylim(0, max(ratios + [1.0]) * 1.25)

    points = result["commit_vs_size"]
    for side, style in (("dolite", "o-"), ("native", "s-"), ("naive", "^-")):
        xs = [p["size_bytes"] / 1e6 for p in points if f"{side}_ms" in p]
        ys = [p[f"{side}_ms"] for p in points if f"{side}_ms" in p]
        label = {"native": "sqlite3 WAL, synchronous=FULL", "naive": "naive base64 per commit"}.get(side, side)
        right.plot(xs, ys, style, label=label)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("database size (MB)")
    right.set_ylabel("ms per single-row durable commit")
    right.set_title("commit cost vs database size")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
