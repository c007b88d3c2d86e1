"""The cluster bank workload: transfers between accounts spread over the shards, each
recorded on both of its shards (a ``moves`` row per side), so a verifier can tell every
transfer is whole, and recompute every balance from the moves.

``python -m tests.cluster.bank URL NAME SEED`` runs transfers until killed, printing
``ready`` and then each transfer's id once its commit returned, and ``BAD <total>`` if a
``tx.query_all`` ever saw a total other than the constant one.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter, defaultdict

import dolite

ACCOUNTS = [f"k{i}" for i in range(16)]
INITIAL = 1_000
TOTAL = INITIAL * len(ACCOUNTS)


def create(c) -> None:
    c.execute_all("CREATE TABLE acct(id TEXT PRIMARY KEY, bal INTEGER NOT NULL)")
    c.execute_all("CREATE TABLE moves(txid TEXT, id TEXT, delta INTEGER, PRIMARY KEY (txid, id))")
    for key in ACCOUNTS:
        c.execute("INSERT INTO acct VALUES (?, ?)", (key, INITIAL), key=key)


def total(tx) -> int:
    return sum(r[0] for r in tx.query_all("SELECT coalesce(sum(bal), 0) FROM acct"))


def transfer(c, txid: str, rng: random.Random, check: bool) -> int | None:
    """One cross-shard transfer; with ``check``, the total seen in the same transaction."""
    a = rng.choice(ACCOUNTS)
    b = rng.choice([k for k in ACCOUNTS if c.shard_for(k) != c.shard_for(a)])
    amount = rng.randint(1, 50)
    seen = None
    with c.transaction() as tx:
        for key, delta in ((a, -amount), (b, amount)):
            tx.execute("UPDATE acct SET bal = bal + ? WHERE id = ?", (delta, key), key=key)
            tx.execute("INSERT INTO moves VALUES (?, ?, ?)", (txid, key, delta), key=key)
        if check:
            seen = total(tx)
    return seen


def run(c, prefix: str, seed: int, count: int | None, out=None) -> tuple[list[str], list[int]]:
    """Transfers until ``count`` committed (None: for ever); returns (acked ids, bad totals).
    A Conflict is retried with a fresh transfer id."""
    rng = random.Random(seed)
    acked: list[str] = []
    bad: list[int] = []
    n = 0
    while count is None or len(acked) < count:
        n += 1
        txid = f"{prefix}-{n}"
        try:
            seen = transfer(c, txid, rng, check=n % 4 == 0)
        except dolite.Conflict:
            time.sleep(rng.uniform(0, 0.02))
            continue
        if seen is not None and seen != TOTAL:
            bad.append(seen)
            if out:
                print(f"BAD {seen}", file=out, flush=True)
        acked.append(txid)
        if out:
            print(txid, file=out, flush=True)
    return acked, bad


def verify(c) -> set[str]:
    """Check every invariant (one atomic view of all shards); return the transfer ids."""
    with c.transaction() as tx:
        balances = dict(tx.query_all("SELECT id, bal FROM acct"))
        moves = tx.query_all("SELECT txid, id, delta FROM moves")
        for shard in c.map.shards:
            ok = tx.execute("PRAGMA integrity_check", shard=shard).fetchall()
            assert ok == [("ok",)], (shard, ok)
    assert sorted(balances) == sorted(ACCOUNTS)
    assert sum(balances.values()) == TOTAL, f"total is {sum(balances.values())}"
    sides = Counter(txid for txid, _, _ in moves)
    half = [txid for txid, n in sides.items() if n != 2]
    assert not half, f"half-applied transfers: {half[:5]}"
    expected: dict[str, int] = defaultdict(lambda: INITIAL)
    for _, key, delta in moves:
        expected[key] += delta
    assert all(balances[k] == expected[k] for k in ACCOUNTS), "balances differ from the moves"
    return set(sides)


def main(url: str, name: str, seed: int) -> None:
    c = dolite.cluster(name, storage=url, timeout=2.0)
    print("ready", flush=True)
    run(c, f"p{os.getpid()}", seed, None, out=sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
