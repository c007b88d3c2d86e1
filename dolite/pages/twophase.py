"""Two-phase commit on the page store: prepare, decide, apply; and recovery.

A participant *prepares* a version: it writes the version's log record and chunks (as a
commit does) and, in the last call, a ``prepare/<version>`` record naming the
transaction, its coordinator object and the coordinator's owner and expiry, all fenced by
its write lease and checked against the head, without moving the head. A prepared version
is invisible: readers read versions up to the head only.

The decision is one compare-and-set on ``txn/<id>`` in the coordinator object, from absent
to ``committed`` or ``aborted`` (presumed abort: no record means "not committed"). That
record is the only commit point, so every participant reaches the same outcome:

* *apply* moves a participant's head to its prepared version and deletes the prepare
  record, in one call that checks the head is still the base and the prepare record is
  still there (so it never lands on top of a resolution);
* *abort* deletes the prepare record (fenced by the lease), then the version's debris.

Recovery needs no coordinator process. Whoever next takes a shard's lease (debris cleanup,
:func:`resolve_in_doubt`) finds the prepare record and reads the decision: committed ->
roll forward; aborted -> remove; none yet -> if the coordinator is provably gone (its
process died, or its expiry passed) write ``aborted`` by compare-and-set and remove, else
raise a retryable :class:`LeaseHeld`. A reader that does not take the lease can call
:func:`settle` to roll forward a version whose transaction is decided committed, so that
once it has seen one participant's new head it never sees another's old one.

Invariant: a prepared version is deleted only after ``aborted`` is durable in its
transaction record; a prepared version's head is moved only after ``committed`` is.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field

from dolite.errors import Conflict, CorruptChunk, LeaseHeld
from dolite.pages import gc
from dolite.pages.format import HEAD, LEASE, Head, decode_record, encode_record
from dolite.pages.lease import HOST, Lease
from dolite.storage.base import Storage

# ``PageStore`` in annotations is dolite.pages.store.PageStore (not imported: it imports us).

PREPARE_PREFIX = "prepare/"
TXN_PREFIX = "txn/"
COMMITTED, ABORTED = "committed", "aborted"
_TOKEN = uuid.uuid4().hex[:8]


def process_owner() -> str:
    """This process, as a coordinator: host:pid:token (the pid read now, so a forked child
    is another owner than its parent)."""
    return f"{HOST}:{os.getpid()}:{_TOKEN}"


# In-doubt resolutions made by this process (metrics): rolled forward / removed, and how
# many of the removed were presumed aborted (their coordinator gone, undecided).
stats = {"rolled_forward": 0, "removed": 0, "presumed_aborted": 0}

_coordinating: set[str] = set()  # transaction ids this process is deciding right now
_coordinating_lock = threading.Lock()


def prepare_key(version: int) -> str:
    return f"{PREPARE_PREFIX}{version:012x}"


def txn_key(txn_id: str) -> str:
    return TXN_PREFIX + txn_id


@dataclass(frozen=True)
class TxnRef:
    """A cross-object transaction as its participants name it."""

    id: str
    coordinator: str  # the object holding ``txn/<id>``
    owner: str = field(default_factory=process_owner)  # the coordinating process
    expires: float = 0.0  # after this, anyone may presume it aborted


@dataclass
class Prepared:
    """One participant's prepared version."""

    store: PageStore
    txn: TxnRef
    base: Head
    new: Head
    key: str  # its prepare record
    record: bytes
    chunk_ids: list[int]
    written: list[int] = field(default_factory=lambda: [0, 0])


class Stage:
    """Set as ``store.stage`` by a participant holding the write lock: its next commit
    (SQLite's COMMIT, through the VFS and PagedFile) stops at "prepared"."""

    def __init__(self, store: PageStore, txn: TxnRef):
        self.store, self.txn = store, txn
        self.prepared: Prepared | None = None
        self.tried = False

    def prepare(self, base: Head, chunks: dict[int, bytes], size: int) -> None:
        if self.tried:
            raise Conflict(f"database {self.store.name!r}: a 2PC participant commits once")
        self.tried = True
        self.prepared = prepare(self.store, base, chunks, size, self.txn)


