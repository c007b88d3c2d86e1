"""The storage backends every contract and SQL test runs on.

``memory``, ``lmdb`` and ``sqlite`` need nothing; ``do`` runs real Durable Objects in one workerd
process per test session (started on first use, stopped at exit), each test in its own
object-name prefix. Set ``DOLITE_BACKENDS=memory,sqlite`` to narrow a run.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import uuid


def _memory(request, tmp_path) -> str:
    return f"memory:{uuid.uuid4().hex}"


def _lmdb(request, tmp_path) -> str:
    return f"lmdb:{tmp_path}/lmdb"


def _sqlite(request, tmp_path) -> str:
    return f"sqlite:{tmp_path}/sqlite"


_workerd = None
_workerd_lock = threading.Lock()


def session_workerd():
    """The session's workerd (started lazily, stopped and its data removed at exit)."""
    global _workerd
    with _workerd_lock:
        if _workerd is None or not _workerd.alive():
            from dolite.cloudflare.dev import start_workerd

            data = tempfile.mkdtemp(prefix="dolite-workerd-")
            _workerd = start_workerd(port=0, data_dir=data, secret=uuid.uuid4().hex)
            atexit.register(_workerd.stop)
            atexit.register(shutil.rmtree, data, True)
        return _workerd


def _do(request, tmp_path) -> str:
    return f"{session_workerd().storage_url}&prefix={uuid.uuid4().hex[:12]}/"


BACKENDS = {"memory": _memory, "lmdb": _lmdb, "sqlite": _sqlite, "do": _do}

if os.environ.get("DOLITE_BACKENDS"):
    BACKENDS = {k: v for k, v in BACKENDS.items() if k in os.environ["DOLITE_BACKENDS"].split(",")}


def backend_url(request, name: str, tmp_path) -> str:
    return BACKENDS[name](request, tmp_path)
