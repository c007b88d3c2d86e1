"""Local replicas: a local copy of a database that keeps working while the remote is away.

    r = dolite.replica("shop", remote="do+http://...", local="lmdb:./replica")
    conn = r.connect()             # reads and writes the local copy
    conn.execute("UPDATE stock SET qty = qty - 1 WHERE sku = 'A1'")
    conn.commit()                  # stored locally, and journaled as pending
    r.sync()                       # push pending changesets (on_conflict decides), pull
    r.pending()                    # what is not pushed yet

A local transaction is recorded as a changeset (the session extension, as in optimistic
mode: tables need a primary key and the schema cannot change through a replica) and
journaled durably in the local storage before the local commit, so it survives kill -9 and
restarts. :meth:`Replica.sync` pushes the pending transactions oldest first, each applied
to the remote head with the policy deciding conflicting rows, exactly once; then it pulls:
the local copy becomes byte-identical to the remote head, copying only the chunks that
changed on either side. If the policy aborts a pending transaction, sync stops there and
raises ConflictingRows; it stays pending (:meth:`Replica.discard` drops it, or sync again
with another ``on_conflict``). While the remote is unreachable, sync raises and the local
copy keeps serving reads and writes.

The remote is a storage URL or Namespace, or a ``dolite serve`` (``"http://HOST:PORT"``,
token from ``token=`` or ``$DOLITE_TOKEN``; see dolite/replica/http.py: the policy must
then be ``"abort"``, ``"theirs"`` or ``"ours"``).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import types

from dolite.errors import NotSupportedError
from dolite.names import validate_name
from dolite.replica.journal import Journal, Pending
from dolite.replica.http import ServiceRemote, is_service_url, refuse_callable
from dolite.replica.sync import StorageRemote, refuse_reserved
from dolite.sql.dbapi import Connection, connect
from dolite.sql.optimistic import Optimistic, Policy, check_policy, rollback_quietly
from dolite.sql.vfs import vfs_for
from dolite.storage import Namespace, open_storage

__all__ = ["Replica", "Pending", "replica"]
_VETO_ID = "dolite.replica"


def replica(name: str, remote: str | Namespace, local: str | Namespace = "lmdb:./.dolite-replica",
            *, on_conflict: Policy = "abort", retries: int = 3, timeout: float = 5.0,
            token: str | None = None) -> Replica:
    """Open the replica of database ``name`` of ``remote`` (a storage URL or Namespace, or
    a dolite service's ``http(s)://HOST:PORT`` with ``token``) kept in ``local``. A replica
    that has no local copy yet copies the remote now (which must then be reachable); one
    that has works without the remote until :meth:`Replica.sync`."""
    return Replica(name, remote, local, on_conflict=on_conflict, retries=retries, timeout=timeout, token=token)


class Replica:
    """A local copy of one remote database, its pending transactions and their sync."""

    def __init__(self, name: str, remote, local, *, on_conflict: Policy = "abort",
                 retries: int = 3, timeout: float = 5.0, token: str | None = None):
        validate_name(name)
        check_policy(on_conflict, retries)
        self.name, self.on_conflict, self.retries, self.timeout = name, on_conflict, retries, timeout
        self.local = open_storage(local)
        self._remote = _open_remote(name, remote, self.local, timeout, token)
        if isinstance(self._remote, ServiceRemote):
            refuse_callable(on_conflict)
        self.journal = Journal(self.local.object(f"{name}.replica"))
        self._local_vfs = vfs_for(self.local)
        self._local_db = self._local_vfs.attach(name)
        self._lock = threading.Lock()
        try:
            if not self._local_db.store.exists():
                self.sync()
        except BaseException:
            self.close()
            raise

    def connect(self, **options) -> Connection:
        """A DB-API connection to the local copy (``dolite.connect`` options, in lease mode).
        Its transactions are journaled for the next sync; a commit not made by the driver's
        :meth:`Connection.commit` (autocommit, a COMMIT statement) is refused, since it
        could not be pushed."""
        for refused in ("concurrency", "exclusive", "create", "on_conflict", "retries"):
            if refused in options:
                raise NotSupportedError(f"{refused}= does not apply to a replica's local connection")
        if options.get("isolation_level", "") is None:
            raise NotSupportedError("a replica's connection needs transactions (isolation_level=None "
                                    "would commit each statement unrecorded)")
        conn = connect(self.name, self.local, create=False, **options)
        recorder = _Recorder(self.journal, self._lock)
        conn.optimistic = recorder
        conn.raw.set_commit_hook(recorder.veto, id=_VETO_ID)
        return conn

    def pending(self) -> list[Pending]:
        """Local transactions not pushed yet, oldest first (they survive restarts)."""
        return self.journal.pending()

    def discard(self, seq: int) -> None:
        """Drop pending transaction ``seq`` unpushed; the next sync's pull takes its
        changes out of the local copy."""
        self.journal.remove(seq)
        self.journal.set_state(local_version=-1)  # the pull compares every chunk again

    def sync(self, on_conflict: Policy | None = None) -> dict:
        """Push pending transactions (``on_conflict`` overrides the replica's policy for this
        sync), then pull the remote's new versions. Returns ``{"pushed", "chunks"}``."""
        policy = self.on_conflict if on_conflict is None else on_conflict
        check_policy(policy, self.retries)
        with self._lock:
            return self._remote.sync(self.journal, self._local_db.store, policy, self.retries)

    def status(self) -> dict:
        """The last sync (``remote_version``, ``synced`` time), the ``pending`` transactions
        and the lag: ``oldest_pending`` (when the oldest unpushed transaction was committed
        locally, or None) and ``since_sync`` (seconds since the last sync, or None)."""
        state, pending = self.journal.state(), self.journal.pending()
        synced = state.get("synced")
        return {"replica": state["replica"], "remote_version": state["remote_version"], "synced": synced,
                "pending": len(pending), "oldest_pending": pending[0].time if pending else None,
                "since_sync": None if synced is None else max(0.0, time.time() - synced)}

    def close(self) -> None:
        db, self._local_db = self._local_db, None
        if db is not None:
            self._local_vfs.detach(db)
        remote = getattr(self, "_remote", None)
        if remote is not None:
            remote.close()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_remote(name: str, remote, local: Namespace, timeout: float, token: str | None):
    if is_service_url(remote):
        return ServiceRemote(remote, name, token, timeout)
    if token is not None:
        raise NotSupportedError("token= applies only to a dolite service remote (http:// or https://)")
    namespace = open_storage(remote)
    if namespace is local:
        raise NotSupportedError("a replica's local storage must differ from its remote")
    return StorageRemote(namespace, name, timeout)


class _Recorder(Optimistic):
    """The replica side of a local connection: journal each transaction's changeset, then
    commit it locally (lease mode); refuse any commit it did not make."""

    def __init__(self, journal: Journal, sync_lock: threading.Lock):
        super().__init__("abort", 0)
        self.journal = journal
        self.sync_lock = sync_lock  # a sync must not push a transaction between journal and commit
        self._committing = False

    def veto(self) -> bool:
        """SQLite's commit hook: only our own COMMIT may go ahead (raising rolls back)."""
        if self._committing:
            return False
        raise NotSupportedError("a replica's connection commits only through commit() (a COMMIT "
                                "statement or autocommit cannot be journaled); nothing was stored")

    def commit(self, conn) -> None:
        raw, seq = conn.raw, None
        try:
            if not self._live:
                raise NotSupportedError("a replica records only the transactions its driver begins "
                                        "(no BEGIN statements); nothing was stored")
            with conn._errors(), self.sync_lock:
                changeset, shapes = self._recorded(raw)
                self.ended()
                refuse_reserved(changeset)  # it could never be pushed
                if changeset:
                    seq = self.journal.add(changeset, list(shapes))
                self._committing = True
                try:
                    raw.execute("COMMIT")
                finally:
                    self._committing = False
        except BaseException:
            if seq is not None:
                with contextlib.suppress(Exception):
                    self.journal.remove(seq)  # (if this fails too, the next sync pushes it)
            self.ended()
            rollback_quietly(raw)
            raise


class _CallablePackage(types.ModuleType):
    """``import dolite.replica`` binds this package where ``dolite.replica`` (the function)
    was: calling the package opens a replica, so both spellings keep working."""

    def __call__(self, *args, **kwargs) -> Replica:
        return replica(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
