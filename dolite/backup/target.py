"""Backup targets: where backups are stored, behind one small interface.

A target is a flat store of immutable objects named by ``/``-separated keys, plus one
mutable object per database (its backup lock, changed only by conditional writes). Each
target implements only these primitives; pushing, listing, restoring and locking are
written once over them (push.py, restore.py, lock.py), so every target behaves the same
way and one test suite runs them all.

=================================================  ==========================================
``file:///DIR``                                     a local or network folder
``s3://BUCKET/PREFIX?endpoint_url=URL&region=R``    any S3-compatible store (AWS S3, R2, MinIO)
=================================================  ==========================================
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

from dolite.errors import InvalidURL


class BackupTarget(Protocol):
    """Immutable objects under keys. Keys are relative to the target's URL; methods raise
    TargetUnavailable when the target cannot be reached and never return partial data."""

    url: str
    """The target's URL without credentials: safe to print and to name a GC hold after."""

    def put_object(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: a reader sees the whole object or none,
        never a prefix of it, even if the writer dies half way. Overwriting is allowed
        (objects under one key are always identical: content-addressed or deterministic)."""

    def get_object(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no object under ``key``."""

    def exists(self, key: str) -> bool:
        """True if an object is stored under ``key``."""

    def list(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``, sorted (all pages of a paged listing)."""

    def delete(self, keys: list[str]) -> None:
        """Remove the objects under ``keys`` (absent ones are no error). Only pruning
        deletes (prune.py): every other writer only adds objects."""

    # Conditional writes, for the one mutable object per database: its backup lock
    # (lock.py). A *tag* names one stored state of an object; it changes whenever the
    # bytes do (an S3 ETag; a digest of the bytes in a folder).

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        """Store ``data`` under ``key`` only if no object is stored there, atomically: of
        concurrent callers at most one succeeds. The new object's tag, or None if an object
        was already there (then nothing was written)."""

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and its tag, or None if there is no object under ``key``."""

    def replace_if(self, key: str, data: bytes, tag: str) -> str | None:
        """Replace the object under ``key`` with ``data`` only if its tag is still ``tag``,
        atomically (a compare-and-swap). The new tag, or None if the object changed or is
        gone (then nothing was written)."""


def open_target(url: str) -> BackupTarget:
    """The target a URL names. Raises InvalidURL for an unknown scheme or option."""
    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or options:
            raise InvalidURL(f"backup target {redact(url)!r}: expected file:///ABSOLUTE/DIR with no options")
        from dolite.backup.file import FileTarget

        return FileTarget(parts.path)
    if parts.scheme == "s3":
        if not parts.hostname:
            raise InvalidURL(f"backup target {redact(url)!r}: expected s3://BUCKET/PREFIX")
        from dolite.backup.s3 import S3Target

        return S3Target(parts.hostname, parts.path.strip("/"), options)
    raise InvalidURL(f"unknown backup target {redact(url)!r}: expected file:///DIR or s3://BUCKET/PREFIX")


def redact(url: str) -> str:
    """``url`` without user information or query options (they may hold secrets)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
