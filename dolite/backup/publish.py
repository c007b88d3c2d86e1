"""A restore's last step: the verified SQLite file becomes the new database all at once,
never half written, never empty under its name (see :mod:`dolite.pages.publish`)."""

from __future__ import annotations

import os

from dolite.backup.errors import RestoreRefused
from dolite.errors import AlreadyExists, Conflict
from dolite.pages import Head
from dolite.pages.publish import publish
from dolite.pages.store import DEFAULT_RETENTION
from dolite.storage import Namespace


def publish_file(namespace: Namespace, name: str, path: str, chunk_size: int) -> Head:
    """Store the file at ``path`` as the new database ``name`` (version 1). Raises
    RestoreRefused if ``name`` exists or another writer holds its lease."""
    size = os.path.getsize(path)
    with open(path, "rb") as src:
        chunks = ((c, src.read(chunk_size)) for c in range(-(-size // chunk_size)))
        try:
            return publish(namespace.object(name), name, chunks, size=size, chunk_size=chunk_size,
                           retention=DEFAULT_RETENTION)
        except AlreadyExists as exc:
            raise RestoreRefused(f"{exc}: restore into a new name") from exc
        except Conflict as exc:  # LeaseHeld is a Conflict
            raise RestoreRefused(f"database {name!r} is being written by someone else: {exc}") from exc
