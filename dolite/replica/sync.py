"""A replica's sync: push pending transactions to the remote, then pull its new versions.

Push applies each pending changeset to the remote in a lease-mode (serializable)
transaction, conflicting rows decided by the policy, and records the replica's last
applied sequence number (and the time) in the remote table ``_dolite_replicas`` in that
same transaction: a push whose reply was lost is recognised and never applied twice.
:func:`apply_pending` is that transaction; the service's changesets route runs it too.

Pull makes the local copy byte-identical to the remote head in one local commit, copying
only the chunks that changed on either side since the last sync (named by both commit
logs); when a log no longer reaches back that far (retention), or the remote was dropped
and created again, it copies every chunk.
"""

from __future__ import annotations

import time

import apsw

from dolite.errors import Conflict, LeaseHeld, NotSupportedError
from dolite.pages import log
from dolite.pages.format import Head
from dolite.pages.in_place import again_if_overwritten
from dolite.pages.store import PageStore
from dolite.replica.journal import Journal
from dolite.sql.dbapi import connect, translated
from dolite.sql.optimistic import (
    ConflictingRows,
    Policy,
    apply_changeset,
    changed_tables,
    rollback_quietly,
    table_columns,
)

MARKS = "_dolite_replicas"


class StorageRemote:
    """Push and pull of one replica against a storage URL or Namespace."""

    def __init__(self, namespace, name: str, timeout: float):
        self.namespace, self.name, self.timeout = namespace, name, timeout

    def sync(self, journal: Journal, local: PageStore, policy: Policy, retries: int) -> dict:
        """Push pending transactions, then pull: ``{"pushed", "chunks"}``."""
        remote = connect(self.name, self.namespace, create=False, timeout=self.timeout)
        try:
            pushed = push(remote, journal, policy, retries)
            return {"pushed": pushed, "chunks": pull(remote.database.store, local, journal)}
        finally:
            remote.close()

    def close(self) -> None:
        pass


def push(remote, journal: Journal, policy: Policy, retries: int) -> int:
    """Push every pending transaction of ``journal`` through ``remote`` (a lease-mode
    dolite Connection), oldest first; each pushed one leaves the journal. Returns how many
    were pushed. Raises ConflictingRows (``.pending`` = its seq) when the policy aborts
    one: it and later ones stay pending."""
    pending_transactions = journal.pending()
    if not pending_transactions:
        return 0
    replica = journal.state()["replica"]
    pushed = 0
    for pending in pending_transactions:
        try:
            apply_pending(remote.raw, replica, pending.seq, pending.changeset, policy, retries)
        except ConflictingRows as exc:
            exc.pending = pending.seq
            raise
        journal.remove(pending.seq)
        pushed += 1
    return pushed


def refuse_reserved(changeset: bytes) -> None:
    """A changeset may not write SQLite's own tables or the replicas' marks (a replica
    could otherwise forge another's sequence number)."""
    reserved = [t for t in changed_tables(changeset) if t.lower().startswith("sqlite_") or t == MARKS]
    if reserved:
        raise NotSupportedError(f"a changeset may not change {reserved}: reserved tables; nothing was stored")


def apply_pending(raw: apsw.Connection, replica: str, seq: int, changeset: bytes, policy: Policy,
                  retries: int) -> dict:
    """Apply replica ``replica``'s transaction ``seq`` to the database of ``raw`` (its own
    lease-mode connection, no transaction open) exactly once, conflicting rows decided by
    ``policy``, and record ``seq`` in ``_dolite_replicas`` in the same transaction. Used by
    a push to a storage URL and by ``POST /v1/databases/{name}/changesets``. Returns
    ``{"applied": False}`` when ``seq`` was applied before (its reply lost), else
    ``{"applied": True, "conflicts": [RowConflict, ...]}`` (the rows the policy decided).
    Raises ConflictingRows when the policy aborts; then nothing is stored."""
    refuse_reserved(changeset)
    _ensure_marks(raw)
    for attempt in range(retries + 1):
        try:
            raw.execute("BEGIN IMMEDIATE")  # the remote's write lease: serializable there
            row = raw.execute(f"SELECT seq FROM {MARKS} WHERE replica = ?", [replica]).fetchone()
            if row is not None and row[0] >= seq:  # applied already, its reply lost
                raw.execute("ROLLBACK")
                return {"applied": False}
            conflicts = apply_changeset(raw, changeset, policy)
            raw.execute(f"INSERT INTO {MARKS} VALUES (?, ?, ?) ON CONFLICT(replica) "
                        "DO UPDATE SET seq = excluded.seq, synced = excluded.synced",
                        [replica, seq, time.time()])
            raw.execute("COMMIT")
            return {"applied": True, "conflicts": conflicts}
        except apsw.Error as exc:
            rollback_quietly(raw)
            error = translated(exc)
            if isinstance(error, Conflict) and not isinstance(error, LeaseHeld) and attempt < retries:
                continue  # someone committed between our pin and our lease: again
            raise error from exc
        except BaseException:
            rollback_quietly(raw)
            raise
    raise AssertionError("unreachable")  # the last attempt returns or raises


def _ensure_marks(raw: apsw.Connection) -> None:
    """The marks table, with its ``synced`` column (time of the last push; tables made by
    an older version lack it and gain it here)."""
    _run(raw, f"CREATE TABLE IF NOT EXISTS {MARKS}(replica TEXT PRIMARY KEY, seq INTEGER NOT NULL, synced REAL)")
    if "synced" not in [c[0] for c in table_columns(raw, MARKS)]:
        _run(raw, f"ALTER TABLE {MARKS} ADD COLUMN synced REAL")


def read_marks(raw: apsw.Connection) -> list[dict]:
    """Every replica that pushed to this database: ``replica`` (id), ``seq`` (its last
    transaction applied) and ``synced`` (when, Unix seconds; None if not recorded)."""
    columns = [c[0] for c in table_columns(raw, MARKS)]
    if not columns:
        return []
    synced = "synced" if "synced" in columns else "NULL"
    rows = raw.execute(f"SELECT replica, seq, {synced} FROM {MARKS} ORDER BY replica").fetchall()
    return [{"replica": r, "seq": s, "synced": t} for r, s, t in rows]


def _run(raw: apsw.Connection, sql: str) -> None:
    try:
        raw.execute(sql)
    except apsw.Error as exc:
        raise translated(exc) from exc


def pull(remote: PageStore, local: PageStore, journal: Journal) -> int:
    """Make the local copy equal the remote head; returns the number of chunks copied. A
    copy whose remote head a writer elsewhere overwrote in place meanwhile (retention 0)
    starts again from the newest head (``in_place.again_if_overwritten``)."""
    return again_if_overwritten(lambda: _pull_once(remote, local, journal))


def _pull_once(remote: PageStore, local: PageStore, journal: Journal) -> int:
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
    records = log.read_records(store.storage, store.name, head, since + 1, head.version + 1)
    if len(records) != head.version - since:
        return None  # garbage-collected: no longer known
    changed: set[int] = set()
    for record in records.values():
        changed.update(record.chunks)
        if record.size < record.old_size:
            changed.update(range(-(-record.size // head.chunk_size), -(-record.old_size // head.chunk_size)))
    return changed
