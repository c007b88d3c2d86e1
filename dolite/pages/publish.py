"""Create a database whose first version is written whole before it becomes visible: never
half written, never empty under its name (restores, forks, copies).

A database exists when it has a head. Creating an empty head and then committing the
content shows an empty database in between, and a process killed there leaves it under the
name. Here the head is the last write: under the new database's write lease (so two
writers into one name cannot mix their chunks) the commit record of version 1 is written
first, then the chunks in batches, then the head, in one compare-and-set that requires
that no head exists yet. A writer killed before the head leaves no database, only keys its
commit record names: the next publish into that name (or the next writer of a database
created under it) deletes them first, like any uncommitted version's leftovers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from dolite.errors import AlreadyExists, Conflict, StorageError
from dolite.pages.format import HEAD, LEASE, Head, new_incarnation
from dolite.pages.gc import Fenced, remove_uncommitted
from dolite.pages.lease import LeaseKeeper
from dolite.pages.log import record_writes
from dolite.storage.base import Storage

LEASE_SECONDS = 30.0
logger = logging.getLogger("dolite.pages")


def publish(storage: Storage, name: str, chunks: Iterable[tuple[int, bytes]], *, size: int,
            chunk_size: int, retention: float) -> Head:
    """Store ``chunks`` (index, bytes; every chunk of a ``size``-byte file, in order) as
    the first version of the new database ``name``. Raises AlreadyExists if it exists,
    LeaseHeld if another writer holds its lease."""
    if HEAD in storage.get([HEAD]):  # before the lease: a served database holds it
        raise AlreadyExists(f"database {name!r} already exists")
    keeper = LeaseKeeper(storage, name, LEASE_SECONDS)
    keeper.acquire()
    try:
        if HEAD in storage.get([HEAD]):
            raise AlreadyExists(f"database {name!r} already exists")
        fenced = Fenced(storage, name, keeper.raw)
        remove_uncommitted(fenced, Head(version=0, size=0, chunk_size=chunk_size, retention=retention,
                                        time=0.0, id=0))  # a killed publish's leftovers
        head = Head(version=1, size=size, chunk_size=chunk_size, retention=retention,
                    time=time.time(), id=new_incarnation())
        fence = {LEASE: keeper.raw}
        storage.commit(record_writes(head, list(range(head.chunk_count)), 0, storage.limits), expect=fence)
        fenced.write_chunks(head.version, chunks)
        try:
            storage.commit({HEAD: head.encode()}, expect={HEAD: None, **fence})
        except Conflict as exc:
            raise AlreadyExists(f"database {name!r} was created by someone else meanwhile") from exc
    except BaseException:
        keeper.release()
        raise
    try:
        keeper.release()
    except StorageError as exc:  # published: a lease not given back just expires
        logger.warning("%s: published, but its write lease was not given back: %s", name, exc)
    return head
