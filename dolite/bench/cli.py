"""``dolite bench``: the benchmark command (registered by dolite/cli/main.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_CHART = Path(__file__).resolve().parents[2] / "docs" / "perf" / "bench.png"


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes; finishes in under 45 s.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    storage: Annotated[str, typer.Option("--storage", help="Storage URL for dolite "
                                         "(default: sqlite:, WAL with synchronous=FULL, in a temporary directory).")] = "",
) -> None:
    """Measure dolite against stdlib sqlite3 (WAL file) and the naive base64 baseline."""
    from dolite.bench import report, runner

    progress = None if json_ else (lambda message: print(f"  {message}", file=sys.stderr, flush=True))
    result = runner.run(quick=quick, storage=storage or None, progress=progress)
    if not quick:
        target = Path(os.environ.get("DOLITE_BENCH_CHART", DEFAULT_CHART))
        result["chart"] = os.path.relpath(report.chart(result, target))  # no machine paths in saved results
    if json_:
        print(json.dumps(result, indent=2))
    else:
        print(report.text(result))
        if "chart" in result:
            print(f"chart: {result['chart']}")


def main() -> None:
    """Entry point without the main CLI (``python -m dolite.bench``)."""
    typer.run(bench)
