"""Writing output files so that a failure never leaves a partial file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def atomic_output(dest: str | os.PathLike | BinaryIO) -> Iterator[BinaryIO]:
    """A binary file that becomes ``dest`` only if the ``with`` block succeeds.

    The bytes go to a temporary file in ``dest``'s folder (same file system, so the
    rename is atomic), which is fsynced and renamed over ``dest`` on success, and removed
    on any failure: ``dest`` is then exactly as it was (absent, or its old content).
    A file object passes through unchanged: its owner decides what a failure means.
    """
    if hasattr(dest, "write"):
        yield dest
        return
    path = os.path.abspath(os.fspath(dest))
    folder = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".part")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # what a plain open() would have given
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_folder(folder)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    return 0o022


def _fsync_folder(folder: str) -> None:
    """Make the rename durable (POSIX: a directory entry is durable once its folder is)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
