"""The ``file:///DIR`` backup target: one file per object under a folder (local, or a
network file system mounted there).

A put writes a temporary file beside the final one, fsyncs it and renames it over the
final name (then fsyncs the folder): a reader never sees a partial object, and a crash
leaves at most a ``.*.part`` file that the next put of that key replaces.

Conditional writes (the backup lock): ``put_if_absent`` hard-links the complete temporary
file to the final name, which fails if the name exists (atomic, like ``O_EXCL``, on local
and NFS file systems); ``replace_if`` compares and renames while holding an exclusive
``flock`` on a hidden ``.<name>.cas`` file beside the object (released by the kernel if
the process dies), so two replacements never interleave. A tag is the SHA-256 of the
bytes. The file system must support ``flock`` between its clients (local file systems
and NFSv4 do).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator

from dolite.backup.errors import TargetUnavailable
from dolite.errors import InvalidURL
from dolite.ops.files import atomic_path


class FileTarget:
    """Objects as files under ``root``; a key's ``/`` separates folders."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root

    def _path(self, key: str) -> str:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise InvalidURL(f"bad backup object key {key!r}")
        return os.path.join(self.root, *parts)

    def put_object(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._check_root()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with atomic_path(path) as temp, open(temp, "wb") as out:
                out.write(data)
        except OSError as exc:
            raise TargetUnavailable(f"{self.url}: cannot write {key}: {exc}") from exc

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        path = self._path(key)
        self._check_root()
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
            temp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.part")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
            try:
                with open(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.link(temp, path)  # fails if the name exists: the whole test-and-set
            except FileExistsError:
                return None
            finally:
                os.unlink(temp)
            _fsync_folder(folder)
        except OSError as exc:
            raise TargetUnavailable(f"{self.url}: cannot write {key}: {exc}") from exc
        return _tag(data)

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        data = self.get_object(key)
        return None if data is None else (data, _tag(data))

    def replace_if(self, key: str, data: bytes, tag: str) -> str | None:
        path = self._path(key)
        self._check_root()
        if not os.path.isfile(path):
            return None  # (and no .cas file in a folder that may not exist)
        try:
            with _exclusive(path):
                current = self.get_object(key)
                if current is None or _tag(current) != tag:
                    return None
                with atomic_path(path) as temp, open(temp, "wb") as out:
                    out.write(data)
        except OSError as exc:
            raise TargetUnavailable(f"{self.url}: cannot write {key}: {exc}") from exc
        return _tag(data)

    def get_object(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TargetUnavailable(f"{self.url}: cannot read {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def delete(self, keys: list[str]) -> None:
        self._check_root()
        for key in keys:
            try:
                os.unlink(self._path(key))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise TargetUnavailable(f"{self.url}: cannot delete {key}: {exc}") from exc

    def list(self, prefix: str) -> list[str]:
        self._check_root()
        folder = prefix.rpartition("/")[0]
        base = os.path.join(self.root, *folder.split("/")) if folder else self.root
        keys = []
        try:
            for here, dirs, files in os.walk(base):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                rel = os.path.relpath(here, self.root).replace(os.sep, "/")
                for name in files:
                    key = name if rel == "." else f"{rel}/{name}"
                    if not name.startswith(".") and key.startswith(prefix):
                        keys.append(key)
        except OSError as exc:
            raise TargetUnavailable(f"{self.url}: cannot list {prefix}: {exc}") from exc
        return sorted(keys)

    def _check_root(self) -> None:
        """The folder must exist: a missing one is more likely an unmounted network file
        system or a typo than a wish to create it."""
        if not os.path.isdir(self.root):
            raise TargetUnavailable(f"{self.url}: no such folder (create it first)")


def _tag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _exclusive(path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the hidden ``.<name>.cas`` file beside ``path``
    (other open file descriptions, in this process or another, wait for it)."""
    folder, name = os.path.split(path)
    with open(os.path.join(folder, f".{name}.cas"), "ab") as guard:
        fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _fsync_folder(folder: str) -> None:
    """Make a new name in ``folder`` durable (a file system that cannot is tolerated)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
