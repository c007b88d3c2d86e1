"""The page store: a database file as versioned, checksummed chunks (see store.py)."""

from __future__ import annotations

from dolite.errors import DatabaseNotFound
from dolite.names import validate_name
from dolite.pages.file import PagedFile
from dolite.pages.format import Head
from dolite.pages.store import PageStore
from dolite.storage import Namespace, open_storage


def open_store(storage: str | Namespace, name: str, *, must_exist: bool = True) -> PageStore:
    """The page store of database ``name`` in ``storage`` (a URL or Namespace), for
    operations outside a connection (export, restore, check, backups). Raises
    DatabaseNotFound if ``must_exist`` and it does not exist."""
    namespace = open_storage(storage)
    store = PageStore(namespace.object(validate_name(name)), name, objects=namespace.object)
    if must_exist and not store.exists():
        raise DatabaseNotFound(f"database {name!r} does not exist")
    return store


__all__ = ["Head", "PageStore", "PagedFile", "open_store"]
