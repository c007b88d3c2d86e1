"""The ``backup`` workload of ``dolite bench``: what continuous backup costs."""

from __future__ import annotations

import tempfile

from dolite.bench import workloads as w
from dolite.bench.counting import CountingNamespace


def measure(bench) -> dict:
    """Backup cost against a file:// target: a first (full) push of a table of
    ``backup_rows`` rows, then small transactions pushed incrementally; bytes uploaded
    per commit compared with the chunk bytes those commits wrote to the store."""
    from dolite import backup

    s = bench.sizes
    name = bench.new_name("backup")
    conn = bench.dolite("backup", name=name)
    w.create_table(conn)
    w.fill(conn, s.backup_rows)
    conn.close()
    folder = tempfile.mkdtemp(dir=bench.tmp, prefix="backup-")
    target = w.CountingTarget(backup.open_target(f"file://{folder}"))
    full = w.backup_push(lambda t: backup.push(bench.ns, name, to=t), target)
    counting = CountingNamespace(bench.ns)
    conn = bench.dolite("backup", counting, name)
    counting.counters.reset()
    w.mixed_updates(conn, s.backup_rows, s.backup_commits)
    written = counting.counters.chunk_payload_written
    conn.close()
    step = w.backup_push(lambda t: backup.push(bench.ns, name, to=t), target)
    commits = max(1, step["versions"])
    uploaded = step["chunk_bytes"] + step["manifest_bytes"]
    ratio = uploaded / written if written else 0.0
    out = {"full_push": {**full, "mb_per_s": full["chunk_bytes"] / full["seconds"] / 1e6},
           "incremental_push": {**step, "versions_per_s": commits / step["seconds"]},
           "commits": commits, "chunk_bytes_written_per_commit": written / commits,
           "uploaded_chunk_bytes_per_commit": step["chunk_bytes"] / commits,
           "uploaded_bytes_per_commit": uploaded / commits,  # chunks and manifests
           "upload_ratio": ratio,
           "chunk_upload_ratio": step["chunk_bytes"] / written if written else 0.0,
           "goal": {"upload_ratio": 1.1, "met": ratio <= 1.1}}
    bench.progress(f"backup: {out['uploaded_bytes_per_commit']:,.0f} bytes uploaded per commit, "
                  f"{ratio:.2f}x the chunk bytes written ({out['chunk_upload_ratio']:.2f}x without "
                  f"manifests); full push {out['full_push']['mb_per_s']:.1f} MB/s")
    return out
