"""The ``file:///DIR`` backup target: one file per object under a folder (local, or a
network file system mounted there).

A put writes a temporary file beside the final one, fsyncs it and renames it over the
final name (then fsyncs the folder): a reader never sees a partial object, and a crash
leaves at most a ``.*.part`` file that the next put of that key replaces.
"""

from __future__ import annotations

import os

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
