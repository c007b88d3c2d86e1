"""Running out of room in an LMDB store: telling the user so, and a way out.

LMDB reports a full map as ``MapFullError`` and a file system out of space as a short write
(EIO), so a failed write on a nearly full file system is taken for ENOSPC. Deletes copy
pages too, so on a full file system even a drop can fail: the store's directory keeps a
small ballast file that a drop gives up to make room.
"""

from __future__ import annotations

import os

import lmdb

from dolite.errors import InvalidURL, StorageFull

NEARLY_FULL_BYTES = 1 << 20  # free space below which a failed write means "disk full"
BALLAST = "reserve.dolite"  # a file of allocated bytes, given up so that a drop can run
BALLAST_BYTES = 1 << 20
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


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


def disk_nearly_full(path: str) -> bool:
    try:
        fs = os.statvfs(path)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < NEARLY_FULL_BYTES


class Ballast:
    """``BALLAST_BYTES`` of disk reserved in a file of the store's directory."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, BALLAST)

    def ensure(self) -> None:
        """Reserve the room (best effort: skipped when there is none)."""
        if os.path.exists(self.path):
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, BALLAST_BYTES)
        except OSError:
            os.unlink(self.path)
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Give the room up; False if there was none to give."""
        try:
            os.unlink(self.path)
            return True
        except OSError:
            return False


def parse_size(value: str, name: str) -> int:
    """``65536``, ``64k``, ``16m``, ``2g``: a positive number of bytes (binary units)."""
    text = value.strip().lower().removesuffix("b").removesuffix("i")
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "")
    if not number.isdigit() or int(number) <= 0:
        raise InvalidURL(f"option {name}={value!r} is not a size (e.g. 65536, 64k, 16m, 2g)")
    return int(number) * _UNITS[unit]
