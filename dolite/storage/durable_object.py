"""``do+http://HOST:PORT`` — real Durable Objects, served by workerd locally or by Cloudflare.

The Worker in ``dolite/cloudflare/worker/src/worker.js`` runs one Durable Object per dolite object name
and applies every call atomically inside it, the compare-and-set of ``commit`` included, so
the check happens where the data lives. This module is a thin client: one storage call is
one HTTP request on a shared keep-alive connection pool (safe to use from many threads; see
:mod:`dolite.storage.http_client`).

URL: ``do+http://HOST:PORT[/PATH][?secret=S&prefix=P&timeout=SECONDS&cache=lmdb:DIR]``
(``do+https://`` for TLS, e.g. a deployed ``*.workers.dev`` Worker). The shared secret may
instead come from the environment variable ``DOLITE_DO_SECRET``. ``prefix`` scopes the
namespace: object ``name`` is the Durable Object named ``P + name``, and ``names()`` lists
only those. ``cache=lmdb:DIR`` (with ``cache_size=``, default 1g) lets the layer above keep
values it knows to be immutable in a local LMDB directory: each object carries it as
``chunk_cache`` (a :class:`LocalCache`, scoped to this namespace and object), else None.

Bodies use the Worker's compact binary framing (see the Worker's header comment): a list
of records, each ``u32 key length, key, u32 value length, value``, big-endian, with value
length ``0xFFFFFFFF`` for "no value". Values travel as raw bytes, never base64.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote, urlsplit

import httpx

from dolite.errors import (
    Conflict,
    Error,
    InvalidName,
    InvalidURL,
    LimitExceeded,
    StorageError,
    Unauthorized,
    error_class,
)
from dolite.storage.base import (
    Limits,
    check_commit,
    check_entries,
    check_keys,
    key_range,
)
from dolite.storage.http_client import HttpFailure, Reply, http_client

DO_LIMITS = Limits(max_key_bytes=2048, max_value_bytes=131_072 - 8, max_keys_per_call=128, prefetch_chunks=32,
                   remote=True)
"""The Worker's limits. A KV-backed Durable Object caps the *serialized* value at 131,072
bytes; V8 serialization adds 6 bytes to a binary value of this size, and 2 more are kept
as margin. The Worker enforces the same numbers before any write."""

MAX_NAME_BYTES = 1024
SECRET_ENV = "DOLITE_DO_SECRET"

_U32 = struct.Struct(">I")
_NONE = 0xFFFFFFFF
_NONE_BYTES = _U32.pack(_NONE)


class AuthError(StorageError):
    """The Worker refused the shared secret (missing or wrong)."""


@dataclass(frozen=True)
class LocalCache:
    """Where the layer above may keep immutable values of one object on local disk
    (``?cache=lmdb:DIR``): an LMDB directory, its size bound, and ``scope``, which names
    the namespace (its URL without options) and the object, so no two objects share entries."""

    directory: str
    max_bytes: int
    scope: str = ""


# -- framing --------------------------------------------------------------------------------


def encode_records(items: Iterable[tuple[str, bytes | None]]) -> bytes:
    """Frame ``(key, value-or-None)`` pairs as one record list. Runs on every storage
    call: values are joined as they are (bytes-like), not copied first."""
    pack = _U32.pack
    parts = [b""]
    count = 0
    for key, value in items:
        raw = key.encode()
        if value is None:
            parts += (pack(len(raw)), raw, _NONE_BYTES)
        else:
            parts += (pack(len(raw)), raw, pack(len(value)), value)
        count += 1
    parts[0] = pack(count)
    return b"".join(parts)


def decode_records(data: bytes) -> dict[str, bytes]:
    """Parse one record list of entries (as the Worker sends for get and list)."""
    view = memoryview(data)
    try:
        (count,) = _U32.unpack_from(view, 0)
        at = 4
        out: dict[str, bytes] = {}
        for _ in range(count):
            (size,) = _U32.unpack_from(view, at)
            key = bytes(view[at + 4 : at + 4 + size]).decode()
            at += 4 + size
            (size,) = _U32.unpack_from(view, at)
            at += 4
            if size == _NONE:
                raise ValueError("entry without a value")
            if at + size > len(view):
                raise ValueError("truncated value")
            out[key] = bytes(view[at : at + size])
            at += size
    except (struct.error, ValueError) as exc:
        raise StorageError(f"malformed response from the Durable Object Worker: {exc}") from exc
    return out


# -- one object -------------------------------------------------------------------------------


class DurableObjectStorage:
    """One Durable Object's storage, reached through the Worker."""

    def __init__(self, namespace: DurableObjectNamespace, name: str):
        self._ns = namespace
        self.name = name
        self.limits = namespace.limits
        self._path = f"/v1/objects/{quote(name, safe='')}/"
        cache = namespace.local_cache
        self.chunk_cache = replace(cache, scope=f"{namespace.base_url}\0{name}") if cache else None

    def get(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = check_keys(keys, self.limits, "get")
        if not keys:
            return {}
        reply = self._ns._request("POST", self._path + "get", encode_records((k, None) for k in keys))
        return decode_records(reply.content)

    def put(self, entries: Mapping[str, bytes]) -> None:
        check_entries(entries, self.limits, "put")
        if entries:
            self._ns._request("POST", self._path + "put", encode_records(entries.items()))

    def delete(self, keys: Iterable[str]) -> int:
        keys = check_keys(keys, self.limits, "delete")
        if not keys:
            return 0
        reply = self._ns._request("POST", self._path + "delete", encode_records((k, None) for k in keys))
        return int(reply.json()["deleted"])

    def list(self, *, start=None, end=None, prefix=None, limit=None, reverse=False) -> dict[str, bytes]:
        lo, hi = key_range(start, end, prefix)
        out: dict[str, bytes] = {}
        if (hi is not None and hi <= lo) or limit == 0:
            return out
        while True:  # the Worker caps a response; follow it page by page
            params = {"reverse": "1"} if reverse else {}
            if lo:
                params["start"] = lo
            if hi is not None:
                params["end"] = hi
            if limit is not None:
                params["limit"] = str(limit - len(out))
            reply = self._ns._request("GET", self._path + "list", params=params)
            page = decode_records(reply.content)
            out.update(page)
            if reply.headers.get("x-dolite-more") != "1" or not page:
                return out
            last = next(reversed(page))
            if reverse:
                hi = last
            else:
                lo = last + "\x00"

    def commit(self, writes: Mapping[str, bytes], deletes: Iterable[str] = (), expect=None) -> None:
        if not isinstance(writes, Mapping):
            raise TypeError("writes must be a mapping of key to bytes")
        deletes, expect = check_commit(writes, deletes, expect, self.limits)
        if not (writes or deletes or expect):
            return
        body = b"".join((
            encode_records(writes.items()),
            encode_records((k, None) for k in deletes),
            encode_records(expect.items()),
        ))
        self._ns._request("POST", self._path + "commit", body)


# -- the namespace ---------------------------------------------------------------------------


class DurableObjectNamespace:
    """All objects of one deployed (or local workerd) dolite Worker."""

    def __init__(
        self, base_url: str, secret: str, *, url: str | None = None, prefix: str = "", timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None, local_cache: LocalCache | None = None,
    ):
        """``transport``: an httpx transport to send through instead of the network (tests
        pass ``httpx.MockTransport``). ``local_cache``: see the module docstring."""
        self.base_url = base_url.rstrip("/")
        self.url = url or base_url
        self.prefix = prefix
        self.local_cache = local_cache
        self.limits = DO_LIMITS
        self._http = http_client(
            self.base_url, {"authorization": f"Bearer {secret}", "content-type": "application/octet-stream"},
            timeout, transport)
        self.observers: list[Callable[[str, str, int, Reply], None]] = []
        """Called with ``(method, path, bytes sent, reply)`` after every answer, errors
        included: for metering (the benchmark counts requests, bytes and billed rows)."""

    def __repr__(self) -> str:
        return f"DurableObjectNamespace({self.base_url!r})"

    def object(self, name: str) -> DurableObjectStorage:
        if not isinstance(name, str) or not name or len((self.prefix + name).encode()) > MAX_NAME_BYTES:
            raise InvalidName(f"Durable Object names are 1 to {MAX_NAME_BYTES} bytes of text, not {name!r:.80}")
        return DurableObjectStorage(self, self.prefix + name)

    def names(self) -> list[str]:
        names: list[str] = []
        after = ""
        while True:
            page = self._request("GET", "/v1/names", params={"prefix": self.prefix, "after": after}).json()
            names.extend(name[len(self.prefix):] for name in page["names"])
            if not page["more"] or not page.get("last"):
                return sorted(names)
            after = page["last"]

    def drop(self, name: str) -> None:
        self._request("POST", self.object(name)._path + "drop", b"")

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, content: bytes | None = None, params=None) -> Reply:
        """Send one request; map the Worker's answers to dolite errors."""
        try:
            reply = self._http.request(method, path, content, params)
        except HttpFailure as exc:
            if exc.timed_out:
                raise StorageError(f"Durable Object storage at {self.base_url}: {method} {path} {exc}") from exc
            raise StorageError(f"Durable Object storage at {self.base_url} is unreachable: {exc}") from exc
        for observe in self.observers:
            observe(method, path, len(content or b""), reply)
        if reply.status < 300:
            return reply
        raise self._error(reply, f"{method} {path}")

    def _error(self, reply: Reply, what: str) -> Error:
        """The dolite error for the Worker's error answer, by its code (see :mod:`dolite.errors`):
        a conflict or a limit as itself, a refused secret as :class:`AuthError`, anything
        else as a :class:`StorageError` (the storage failed us)."""
        code, message = worker_error(reply)
        kind = error_class(code)
        if kind is not None and issubclass(kind, (Conflict, LimitExceeded)):
            return kind(message)
        if kind is Unauthorized:
            return AuthError(f"Durable Object storage at {self.base_url} refused the secret: {message}")
        return StorageError(f"Durable Object storage at {self.base_url}: {what} -> {reply.status} {code}: {message}")


