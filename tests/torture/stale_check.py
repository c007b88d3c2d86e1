"""Diagnose the visibility window in docs/RELIABILITY.md: after a writer is killed, does a
check in this (long-lived) process see what a fresh process sees?

    PYTHONPATH=. python -m tests.torture.stale_check lmdb none 3 60   # backend, retention, seed, trials

Prints each trial where the check here and a fresh process disagree, with the head this
process read during its check and on a second look.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile

import dolite
from dolite.pages.store import PageStore
from tests.torture.killing import create_bank, kill_at_a_random_moment, spawn_writer, verify


def main(backend: str, retention: str, seed: int, trials: int) -> None:
    url = f"{backend}:{tempfile.mkdtemp()}/{backend}"
    create_bank(url, "bank", None if retention == "none" else float(retention))
    heads: list[int] = []
    read_head = PageStore.read_head

    def logged(store):
        head = read_head(store)
        heads.append(head.version)
        return head

    PageStore.read_head = logged
    rng = random.Random(seed)
    for trial in range(trials):
        kill_at_a_random_moment(spawn_writer(url, "bank"), rng)
        heads.clear()
        here = verify(url, "bank")
        during = sorted(set(heads))
        fresh = subprocess.run([sys.executable, "-c", "from tests.torture.killing import verify; "
                                f"print(verify({url!r}, 'bank'))"], capture_output=True, text=True).stdout.strip()
        if fresh != str(here):
            conn = dolite.connect("bank", storage=url, create=False, isolation_level=None)
            again = conn.execute("SELECT count(*) FROM transfers").fetchone()[0]
            conn.close()
            print(f"trial {trial}: check here {here} (heads read {during}), fresh process {fresh}, "
                  f"here again {again}")
    print("done")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
