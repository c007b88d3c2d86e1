"""What a workload costs on a SQLite-backed Durable Object, from the rows and requests it used.

Cloudflare's published prices (Workers Paid plan, beyond the included amounts), for
SQLite-backed Durable Objects: **$1.00 per million rows written**, **$0.001 per million rows
read**, **$0.15 per million requests** to an object; and for the Worker in front of them
(Workers Standard): **$0.30 per million requests**. A client cannot reach a Durable Object
but through a Worker, so each HTTP request either side sends is one Worker request and one
object request. The key-value API is billed in the same rows as SQL: each key a ``get``
names is one row read, each entry a ``list`` returns one row read, each key a ``put``
names one row written, and deletes count as rows written (the Worker counts the rows a
delete removed). SQL is billed as its cursors report (``cursor.rowsRead``,
``cursor.rowsWritten``). Duration (GB-s), Worker CPU time and stored bytes are billed too
but are not modelled here.

So the cost of one million transactions, in dollars, is simply::

    rows_written * 1.00 + rows_read * 0.001 + requests * (0.15 + 0.30)   (per-transaction counts)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

PRICE_PER_MILLION = {"rows_written": 1.00, "rows_read": 0.001, "object_requests": 0.15, "worker_requests": 0.30}
"""US dollars per million of each billed unit (Cloudflare's published pricing)."""

BILLED_AS = {"rows_written": "rows_written", "rows_read": "rows_read", "object_requests": "requests",
             "worker_requests": "requests"}
"""The :class:`Usage` field each priced unit counts: an HTTP request is both a Worker request
and a Durable Object request."""


@dataclass(frozen=True)
class Usage:
    """Billed units: Durable Object requests and the storage rows they read and wrote.

    Used both for totals over a phase and for per-transaction averages (then fractional).
    """

    requests: float = 0
    rows_read: float = 0
    rows_written: float = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.requests + other.requests, self.rows_read + other.rows_read,
                     self.rows_written + other.rows_written)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.requests - other.requests, self.rows_read - other.rows_read,
                     self.rows_written - other.rows_written)

    def scaled(self, factor: float) -> Usage:
        return Usage(self.requests * factor, self.rows_read * factor, self.rows_written * factor)

    def per(self, transactions: int) -> Usage:
        """The average per transaction over ``transactions`` (at least one)."""
        if transactions < 1:
            raise ValueError(f"an average needs at least one transaction, not {transactions}")
        return self.scaled(1 / transactions)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def cost_per_million(per_transaction: Usage) -> float:
    """Dollars per million transactions that each use ``per_transaction``."""
    return sum(getattr(per_transaction, BILLED_AS[unit]) * price for unit, price in PRICE_PER_MILLION.items())


MIX = {"point_read": 0.70, "commit": 0.20, "interactive_txn": 0.09, "full_scan": 0.01}
"""The *mixed* workload: the share of each kind of transaction (a read-mostly application:
point lookups, single-row writes, read-modify-write transactions, an occasional full scan)."""


def mixed(per_transaction: dict[str, Usage], mix: dict[str, float] = MIX) -> Usage:
    """The average usage of one transaction of the mix, from each kind's average usage."""
    missing = set(mix) - set(per_transaction)
    if missing:
        raise KeyError(f"the mix needs figures for {', '.join(sorted(missing))}")
    total = Usage()
    for kind, share in mix.items():
        total = total + per_transaction[kind].scaled(share)
    return total
