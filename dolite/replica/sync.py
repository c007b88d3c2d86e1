"""A replica's sync: push pending transactions to the remote, then pull its new versions.

Push applies each pending changeset to the remote in a lease-mode (serializable)
transaction, conflicting rows decided by the policy, and records the replica's last
applied sequence number in the remote table ``_dolite_replicas`` in that same
transaction: a push whose reply was lost is recognised and never applied twice.

Pull makes the local copy byte-identical to the remote head in one local commit, copying
only the chunks that changed on either side since the last sync (named by both commit
logs); when a log no longer reaches back that far (retention), or the remote was dropped
and created again, it copies every chunk.
"""

from __future__ import annotations

import time

import apsw

from dolite.errors import Conflict, LeaseHeld
from dolite.pages import log
from dolite.pages.format import Head
from dolite.pages.store import PageStore
from dolite.replica.journal import Journal, Pending
from dolite.sql.dbapi import translated
from dolite.sql.optimistic import ConflictingRows, Policy, rollback_quietly, apply_changeset

MARKS = "_dolite_replicas"


def push(remote, journal: Journal, policy: Policy, retries: int) -> int:
    """Push every pending transaction of ``journal`` through ``remote`` (a lease-mode
    dolite Connection), oldest first; each pushed one leaves the journal. Returns how many
    were pushed. Raises ConflictingRows (``.pending`` = its seq) when the policy aborts
    one: it and later ones stay pending."""
    pending_transactions = journal.pending()
    if not pending_transactions:
        return 0
    replica = journal.state()["replica"]
    raw = remote.raw
    _run(raw, f"CREATE TABLE IF NOT EXISTS {MARKS}(replica TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
    pushed = 0
    for pending in pending_transactions:
        _push_one(raw, replica, pending, policy, retries)
        journal.remove(pending.seq)
        pushed += 1
    return pushed


def _push_one(raw: apsw.Connection, replica: str, pending: Pending, policy: Policy, retries: int) -> None:
    for attempt in range(retries + 1):
        try:
            raw.execute("BEGIN IMMEDIATE")  # the remote's write lease: serializable there
            row = raw.execute(f"SELECT seq FROM {MARKS} WHERE replica = ?", [replica]).fetchone()
            if row is None or row[0] < pending.seq:  # else applied already, its reply lost
                apply_changeset(raw, pending.changeset, policy)
                raw.execute(f"INSERT INTO {MARKS} VALUES (?, ?) ON CONFLICT(replica) "
                            "DO UPDATE SET seq = excluded.seq", [replica, pending.seq])
            raw.execute("COMMIT")
            return
        except ConflictingRows as exc:
            rollback_quietly(raw)
            exc.pending = pending.seq
            raise
        except apsw.Error as exc:
            rollback_quietly(raw)
            error = translated(exc)
            if isinstance(error, Conflict) and not isinstance(error, LeaseHeld) and attempt < retries:
                continue  # someone committed between our pin and our lease: again
            raise error from exc
        except BaseException:
            rollback_quietly(raw)
            raise


def _run(raw: apsw.Connection, sql: str) -> None:
    try:
        raw.execute(sql)
    except apsw.Error as exc:
        raise translated(exc) from exc


def pull(remote: PageStore, local: PageStore, journal: Journal) -> int:
    """Make the local copy equal the remote head; returns the number of chunks copied."""
    rhead = remote.read_head()
    if not local.exists():
        local.create(chunk_size=rhead.chunk_size, retention=rhead.retention)
    lhead = local.read_head()
    if lhead.chunk_size != rhead.chunk_size:
        raise Conflict(f"{local.name}: the local copy's chunk size ({lhead.chunk_size}) differs "
                       f"from the remote's ({rhead.chunk_size}): drop the local copy and sync again")
    state = journal.state()
    same_remote = state["remote_id"] == rhead.id
    same_local = state.get("local_id") == lhead.id
    if same_remote and same_local and (state["remote_version"], state["local_version"]) == \
            (rhead.version, lhead.version):
        return 0
    remote_changed = _changed(remote, rhead, state["remote_version"] if same_remote else -1)
    local_changed = _changed(local, lhead, state["local_version"] if same_local else -1)
    if remote_changed is None or local_changed is None:
        wanted = range(rhead.chunk_count)
    else:
        wanted = sorted(c for c in remote_changed | local_changed if c < rhead.chunk_count)
    chunks = {c: remote.chunk_as_of(rhead, c) for c in wanted}
    new = local.commit(lhead, chunks, rhead.size) if chunks or lhead.size != rhead.size else lhead
    journal.set_state(remote_id=rhead.id, remote_version=rhead.version, local_id=new.id,
                      local_version=new.version, synced=time.time())
    return len(chunks)


def _changed(store: PageStore, head: Head, since: int) -> set[int] | None:
    """The chunks versions ``since`` (exclusive) to ``head`` wrote or cut off; None when
    the commit log no longer tells (or ``since`` is unknown)."""
    if since < 0 or since > head.version:
        return None
    records = log.read_records(store.storage, store.name, since + 1, head.version + 1)
    if len(records) != head.version - since:
        return None  # garbage-collected: no longer known
    changed: set[int] = set()
    for record in records.values():
        changed.update(record.chunks)
        if record.size < record.old_size:
            changed.update(range(-(-record.size // head.chunk_size), -(-record.old_size // head.chunk_size)))
    return changed
