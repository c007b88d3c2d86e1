"""The coordinator of a cross-shard transaction: two-phase commit over the page store's
primitives (dolite/pages/twophase.py).

1. Prepare, in parallel: each participant runs SQLite's COMMIT with a :class:`Stage` set
   on its page store, so the commit writes a prepared version and stops there.
2. Decide: one compare-and-set of ``txn/<id>`` in ``<cluster>.txn`` from absent to
   ``committed``. That is the commit point: the caller is answered here.
3. Apply, in parallel, in the background: each participant's head moves to its prepared
   version; then the transaction's shards are released (``finish``). Until then this
   process's next transaction on those shards waits for them, and a reader that settles a
   shard (dolite/pages/twophase.py ``settle``) rolls it forward itself.

Sequential round trips before the caller is answered: the prepares (in parallel) and the
decision.
Any failure before the decision aborts (decide ``aborted``, remove the prepared versions);
a decision whose reply was lost is read back, and if it cannot be, the prepared versions
are left for recovery and the caller gets a StorageError saying the outcome is unknown.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dolite.errors import Conflict, StorageError
from dolite.pages import twophase
from dolite.pages.store import PageStore
from dolite.storage.base import Storage

log = logging.getLogger("dolite.cluster")
# This process's 2PC metrics; ``decide_seconds``: from the start of the prepares to the
# durable decision (the commit latency a caller sees), summed over cross_shard_commits.
stats = {"cross_shard_commits": 0, "aborts": 0, "unknown_outcomes": 0, "apply_failures": 0,
         "decide_seconds": 0.0}


@dataclass
class Participant:
    """One shard's open SQLite transaction: its page store and how to end it."""

    name: str
    store: PageStore
    commit: Callable[[], None]  # SQLite's COMMIT: with a stage set, it prepares
    rollback: Callable[[], None]


def new_txn(coordinator: str, ttl: float) -> twophase.TxnRef:
    return twophase.TxnRef(id=uuid.uuid4().hex[:20], coordinator=coordinator,
                           expires=time.time() + ttl)


def commit(participants: list[Participant], coordinator: Storage, txn: twophase.TxnRef,
           finish: Callable[[bool], None] = lambda committed: None) -> None:
    """Commit every participant's transaction, all or nothing (see the module docstring).
    Returns once the decision is durable; the heads move in the background, then
    ``finish(True)`` runs. If this raises, ``finish(False)`` has run: not committed, or
    the outcome is unknown."""
    handed_over, started = False, time.perf_counter()
    try:
        with twophase.coordinating(txn.id), ThreadPoolExecutor(max(1, len(participants))) as pool:
            prepared = _prepare_all(pool, participants, coordinator, txn)
            if prepared and _decide(coordinator, txn, prepared) != twophase.COMMITTED:
                _abort(coordinator, txn, prepared)
                raise Conflict(f"transaction {txn.id} was aborted by recovery before it could "
                               "commit (its coordinator was presumed gone): retry")
        if prepared:
            stats["cross_shard_commits"] += 1
            stats["decide_seconds"] += time.perf_counter() - started
            _in_background(_apply_all, prepared, coordinator, txn, finish)
            handed_over = True
    finally:
        if not handed_over:
            finish(False)


def _prepare_all(pool: ThreadPoolExecutor, participants: list[Participant], coordinator: Storage,
                 txn: twophase.TxnRef) -> list[twophase.Prepared]:
    """Prepare every participant in parallel; on any failure abort them all and raise it."""
    stages = [twophase.Stage(p.store, txn) for p in participants]
    errors = list(pool.map(_prepare, participants, stages))
    prepared = [s.prepared for s in stages if s.prepared is not None]
    failed = next((e for e in errors if e is not None), None)
    if failed is not None:
        _abort(coordinator, txn, prepared)
        raise failed
    return prepared


