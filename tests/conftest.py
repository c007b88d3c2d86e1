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
    """A fresh, empty namespace URL for each backend in turn."""
    return backend_url(request, request.param, tmp_path)


@pytest.fixture
def namespace(storage_url):
    ns = open_storage(storage_url)
    yield ns


@pytest.fixture
def store(namespace, request):
    """A fresh object in each backend."""
    return namespace.object(f"t-{os.getpid()}-{request.node.name[:40]}".replace("[", "-").replace("]", ""))
