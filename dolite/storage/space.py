"""Room on disk for the embedded stores: a full file system told apart, a ballast file
that a drop gives up so that it can run (deletes need room too: copy-on-write pages in
LMDB, WAL frames in SQLite), and sizes as URL options."""

from __future__ import annotations

import os
from collections.abc import Callable

from dolite.errors import InvalidURL, StorageFull

NEARLY_FULL_BYTES = 1 << 20  # free space below which a failed write means "disk full"
BALLAST = "reserve.dolite"  # a file of allocated bytes, given up so that a drop can run
BALLAST_BYTES = 1 << 20
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def disk_nearly_full(path: str) -> bool:
    try:
        fs = os.statvfs(path)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < NEARLY_FULL_BYTES


class Ballast:
    """``size`` bytes of disk reserved in a file of the store's directory."""

    def __init__(self, directory: str, size: int = BALLAST_BYTES):
        self.path = os.path.join(directory, BALLAST)
        self.size = size

    def ensure(self) -> None:
        """Reserve the room (best effort: skipped when there is none)."""
        if os.path.exists(self.path):
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, self.size)
        except OSError:
            os.unlink(self.path)
        finally:
            os.close(fd)

    def retry_with_room(self, write: Callable[[], None]) -> None:
        """Run ``write``; if the store is full, give the room up and run it once more."""
        try:
            write()
        except StorageFull:
            if not self.release():
                raise
            write()

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