# -- the participant's primitives ------------------------------------------------------


def prepare(store: PageStore, base: Head, chunks: dict[int, bytes], size: int, txn: TxnRef) -> Prepared:
    """Write the version after ``base`` (chunks, log record, prepare record) without moving
    the head. Raise Conflict if ``base`` is no longer the head or the lease was lost."""
    ids = sorted(chunks)
    with store._commit_lock:
        store._hold_lease()
        new = base.advance(size, time.time())
        key = prepare_key(new.version)
        record = encode_record(key, {"txn": txn.id, "coordinator": txn.coordinator, "owner": txn.owner,
                                     "expires": txn.expires, "size": new.size, "time": new.time})
        last = {key: record, **store.lease.renewal()}
        expect = {HEAD: base.encode(), LEASE: store.lease.raw}
        _, written, _ = store._write_version(base, new, ids, ((c, chunks[c]) for c in ids), last, expect,
                                          moves_head=False)
        store.lease.renewed()
        prepared = Prepared(store, txn, base, new, key, record, ids, written)
        store.in_doubt = prepared
    return prepared


def apply(prepared: Prepared) -> Head:
    """Move the head to the prepared version (call only once ``committed`` is durable).
    If a resolver rolled it forward first, that is the same outcome."""
    store, new = prepared.store, prepared.new
    with store._commit_lock:
        store.in_doubt = None
        try:
            store.storage.commit({HEAD: new.encode()}, deletes=[prepared.key],
                                 expect={HEAD: prepared.base.encode(), prepared.key: prepared.record})
        except Conflict:
            current = store.read_head()
            if current.id != new.id or current.version < new.version:
                raise CorruptChunk(f"{store.name}: prepared v{new.version} of committed transaction "
                                   f"{prepared.txn.id} is gone") from None
            return current
        except BaseException:
            _forget_head(store)
            raise
        store._after_commit(prepared.base, new, prepared.chunk_ids, prepared.written)
    return new


def abort(prepared: Prepared) -> None:
    """Remove the prepared version (call only once ``aborted`` is durable, or when the
    coordinator will never decide commit). On failure, the next writer cleans up."""
    store = prepared.store
    with store._commit_lock:
        store.in_doubt = None
        try:
            store.storage.commit({}, deletes=[prepared.key],
                                 expect={prepared.key: prepared.record, LEASE: store.lease.raw})
            gc.remove_uncommitted(store._fenced(), prepared.base)
        except BaseException:
            _forget_head(store)
            raise


def _forget_head(store: PageStore) -> None:
    """After an unheard outcome: read the head from storage and clean up before writing."""
    with store._lock:
        store._latest = None
    store._needs_cleanup = True


def in_doubt_here(store: PageStore) -> LeaseHeld:
    prepared = store.in_doubt
    return LeaseHeld(f"database {store.name!r}: transaction {prepared.txn.id} prepared "
                     f"v{prepared.new.version} here and is being decided (retry)")


# -- decisions ---------------------------------------------------------------------------


def read_decision(coordinator: Storage, txn_id: str) -> str | None:
    """``committed``, ``aborted``, or None (undecided: presumed abort once its coordinator is gone)."""
    key = txn_key(txn_id)
    raw = coordinator.get([key]).get(key)
    return None if raw is None else decode_record(raw, key)["state"]


def decide(coordinator: Storage, txn_id: str, state: str) -> str:
    """Record ``state`` for the transaction if it is undecided; return the state that
    stands (``state``, or the one somebody else recorded first)."""
    key = txn_key(txn_id)
    try:
        coordinator.commit({key: encode_record(key, {"state": state, "time": time.time()})},
                           expect={key: None})
        return state
    except Conflict:
        standing = read_decision(coordinator, txn_id)
        if standing is None:
            raise
        return standing


def forget_decision(coordinator: Storage, txn_id: str) -> None:
    """Delete a committed transaction's record once every participant applied it."""
    coordinator.delete([txn_key(txn_id)])


class coordinating:
    """``with coordinating(txn_id):`` this process is deciding the transaction; once the
    block is left, a resolver in this process may presume it aborted."""

    def __init__(self, txn_id: str):
        self.txn_id = txn_id

    def __enter__(self):
        with _coordinating_lock:
            _coordinating.add(self.txn_id)

    def __exit__(self, *exc):
        with _coordinating_lock:
            _coordinating.discard(self.txn_id)


