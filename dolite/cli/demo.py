"""A short tour of dolite on a storage URL (what ``dolite demo`` prints)."""

from __future__ import annotations

from rich.console import Console

import dolite
from dolite.ops import admin


def run_demo(storage: str, console: Console) -> None:
    conn = dolite.connect("demo", storage=storage)
    conn.execute("CREATE TABLE IF NOT EXISTS visits(id INTEGER PRIMARY KEY, at TEXT DEFAULT CURRENT_TIMESTAMP)")
    conn.execute("INSERT INTO visits DEFAULT VALUES")
    conn.commit()
    count = conn.execute("SELECT count(*) FROM visits").fetchone()[0]
    conn.close()
    facts = admin.info(storage, "demo")
    report = admin.check(storage, "demo")
    console.print(f"database 'demo' in {storage}: {count} visit(s) recorded")
    console.print(f"  version {facts['version']}, {facts['size']} bytes in {facts['chunks']} chunks, "
                  f"{facts['stored_chunk_versions']} chunk versions stored")
    console.print(f"  check: {report.chunks_checked} checksums verified, integrity {report.integrity[0]}")
