"""kill -9 of a writer on the ``sqlite:`` backend with a checkpoint after every commit
(``autocheckpoint=1``): at random moments, and at every file write, sync and truncate of
its first commits (strace's syscall fault injection delivers SIGKILL on entry to the Nth
``pwrite64`` / ``fdatasync`` / ``ftruncate``, so that call never happens).

After each kill: every acknowledged transfer is there, the bank's invariants and the
dolite database's integrity_check hold, and every storage file passes SQLite's
``PRAGMA integrity_check``; then the store is closed so that the next open recovers the
killed writer's WAL from cold. A power cut (unsynced writes lost) cannot be made here: kill
-9 keeps the page cache; that case rests on SQLite's WAL checksums (see sqlite_wal.py).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import apsw
import pytest

from dolite.storage import open_storage
from tests.torture.conftest import LONG, scale
from tests.torture.killing import acknowledged, check_survivor, create_bank, reap_killed, spawn_writer
from tests.torture.test_kill9 import kill_at_random_moments

# syscall -> how many of its calls are injected: about one transfer's worth (bounded),
# ten transfers' (long: the 9th writes a 600 kB blob), counted from the writer's start.
STEPS = {"pwrite64": scale(45, 900), "fdatasync": scale(9, 60), "ftruncate": scale(4, 16)}


def _storage_files_intact(directory: str, url: str):
    def check() -> None:
        open_storage(url).close()  # the next open (writer or verifier) recovers from cold
        files = glob.glob(os.path.join(directory, "*.db"))
        assert files
        for path in files:
            conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY, vfs="unix")
            try:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], path
            finally:
                conn.close()
    return check


def test_kill9_at_random_moments_with_a_checkpoint_after_every_commit(tmp_path, record):
    directory = str(tmp_path / "store")
    url = f"sqlite:{directory}?autocheckpoint=1"
    figures = kill_at_random_moments(url, "bank", scale(8, 800), seed=11,
                                     also_check=_storage_files_intact(directory, url))
    record("checkpoint_kill_random", **figures)


def _strace_can_inject(tmp_path) -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=fdatasync",
                            "-e", "inject=fdatasync:signal=SIGKILL:when=1", "true"],
                           capture_output=True, cwd=tmp_path)
    return probe.returncode == 0  # not when ptrace is refused (some containers)


def test_kill9_at_every_write_sync_and_truncate_of_commits_and_checkpoints(tmp_path, record):
    if not _strace_can_inject(tmp_path):
        pytest.skip("needs strace with ptrace allowed (syscall fault injection)")
    directory = str(tmp_path / "store")
    url = f"sqlite:{directory}?autocheckpoint=1"
    create_bank(url, "bank")
    check_files = _storage_files_intact(directory, url)
    committed = trials = in_flight_landed = 0
    for syscall, count in STEPS.items():
        for nth in range(1, count + 1):
            wrapper = ["strace", "-f", "-qq", "-o", os.devnull, "-e", f"trace={syscall}",
                       "-e", f"inject={syscall}:signal=SIGKILL:when={nth}"]
            proc = spawn_writer(url, "bank", wrapper)
            out = reap_killed(proc)
            last_ack = acknowledged(out, committed)
            now = check_survivor(url, "bank", last_ack, f"{syscall} #{nth}")
            check_files()
            in_flight_landed += now - last_ack
            committed = now
            trials += 1
    assert committed > 0, "no writer got as far as a commit"
    record("checkpoint_kill_every_step", trials=trials, steps=STEPS, transfers_committed=committed,
           unacknowledged_commit_landed=in_flight_landed, lost_acknowledged=0, integrity_failures=0,
           long=LONG)
