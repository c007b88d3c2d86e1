#!/usr/bin/env python
"""``python benchmarks/run.py [--quick] [--json] [--storage URL]`` = ``dolite bench``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dolite.bench.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
