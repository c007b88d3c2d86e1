"""Running out of room in an LMDB store: telling the user so, and a way out.

LMDB reports a full map as ``MapFullError`` and a file system out of space as a short write
(EIO), so a failed write on a nearly full file system is taken for ENOSPC. Deletes copy
pages too, so on a full file system even a drop can fail: the store's directory keeps a
small ballast file that a drop gives up to make room.
"""

from __future__ import annotations

import lmdb

from dolite.errors import StorageFull
from dolite.storage.space import Ballast, disk_nearly_full, parse_size

__all__ = ["Ballast", "full_error", "parse_size"]


def full_error(exc: lmdb.Error, path: str, map_size: int) -> StorageFull | None:
    """StorageFull if ``exc`` means the store is out of room, else None."""
    if isinstance(exc, lmdb.MapFullError):
        why = f"LMDB map full at map_size={map_size} bytes"
        room = "open the store with a larger ?map_size="
    elif disk_nearly_full(path):
        why = f"ENOSPC: no space left on the file system of {path}; LMDB said {exc}"
        room = "free disk space"
    else:
        return None
    return StorageFull(f"storage is full ({why}): nothing was written and reads keep working. "
                       f"Free space with `dolite gc` or delete databases (`dolite rm`), or "
                       f"{room} (see docs/OPERATIONS.md)")
