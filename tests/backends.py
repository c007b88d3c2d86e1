"""The storage backends every contract and SQL test runs on.

``memory`` and ``lmdb`` need nothing; ``do`` (a real workerd process) is added when the
Durable Object backend is available. Set ``DOLITE_BACKENDS=memory,lmdb`` to narrow a run.
"""

from __future__ import annotations

import os
import uuid


def _memory(request, tmp_path) -> str:
    return f"memory:{uuid.uuid4().hex}"


def _lmdb(request, tmp_path) -> str:
    return f"lmdb:{tmp_path}/lmdb"


BACKENDS = {"memory": _memory, "lmdb": _lmdb}

if os.environ.get("DOLITE_BACKENDS"):
    BACKENDS = {k: v for k, v in BACKENDS.items() if k in os.environ["DOLITE_BACKENDS"].split(",")}


def backend_url(request, name: str, tmp_path) -> str:
    return BACKENDS[name](request, tmp_path)
