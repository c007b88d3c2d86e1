"""Write a verified SQLite file into the store as a new database that becomes visible
all at once: never half written, never empty, under its name (a restore's last step).

A database exists when it has a head (``PageStore.exists``). The usual way to make one,
create (an empty head) and then commit the content, shows an empty database in between:
a restore killed there would leave it under the target name. Here the head is the last
write. Under the new database's write lease (so two restores into one name cannot mix
their chunks), the commit record of version 1 is written first, then the chunks in
batches, then the head, in one compare-and-set that requires that no head exists yet.

A restore killed before the head leaves no database, only keys that the commit record
names: the next restore into that name (or the next writer of a database created under
it) deletes them first, as the page store deletes any uncommitted version's leftovers.
"""

from __future__ import annotations

import os
import time
from itertools import islice

from dolite.backup.errors import RestoreRefused
from dolite.errors import Conflict
from dolite.pages import Head
from dolite.pages.format import HEAD, LEASE, chunk_key, encode_chunk, new_incarnation
from dolite.pages.gc import Fenced, remove_uncommitted
from dolite.pages.lease import LeaseKeeper
from dolite.pages.log import record_writes
from dolite.pages.store import DEFAULT_RETENTION
from dolite.storage import Namespace

LEASE_SECONDS = 30.0


def publish_file(namespace: Namespace, name: str, path: str, chunk_size: int) -> Head:
    """Store the file at ``path`` as the new database ``name`` (version 1); see the module
    doc. Raises RestoreRefused if ``name`` exists or another writer holds its lease."""
    storage = namespace.object(name)
    keeper = LeaseKeeper(storage, name, LEASE_SECONDS)
    try:
        keeper.acquire()
    except Conflict as exc:  # LeaseHeld is a Conflict
        raise RestoreRefused(f"database {name!r} is being written by someone else: {exc}") from exc
    try:
        if HEAD in storage.get([HEAD]):
            raise RestoreRefused(f"database {name!r} already exists: restore into a new name")
        fenced = Fenced(storage, name, keeper.raw)
        empty = Head(version=0, size=0, chunk_size=chunk_size, retention=DEFAULT_RETENTION, time=0.0, id=0)
        remove_uncommitted(fenced, empty)  # an interrupted restore's leftovers
        size = os.path.getsize(path)
        head = Head(version=1, size=size, chunk_size=chunk_size, retention=DEFAULT_RETENTION,
                    time=time.time(), id=new_incarnation())
        fence = {LEASE: keeper.raw}
        storage.commit(record_writes(head, list(range(head.chunk_count)), 0, storage.limits), expect=fence)
        _write_chunks(storage, path, head, fence)
        try:
            storage.commit({HEAD: head.encode()}, expect={HEAD: None, **fence})
        except Conflict as exc:
            raise RestoreRefused(f"database {name!r} was created by someone else during the restore") from exc
        return head
    finally:
        keeper.release()


def _write_chunks(storage, path: str, head: Head, fence: dict) -> None:
    per_call = max(1, storage.limits.max_keys_per_call)
    with open(path, "rb") as src:
        values = ((chunk_key(c, head.version), encode_chunk(c, head.version, src.read(head.chunk_size)))
                  for c in range(head.chunk_count))
        while batch := dict(islice(values, per_call)):
            storage.commit(batch, expect=fence)
