"""Shared fixtures: every storage backend the suite knows, by URL factory."""

from __future__ import annotations

import os

import pytest

from dolite.storage import open_storage

# name -> function(tmp_path) -> URL. Backends that need a server add themselves here
# from their own fixtures module (see tests/backends.py).
from tests.backends import BACKENDS, backend_url


@pytest.fixture(params=sorted(BACKENDS))
def storage_url(request, tmp_path):
    """A fresh, empty namespace URL for each backend in turn. A file backend's namespace
    is shared by the process until closed: closed after the test, or the suite runs out
    of address space (each LMDB map reserves 1 TiB of it) and file descriptors."""
    url = backend_url(request, request.param, tmp_path)
    yield url
    if url.startswith(("lmdb:", "sqlite:")):
        open_storage(url).close()


@pytest.fixture
def namespace(storage_url):
    ns = open_storage(storage_url)
    yield ns


@pytest.fixture
def store(namespace, request):
    """A fresh object in each backend."""
    return namespace.object(f"t-{os.getpid()}-{request.node.name[:40]}".replace("[", "-").replace("]", ""))
