"""The page store: a database file as versioned, checksummed chunks (see store.py)."""

from dolite.pages.file import PagedFile
from dolite.pages.format import Head
from dolite.pages.store import PageStore

__all__ = ["Head", "PageStore", "PagedFile"]
