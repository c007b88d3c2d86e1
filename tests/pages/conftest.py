"""Fixtures of the page-store tests."""

from __future__ import annotations

import pytest

from dolite.storage import open_storage


@pytest.fixture
def opened():
    """``opened(url)``: the database object "db" of ``url``, its namespace closed after the
    test (a namespace holds files, sockets or an LMDB map)."""
    namespaces = []

    def open_object(url: str):
        namespaces.append(open_storage(url))
        return namespaces[-1].object("db")

    yield open_object
    for namespace in namespaces:
        namespace.close()