def worker_error(reply: Reply) -> tuple[str, str]:
    """``(code, message)`` of a Worker error answer: ``{"error": {"code", "message"}}`` (the
    service's shape), or the older ``{"error": code, "message"}``. Anything else (a proxy's
    page, a crash) is code ``http_error`` with the body's start as the message."""
    try:
        doc = reply.json()
        error = doc["error"]
        if isinstance(error, dict):
            return str(error["code"]), str(error["message"])
        return str(error), str(doc["message"])
    except (ValueError, KeyError, TypeError):
        return "http_error", reply.text[:500] or reply.reason


def open_url(url: str) -> DurableObjectNamespace:
    """Open ``do+http://HOST:PORT[/PATH][?secret=S&prefix=P&timeout=SECONDS&cache=lmdb:DIR&cache_size=N]``
    or ``do+https://``."""
    parts = urlsplit(url)
    scheme = parts.scheme.removeprefix("do+")
    if scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
        raise InvalidURL(f"{url!r}: expected do+http://HOST:PORT or do+https://HOST")
    from dolite.storage import url_options

    _, options = url_options(url)
    unknown = set(options) - {"secret", "prefix", "timeout", "cache", "cache_size"}
    if unknown:
        raise InvalidURL(f"{url!r}: unknown do option(s) {', '.join(sorted(unknown))}")
    secret = options.get("secret") or os.environ.get(SECRET_ENV)
    if not secret:
        raise InvalidURL(f"{url!r}: no secret: add ?secret=... to the URL or set ${SECRET_ENV}")
    try:
        timeout = float(options.get("timeout", "30"))
    except ValueError:
        raise InvalidURL(f"{url!r}: timeout must be a number of seconds") from None
    base = f"{scheme}://{parts.netloc}{parts.path}"
    return DurableObjectNamespace(base, secret, url=url, prefix=options.get("prefix", ""), timeout=timeout,
                                  local_cache=_local_cache(options))


def _local_cache(options: dict[str, str]) -> LocalCache | None:
    """The ``cache=lmdb:DIR[&cache_size=N]`` option, checked (nothing is created here; the
    URL is not quoted in errors: it may hold the secret)."""
    from dolite.storage.lmdb_space import parse_size

    if "cache" not in options:
        if "cache_size" in options:
            raise InvalidURL("do+http storage option cache_size= needs cache=lmdb:DIR")
        return None
    kind, _, directory = options["cache"].partition(":")
    if kind != "lmdb" or not directory:
        raise InvalidURL(f"do+http storage option cache={options['cache']!r}: expected cache=lmdb:DIR "
                         "(a local directory)")
    return LocalCache(os.path.abspath(directory), parse_size(options.get("cache_size", "1g"), "cache_size"))
