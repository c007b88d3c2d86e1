"""Writing output files so that a failure never leaves a partial file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def atomic_output(dest: str | os.PathLike | BinaryIO) -> Iterator[BinaryIO]:
    """A binary file that becomes ``dest`` only if the ``with`` block succeeds (see
    :func:`atomic_path`). A file object passes through unchanged: its owner decides what
    a failure means."""
    if hasattr(dest, "write"):
        yield dest
        return
    with atomic_path(dest) as temp, open(temp, "wb") as out:
        yield out
        out.flush()
        os.fsync(out.fileno())


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[str]:
    """The path of a temporary file that becomes ``dest`` only if the ``with`` block succeeds.

    The temporary file is in ``dest``'s folder (same file system, so the rename is
    atomic); on success it is fsynced and renamed over ``dest``, on any failure removed:
    ``dest`` is then exactly as it was (absent, or its old content).
    """
    path = os.path.abspath(os.fspath(dest))
    folder = os.path.dirname(path)
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".part")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # what a plain open() would have given
        os.close(fd)
        yield temp
        _fsync(temp, folder=False)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync(folder, folder=True)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    return 0o022


def _fsync(path: str, *, folder: bool) -> None:
    """Make a file's bytes, or a folder's entries (a rename), durable. A file system that
    cannot fsync folders is tolerated; a file that cannot be fsynced is an error."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        if not folder:
            raise
