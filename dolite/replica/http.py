"""A replica whose remote is a ``dolite serve`` (``remote="http://HOST:PORT"``).

Push: each pending transaction is one ``POST /v1/databases/{name}/changesets`` whose body
is the changeset itself (``application/octet-stream``) and whose query string names the
replica, the sequence number, the policy and the local commit time. The server applies it
with :func:`dolite.replica.sync.apply_pending` (the same transaction as a push to a
storage URL: exactly once, the policy deciding each conflicting row). A policy that
aborts answers 409 ``conflict`` whose error also holds ``conflicts``; it is raised here as
:class:`~dolite.sql.optimistic.ConflictingRows`. A callable policy cannot cross HTTP and
is refused (NotSupportedError).

Pull: when the database's version (``GET /v1/databases/{name}``) differs from the one the
local copy last equalled, or the local copy changed since, the whole database is
downloaded (``GET /v1/databases/{name}/export``, streamed to a temporary file) and only
the chunks that differ from the local copy are written locally. Cost: one small request
when nothing changed; otherwise the database's full size over the network (a route
serving only the changed chunks would avoid that; see docs/CONCURRENCY.md).
"""

from __future__ import annotations

import os
import tempfile
import time

import httpx

from dolite.errors import Conflict, NotSupportedError
from dolite.pages.store import PageStore
from dolite.remote.api import error_for, network_error
from dolite.remote.client import Client
from dolite.remote.wire import decode_value, encode_value
from dolite.replica.journal import Journal
from dolite.sql.optimistic import POLICIES, ConflictingRows, Policy, RowConflict

CHANGESET_TYPE = "application/octet-stream"


def is_service_url(remote) -> bool:
    return isinstance(remote, str) and remote.startswith(("http://", "https://"))


def refuse_callable(policy: Policy) -> None:
    if policy not in POLICIES:
        raise NotSupportedError(f"on_conflict={policy!r} cannot be sent to a dolite service: a callable "
                                f"does not cross HTTP; use one of {POLICIES}")


# -- the conflicts in an answer ---------------------------------------------------------------


def encode_conflict(conflict: RowConflict) -> dict:
    """A RowConflict as JSON, values in wire form (blobs, large integers, infinities)."""
    def values(row: dict | None) -> dict | None:
        return None if row is None else {k: encode_value(v) for k, v in row.items()}

    return {"table": conflict.table, "key": [encode_value(v) for v in conflict.key], "kind": conflict.kind,
            "reason": conflict.reason, "stored": values(conflict.stored), "ours": values(conflict.ours)}


def decode_conflict(doc: dict) -> RowConflict:
    def values(row: dict | None) -> dict | None:
        return None if row is None else {k: decode_value(v) for k, v in row.items()}

    return RowConflict(doc["table"], tuple(decode_value(v) for v in doc["key"]), doc["kind"], doc["reason"],
                       values(doc["stored"]), values(doc["ours"]))


# -- the remote -------------------------------------------------------------------------------


class ServiceRemote:
    """Push and pull of one replica through a dolite service."""

    def __init__(self, url: str, name: str, token: str | None, timeout: float):
        self.name = name
        self.client = Client(url, token if token is not None else os.environ.get("DOLITE_TOKEN"), timeout=timeout)

    def sync(self, journal: Journal, local: PageStore, policy: Policy, retries: int) -> dict:
        """Push, then pull (``retries`` is unused: the service holds the write lease)."""
        refuse_callable(policy)
        return {"pushed": self.push(journal, policy), "chunks": self.pull(local, journal)}

    def push(self, journal: Journal, policy: Policy) -> int:
        """Push every pending transaction, oldest first (see the module docstring)."""
        pending_transactions = journal.pending()
        if not pending_transactions:
            return 0
        replica = journal.state()["replica"]
        for pending in pending_transactions:
            params = {"replica": replica, "seq": str(pending.seq), "on_conflict": policy,
                      "committed_at": repr(pending.time)}
            response = self._send("POST", f"/v1/databases/{self.name}/changesets", params=params,
                                  content=pending.changeset, headers={"Content-Type": CHANGESET_TYPE})
            _raise_for(response, pending.seq)
            journal.remove(pending.seq)
        return len(pending_transactions)

    def pull(self, local: PageStore, journal: Journal) -> int:
        """Make the local copy equal the remote's current version; returns chunks written."""
        info = self.client.info(self.name)
        if not local.exists():
            local.create(chunk_size=info["chunk_size"], retention=info["retention"])
        lhead = local.read_head()
        if lhead.chunk_size != info["chunk_size"]:
            raise Conflict(f"{local.name}: the local copy's chunk size ({lhead.chunk_size}) differs "
                           f"from the remote's ({info['chunk_size']}): drop the local copy and sync again")
        state = journal.state()
        remote_id = f"{self.client.url}/{self.name}@{info['version']}:{info['committed_at']!r}"
        if state["remote_id"] == remote_id and (state.get("local_id"), state["local_version"]) == \
                (lhead.id, lhead.version):
            return 0
        with tempfile.TemporaryFile() as spool:
            size = self.client.export_to(self.name, spool)
            spool.seek(0)
            chunks = _differing(spool, size, local, lhead)
        new = local.commit(lhead, chunks, size) if chunks or lhead.size != size else lhead
        # The export may be newer than ``info``: recording the older version only makes
        # the next sync download again, never skip a change.
        journal.set_state(remote_id=remote_id, remote_version=info["version"], local_id=new.id,
                          local_version=new.version, synced=time.time())
        return len(chunks)

    def _send(self, method: str, path: str, **options) -> httpx.Response:
        try:
            return self.client.http.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise network_error(self.client.url, exc) from exc

    def close(self) -> None:
        self.client.close()


def _differing(spool, size: int, local: PageStore, lhead) -> dict[int, bytes]:
    """The chunks of the exported file that differ from the local copy's."""
    step, chunks = lhead.chunk_size, {}
    for c in range(-(-size // step)):
        data = spool.read(step)
        if c >= lhead.chunk_count or local.chunk_as_of(lhead, c) != data:
            chunks[c] = data
    return chunks


def _raise_for(response: httpx.Response, seq: int) -> None:
    """Raise the error an answer to a push means: ConflictingRows (``.pending`` = ``seq``)
    when it lists conflicts, else the error of its code."""
    error = error_for(response)
    if error is None:
        return
    try:
        conflicts = response.json()["error"].get("conflicts")
    except Exception:  # noqa: BLE001 - not our JSON: the plain error says enough
        conflicts = None
    if isinstance(error, Conflict) and conflicts is not None:
        error = ConflictingRows(str(error), [decode_conflict(c) for c in conflicts])
        error.pending = seq
    raise error
