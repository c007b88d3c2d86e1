"""The ``sqlite:`` store's checkpoints (dolite/storage/sqlite_checkpoint.py): a big commit
leaves its checkpoint to a background thread, small commits checkpoint inline as SQLite's
auto-checkpoint would, and the WAL stays bounded when the thread falls behind."""

from __future__ import annotations

import os
import threading

import pytest

from dolite.storage import open_storage, sqlite_wal
from dolite.storage.sqlite_checkpoint import INLINE_FACTOR

BIG = {f"c/{i:04d}": os.urandom(4100) for i in range(100)}  # ~120 WAL pages: a big commit


@pytest.fixture
def checkpoints(monkeypatch):
    """The thread of every checkpoint run, in order."""
    ran: list[str] = []
    inner = sqlite_wal.checkpoint

    def recording(conn):
        ran.append(threading.current_thread().name)
        inner(conn)

    monkeypatch.setattr(sqlite_wal, "checkpoint", recording)
    monkeypatch.setattr("dolite.storage.sqlite_checkpoint.checkpoint", recording)
    return ran


def _wal_bytes(tmp_path, name="o") -> int:
    wal = tmp_path / "s" / f"{name}.db-wal"
    return wal.stat().st_size if wal.exists() else 0


def test_a_big_commit_leaves_its_checkpoint_to_the_background_thread(tmp_path, checkpoints):
    ns = open_storage(f"sqlite:{tmp_path}/s?autocheckpoint=100")
    store = ns.object("o")
    store.put(BIG)
    assert ns.checkpointer.wait_idle(10)
    assert len(checkpoints) == 1 and checkpoints[0].startswith("dolite-checkpoint")
    assert ns.checkpointer.done == 1
    store.put({"small": b"1"})  # the WAL was checkpointed whole: this commit restarts it
    assert store.get(["small", "c/0042"]) == {"small": b"1", "c/0042": BIG["c/0042"]}
    ns.close()
    assert not ns.checkpointer._thread.is_alive()


def test_small_commits_past_the_threshold_checkpoint_inline(tmp_path, checkpoints):
    ns = open_storage(f"sqlite:{tmp_path}/s?autocheckpoint=20")
    store = ns.object("o")
    for i in range(30):
        store.put({f"k{i}": os.urandom(3000)})
    assert checkpoints and set(checkpoints) == {threading.current_thread().name}
    assert ns.checkpointer._thread is None  # never needed
    assert _wal_bytes(tmp_path) < 40 * 4120  # restarted from its beginning: about the threshold, not 4x


def test_the_wal_stays_bounded_when_the_checkpointer_falls_behind(tmp_path, checkpoints, monkeypatch):
    stuck = threading.Event()
    monkeypatch.setattr(sqlite_wal.Checkpointer, "_checkpoint", lambda self, file: stuck.wait(10))
    ns = open_storage(f"sqlite:{tmp_path}/s?autocheckpoint=100")
    store = ns.object("o")
    for _ in range(INLINE_FACTOR + 2):  # ~120 pages each: past INLINE_FACTOR x 100, commits checkpoint themselves
        store.put(BIG)
    assert threading.current_thread().name in checkpoints
    stuck.set()
    ns.close()


def test_autocheckpoint_0_never_checkpoints_before_close(tmp_path, checkpoints):
    ns = open_storage(f"sqlite:{tmp_path}/s?autocheckpoint=0")
    ns.object("o").put(BIG)
    ns.object("o").put({"k": b"v"})
    assert checkpoints == [] and ns.checkpointer._thread is None
    ns.close()
    again = open_storage(f"sqlite:{tmp_path}/s")
    assert again.object("o").get(["k", "c/0007"]) == {"k": b"v", "c/0007": BIG["c/0007"]}
