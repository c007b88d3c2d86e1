"""The storage contract: a Durable-Object-style transactional key-value store.

A :class:`Namespace` holds many named objects (one per database); each object's
:class:`Storage` is a small, strongly consistent key-value API modeled on the Durable
Object storage API. Everything above (page store, VFS, service) is written once against
these two protocols; a backend only implements the primitives.

Keys are ``str`` (limits count their UTF-8 bytes), values are ``bytes``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from dolite.errors import LimitExceeded


@dataclass(frozen=True)
class Limits:
    """Hard limits of a backend (the defaults are the Durable Object KV limits), and how it
    is best read."""

    max_key_bytes: int = 2048
    max_value_bytes: int = 131_072
    max_keys_per_call: int = 128
    # Where every call is a network round trip, a cold chunk read also fetches this many
    # following chunks in the same call (the reads that usually come next). 0: no prefetch.
    prefetch_chunks: int = 0
    # Every call is a network round trip: the page store keeps work a commit does not need
    # (garbage collection) off the committing thread.
    remote: bool = False


DURABLE_OBJECT_LIMITS = Limits()


@runtime_checkable
class Storage(Protocol):
    """One object's key-value storage. Every call is atomic on its own."""

    limits: Limits

    def get(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Return the values of those ``keys`` that exist (absent keys are left out)."""

    def put(self, entries: Mapping[str, bytes]) -> None:
        """Write all ``entries`` in one atomic batch."""

    def delete(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` in one atomic batch; return how many existed."""

    def list(
        self,
        *,
        start: str | None = None,
        end: str | None = None,
        prefix: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> dict[str, bytes]:
        """Return entries with ``start <= key < end`` and the ``prefix``, in key order
        (descending if ``reverse``), at most ``limit`` of them."""

    def commit(
        self,
        writes: Mapping[str, bytes],
        deletes: Iterable[str] = (),
        expect: Mapping[str, bytes | None] | None = None,
    ) -> None:
        """Apply ``writes`` and ``deletes`` as one atomic batch, only if every key in
        ``expect`` currently holds the given value (``None``: the key is absent).
        Raise :class:`~dolite.errors.Conflict` and change nothing otherwise."""


@runtime_checkable
class Namespace(Protocol):
    """A set of named objects, like a Durable Object namespace. Opened from a URL."""

    url: str
    limits: Limits

    def object(self, name: str) -> Storage:
        """The storage of object ``name`` (created empty on first write)."""

    def names(self) -> list[str]:
        """Names of the objects that hold at least one key, sorted."""

    def drop(self, name: str) -> None:
        """Delete every key of object ``name``."""

    def close(self) -> None:
        """Release the backend's resources. Objects must not be used afterwards."""


# -- checks every backend applies before touching anything -------------------------


def check_key(key: str, limits: Limits) -> None:
    if not isinstance(key, str):
        raise TypeError(f"storage keys are str, not {type(key).__name__}")
    size = len(key.encode())
    if size == 0:
        raise LimitExceeded("storage key is empty")
    if size > limits.max_key_bytes:
        raise LimitExceeded(f"storage key of {size} bytes exceeds the limit of {limits.max_key_bytes}")


def check_value(key: str, value: bytes, limits: Limits) -> None:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"value of {key!r} is {type(value).__name__}, not bytes")
    if len(value) > limits.max_value_bytes:
        raise LimitExceeded(
            f"value of {key!r} is {len(value)} bytes, over the limit of {limits.max_value_bytes}"
        )


def check_count(count: int, limits: Limits, what: str) -> None:
    if count > limits.max_keys_per_call:
        raise LimitExceeded(f"{what} names {count} keys, over the limit of {limits.max_keys_per_call} a call")


def check_keys(keys: Iterable[str], limits: Limits, what: str) -> list[str]:
    keys = list(keys)
    check_count(len(keys), limits, what)
    for key in keys:
        check_key(key, limits)
    return keys


def check_entries(entries: Mapping[str, bytes], limits: Limits, what: str) -> None:
    check_count(len(entries), limits, what)
    for key, value in entries.items():
        check_key(key, limits)
        check_value(key, value, limits)


def check_commit(
    writes: Mapping[str, bytes],
    deletes: Iterable[str],
    expect: Mapping[str, bytes | None] | None,
    limits: Limits,
) -> tuple[list[str], dict[str, bytes | None]]:
    """Validate a commit batch; return ``deletes`` and ``expect`` as concrete containers."""
    deletes = list(deletes)
    expect = dict(expect or {})
    check_count(len(writes) + len(deletes), limits, "commit")
    check_count(len(expect), limits, "commit expect")
    for key, value in writes.items():
        check_key(key, limits)
        check_value(key, value, limits)
    for key in deletes:
        check_key(key, limits)
    for key, value in expect.items():
        check_key(key, limits)
        if value is not None:
            check_value(key, value, limits)
    return deletes, expect


def key_range(start: str | None, end: str | None, prefix: str | None) -> tuple[str, str | None]:
    """Fold ``prefix`` into an inclusive start and exclusive end (``None``: unbounded)."""
    lo = start or ""
    hi = end
    if prefix:
        lo = max(lo, prefix)
        prefix_end = prefix_successor(prefix)
        hi = prefix_end if hi is None else min(hi, prefix_end)
    return lo, hi


def prefix_successor(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