def coordinator_gone(owner: str, txn_id: str, expires: float, now: float) -> bool:
    """True when the coordinator cannot decide any more: its expiry passed, its process
    died, or (this process) it is no longer deciding that transaction."""
    if owner == process_owner():
        with _coordinating_lock:
            return txn_id not in _coordinating or expires <= now
    return Lease(epoch=0, owner=owner, expires=expires).holder_is_gone(now)


# -- recovery ------------------------------------------------------------------------------


def resolve_in_doubt(store: PageStore, db: gc.Fenced, head: Head) -> Head:
    """Resolve the prepared version left above ``head`` (called with the lease held, before
    debris cleanup): roll it forward if committed, else remove its prepare record (its
    chunks and log record are then ordinary debris). Returns the head after that."""
    for key, raw, fields, version in _prepare_records(db.storage, db.name, head):
        state = _decision(store, fields)
        if state is None:
            if not coordinator_gone(fields["owner"], fields["txn"], fields["expires"], time.time()):
                raise LeaseHeld(f"database {db.name!r}: transaction {fields['txn']} is in doubt "
                                f"(prepared v{version}; its coordinator {fields['owner']} is deciding): retry")
            state = decide(store.objects(fields["coordinator"]), fields["txn"], ABORTED)
            stats["presumed_aborted"] += state == ABORTED
        if state == COMMITTED:
            head = _roll_forward(store, head, key, raw, fields, {LEASE: db.lease})
        else:
            db.storage.commit({}, deletes=[key], expect={key: raw, LEASE: db.lease})
            stats["removed"] += 1
    return head


def settle(store: PageStore) -> None:
    """For readers that hold no lease: make this process's view of the head include every
    version decided committed, rolling forward a prepared one itself if need be (two small
    calls when nothing is prepared). Undecided or aborted ones are left to the next writer.

    The prepare records are listed before the head is read: a head move that landed
    before the list is then seen by the read (even if this process's own background apply
    has not yet noted it in memory), and one that lands after finds the record listed."""
    listed = store.storage.list(prefix=PREPARE_PREFIX)
    head = store.read_head()
    for key, raw, fields, version in _records(listed, store.name, head, strict=False):
        if version == head.version + 1 and store.objects is not None \
                and _decision(store, fields) == COMMITTED:
            try:
                _roll_forward(store, head, key, raw, fields, {})
            except Conflict:
                store.read_head()  # the coordinator or another reader moved it first


def _prepare_records(storage: Storage, name: str, head: Head):
    return _records(storage.list(prefix=PREPARE_PREFIX), name, head, strict=True)


def _records(listed: dict[str, bytes], name: str, head: Head, strict: bool):
    """The prepare records, decoded. ``strict`` (the lease is held, so nothing moves): one
    that does not follow the head is damage, reported, never deleted. Not strict (a reader,
    racing with writers): such a record is someone else's newer state, skipped."""
    for key, raw in listed.items():
        version = int(key[len(PREPARE_PREFIX):], 16)
        if strict and version != head.version + 1:
            raise CorruptChunk(f"{name}: prepare record {key!r} does not follow the head "
                               f"v{head.version} (nothing was deleted)")
        yield key, raw, decode_record(raw, key, name), version


def _decision(store: PageStore, fields: dict) -> str | None:
    if store.objects is None:
        raise LeaseHeld(f"database {store.name!r}: transaction {fields['txn']} is in doubt and this "
                        "store cannot read its decision: open it with dolite.connect or its cluster")
    return read_decision(store.objects(fields["coordinator"]), fields["txn"])


def _roll_forward(store: PageStore, head: Head, key: str, raw: bytes, fields: dict,
                  fence: dict[str, bytes | None]) -> Head:
    new = head.advance(fields["size"], fields["time"])
    store.storage.commit({HEAD: new.encode()}, deletes=[key],
                         expect={HEAD: head.encode(), key: raw, **fence})
    store._observe(new)
    stats["rolled_forward"] += 1
    return new