def _apply_all(prepared: list[twophase.Prepared], coordinator: Storage, txn: twophase.TxnRef,
               finish: Callable[[bool], None]) -> None:
    try:
        with ThreadPoolExecutor(len(prepared)) as pool:
            if all(pool.map(_apply, prepared)):
                _quietly(twophase.forget_decision, coordinator, txn.id)
    finally:
        finish(True)


_background: set[threading.Thread] = set()
_background_lock = threading.Lock()


def _in_background(fn, *args) -> None:
    """Run ``fn(*args)`` in a thread that the interpreter waits for at exit (a kill -9
    before it ends is what recovery is for)."""
    def run() -> None:
        try:
            fn(*args)
        finally:
            with _background_lock:
                _background.discard(thread)

    thread = threading.Thread(target=run, name="dolite-2pc-apply")
    with _background_lock:
        _background.add(thread)
    thread.start()


def wait_for_applies(timeout: float | None = None) -> None:
    """Wait until every head move started by this process's commits is done."""
    with _background_lock:
        threads = list(_background)
    for thread in threads:
        thread.join(timeout)


def _prepare(participant: Participant, stage: twophase.Stage) -> BaseException | None:
    """Run the participant's COMMIT as a prepare; return the error, if any (its SQLite
    transaction is then rolled back)."""
    participant.store.stage = stage
    try:
        participant.commit()
        return None
    except BaseException as exc:  # noqa: BLE001 - reported by the caller, after the others
        _quietly(participant.rollback)
        return exc
    finally:
        participant.store.stage = None


def _decide(coordinator: Storage, txn: twophase.TxnRef, prepared: list[twophase.Prepared]) -> str:
    """Make the decision durable; return it. A lost reply is read back (and, if the
    decision did not land, replaced by ``aborted``)."""
    try:
        return twophase.decide(coordinator, txn.id, twophase.COMMITTED)
    except Exception as exc:  # noqa: BLE001 - the outcome is found out below
        try:
            return twophase.read_decision(coordinator, txn.id) or \
                twophase.decide(coordinator, txn.id, twophase.ABORTED)
        except Exception:  # noqa: BLE001 - left in doubt: recovery decides
            stats["unknown_outcomes"] += 1
            for p in prepared:
                with p.store._commit_lock:
                    p.store.in_doubt = None
                    twophase._forget_head(p.store)
            raise StorageError(f"transaction {txn.id}: the outcome of its commit is unknown "
                               f"(the decision could not be written or read back: {exc}); the "
                               "next access to its shards settles it") from exc


def _abort(coordinator: Storage, txn: twophase.TxnRef, prepared: list[twophase.Prepared]) -> None:
    """Record ``aborted`` (so no prepare that landed unheard can roll forward), then
    remove the prepared versions. Best effort: recovery finishes what fails here."""
    stats["aborts"] += 1
    try:
        if twophase.decide(coordinator, txn.id, twophase.ABORTED) != twophase.ABORTED:
            raise AssertionError(f"transaction {txn.id} committed while being aborted")
    except Conflict:
        pass
    except StorageError as exc:
        log.warning("transaction %s: could not record the abort (%s); recovery will", txn.id, exc)
    for p in prepared:
        _quietly(twophase.abort, p)


def apply_and_collect(prepared: twophase.Prepared) -> None:
    """Move the head, then collect garbage every GC_EVERY versions, as a commit does (a
    shard only ever written by 2PC would otherwise keep every old version)."""
    twophase.apply(prepared)
    prepared.store.collect_garbage_if_due()  # logs and counts a failure, never raises


def _apply(prepared: twophase.Prepared) -> bool:
    try:
        apply_and_collect(prepared)
        return True
    except Exception as exc:  # noqa: BLE001 - committed already: recovery rolls it forward
        stats["apply_failures"] += 1
        log.warning("%s: moving the head of committed transaction %s failed (%s); the next "
                    "access rolls it forward", prepared.store.name, prepared.txn.id, exc)
        return False


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - best effort; logged
        log.warning("%s failed: %s", getattr(fn, "__name__", fn), exc)
