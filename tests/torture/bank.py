"""The bank workload the kill -9 torture runs: transfers between accounts, each logged,
with an occasional large blob so that some commits take the multi-batch path.

Every transfer is a pure function of its sequence number, so a verifier can recompute
the balances from the transfer log alone and catch any half-applied transaction.
"""

from __future__ import annotations

import hashlib
import random
import sys

ACCOUNTS = 20
INITIAL = 1_000
BLOB_EVERY = 9  # every 9th transfer also writes a blob of BLOB_BYTES (over 128 chunks)
BLOB_BYTES = 600_000
BLOBS_KEPT = 3


def transfer(seq: int) -> tuple[int, int, int]:
    rng = random.Random(seq)
    a = rng.randrange(ACCOUNTS)
    b = (a + 1 + rng.randrange(ACCOUNTS - 1)) % ACCOUNTS
    return a, b, rng.randint(1, 50)


def blob(seq: int) -> bytes:
    return random.Random(-seq).randbytes(BLOB_BYTES)


def create(conn) -> None:
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
    conn.execute("CREATE TABLE transfers(seq INTEGER PRIMARY KEY, a INTEGER, b INTEGER, amount INTEGER)")
    conn.execute("CREATE TABLE blobs(seq INTEGER PRIMARY KEY, sha TEXT, data BLOB)")
    conn.executemany("INSERT INTO accounts VALUES (?, ?)", [(i, INITIAL) for i in range(ACCOUNTS)])
    conn.execute("COMMIT")


def apply(conn, seq: int) -> None:
    a, b, amount = transfer(seq)
    conn.execute("BEGIN")
    conn.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, a))
    conn.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, b))
    conn.execute("INSERT INTO transfers VALUES (?, ?, ?, ?)", (seq, a, b, amount))
    if seq % BLOB_EVERY == 0:
        data = blob(seq)
        conn.execute("INSERT INTO blobs VALUES (?, ?, ?)", (seq, hashlib.sha256(data).hexdigest(), data))
        conn.execute("DELETE FROM blobs WHERE seq <= ?", (seq - BLOB_EVERY * BLOBS_KEPT,))
    conn.execute("COMMIT")


def verify(conn) -> int:
    """Check every invariant; return the number of committed transfers."""
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    seqs = [r[0] for r in conn.execute("SELECT seq FROM transfers ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)), "transfer log has a gap"
    expected = [INITIAL] * ACCOUNTS
    for seq in seqs:
        a, b, amount = transfer(seq)
        expected[a] -= amount
        expected[b] += amount
    balances = [r[0] for r in conn.execute("SELECT balance FROM accounts ORDER BY id")]
    assert balances == expected, "balances do not match the transfer log (half-applied transaction)"
    assert sum(balances) == INITIAL * ACCOUNTS
    for seq, sha, data in conn.execute("SELECT seq, sha, data FROM blobs"):
        assert data == blob(seq) and hashlib.sha256(data).hexdigest() == sha, f"blob {seq} is wrong"
    last = len(seqs)
    want = [s for s in range(max(1, last - BLOB_EVERY * BLOBS_KEPT + 1), last + 1) if s % BLOB_EVERY == 0]
    got = [r[0] for r in conn.execute("SELECT seq FROM blobs ORDER BY seq")]
    assert got == want, f"blobs {got}, expected {want}"
    return last


def writer(url: str, name: str) -> None:
    """Run transfers forever, printing each sequence number once its commit returned."""
    import dolite

    conn = dolite.connect(name, storage=url, isolation_level=None)
    seq = conn.execute("SELECT coalesce(max(seq), 0) FROM transfers").fetchone()[0] + 1
    print("ready", flush=True)
    print(f"found={seq - 1}", flush=True)  # the transfers this fresh process saw committed
    while True:
        apply(conn, seq)
        print(seq, flush=True)
        seq += 1


if __name__ == "__main__":
    writer(sys.argv[1], sys.argv[2])
