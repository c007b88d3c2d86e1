"""Benchmarks: dolite against stdlib sqlite3 on a WAL file, and against the naive
whole-database-as-base64 baseline. ``dolite bench`` runs them; see docs/PERFORMANCE.md."""

from dolite.bench.runner import run

__all__ = ["run"]
