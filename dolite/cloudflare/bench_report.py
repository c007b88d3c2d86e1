"""The Durable Object benchmark's goals (issue #15) and its printed report.

The goals are checked, never assumed: :func:`goals` compares each measured figure of a
result with its target and says whether it was met. The speed targets are meant for a run
with an injected round trip (``--rtt-ms 10``): on bare loopback a request costs only CPU.
"""

from __future__ import annotations

import operator

GOALS = {
    # name: (what is measured, comparison, target)
    "commit": ("ratios.commit", ">=", 0.95),
    "interactive_txn": ("ratios.interactive_txn", ">=", 1.8),
    "round_trips_per_commit": ("round_trips_per_commit.dolite", "<=", 1.05),
    "rows_written_per_commit": ("rows_written_per_commit.dolite", "<=", 2),
    "cost_mixed": ("cost_per_million.mixed.dolite", "<=", "cost_per_million.mixed.native"),
    "cost_txn_100_rows": ("cost_per_million.txn_100_rows.dolite", "<=", "cost_per_million.txn_100_rows.native"),
}

_COMPARE = {">=": operator.ge, "<=": operator.le}


def _lookup(result: dict, path: str) -> float:
    value = result
    for key in path.split("."):
        value = value[key]
    return value


def goals(result: dict) -> dict[str, dict]:
    """Each goal of :data:`GOALS`: ``{"measured", "target", "met"}`` for this result."""
    out = {}
    for name, (measured, comparison, target) in GOALS.items():
        value = _lookup(result, measured)
        bound = _lookup(result, target) if isinstance(target, str) else target
        out[name] = {"measured": value, "target": f"{comparison} {bound:.4g}" + (
            f" ({target})" if isinstance(target, str) else ""), "met": _COMPARE[comparison](value, bound)}
    return out


WORKLOAD_TITLES = {
    "commit": "single-row commit",
    "txn_100_rows": "100-row transaction",
    "interactive_txn": "interactive transaction",
    "point_read": "point read (dolite cold)",
    "point_read_hot": "point read (dolite hot)",
    "full_scan": "full scan (dolite cold)",
    "full_scan_hot": "full scan (dolite hot)",
}


def print_report(result: dict, console=None) -> None:
    """Render ``result`` (from :func:`dolite.cloudflare.bench.run_do_bench`) as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    env = result["environment"]
    table = Table(title=f"dolite page store vs native SQLite Durable Object ({env['runtime']}, "
                        f"{env['cpus']} CPUs); per transaction, dolite / native")
    for column in ("workload", "txn/s", "dolite/native", "round trips", "rows read", "rows written",
                   "$ per million"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for workload, sides in result["workloads"].items():
        d, n = sides["dolite"], sides["native"]
        table.add_row(
            WORKLOAD_TITLES.get(workload, workload),
            f"{d['per_s']:,.0f} / {n['per_s']:,.0f}", f"{result['ratios'][workload]:.2f}x",
            f"{d['round_trips']:.3f} / {n['round_trips']:.2f}",
            f"{d['rows_read']:,.1f} / {n['rows_read']:,.1f}",
            f"{d['rows_written']:.2f} / {n['rows_written']:.2f}",
            f"{d['cost_per_million']:,.2f} / {n['cost_per_million']:,.2f}",
        )
    cost = result["cost_per_million"]
    table.add_row("mixed workload", "", "", "", "", "",
                  f"{cost['mixed']['dolite']:,.2f} / {cost['mixed']['native']:,.2f}")
    console.print(table)
    console.print("mixed workload: " + ", ".join(f"{share:.0%} {w}" for w, share in cost["mix"].items()))
    for name, goal in result["goals"].items():
        console.print(f"goal {name}: {goal['measured']:.3g} {goal['target']}: "
                      + ("met" if goal["met"] else "[bold red]missed[/]"))
    for workload, sides in result["workloads"].items():
        gc = sides["dolite"].get("gc")
        if gc:
            console.print(f"{WORKLOAD_TITLES.get(workload, workload)}: of dolite's figures, garbage collection "
                          f"spent {gc['round_trips']:.3f} round trips and {gc['rows_written']:.2f} rows written a "
                          f"transaction ({gc['background_passes']} background passes while timed; the untimed "
                          f"drain took {gc['drain_ms']:.2f} ms a transaction: "
                          f"{gc['per_s_with_drain']:,.0f}/s had it been timed)")
    details, sizes = result["dolite_details"], result["sizes"]
    ops = ", ".join(f"{op} {count}" for op, count in
                    sorted(result["workloads"]["commit"]["dolite"].get("requests_by_op", {}).items()))
    console.print(f"sizes {sizes}; dolite database {details['database_bytes'] / 1e6:.1f} MB; opening it "
                  f"cold took {details['open_round_trips']:.0f} round trips, its first point read "
                  f"{details['first_read_ms']:.1f} ms; dolite requests in the commit phase: {ops}; "
                  f"{result['seconds']:.1f} s in all")
    for note in result["notes"]:
        console.print(f"- {note}")
