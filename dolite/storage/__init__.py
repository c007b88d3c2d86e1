"""Storage backends behind one contract, opened by URL.

========================  ==========================================================
``memory:``               private in-process store (``memory:NAME`` is shared by name)
``sqlite:PATH``           embedded: one SQLite WAL file per object in directory PATH
``lmdb:PATH``             embedded LMDB environment in directory PATH
``do+http://HOST:PORT``   Durable Objects served by workerd (``do+https://`` Cloudflare)
========================  ==========================================================
"""

from __future__ import annotations

import importlib
import threading
from urllib.parse import parse_qs

from dolite.errors import InvalidURL
from dolite.storage.base import DURABLE_OBJECT_LIMITS, Limits, Namespace, Storage

__all__ = ["DEFAULT_STORAGE", "DURABLE_OBJECT_LIMITS", "Limits", "Namespace", "Storage", "open_storage", "SCHEMES"]

DEFAULT_STORAGE = "sqlite:./.dolite"  # the embedded default, for connect(), the CLI and `dolite serve`

# scheme -> "module:function" taking (url) and returning a Namespace.
SCHEMES = {
    "memory": "dolite.storage.memory:open_url",
    "sqlite": "dolite.storage.sqlite_wal:open_url",
    "lmdb": "dolite.storage.lmdb:open_url",
    "do+http": "dolite.storage.durable_object:open_url",
    "do+https": "dolite.storage.durable_object:open_url",
}

_shared_lock = threading.Lock()
_shared: dict[str, tuple[Namespace, dict]] = {}  # key -> (namespace, the options it was opened with)


def open_storage(url: str | Namespace) -> Namespace:
    """Open the backend named by ``url`` (a Namespace passes through unchanged).

    Raises :class:`~dolite.errors.InvalidURL` for an unknown scheme or malformed URL.
    """
    if not isinstance(url, str):
        if isinstance(url, Namespace):
            return url
        raise InvalidURL(f"storage must be a URL string or a Namespace, not {type(url).__name__}")
    scheme, sep, _ = url.partition(":")
    if not sep or scheme not in SCHEMES:
        known = ", ".join(f"{s}:" for s in SCHEMES)
        raise InvalidURL(f"unknown storage URL {url!r}: expected one of {known}")
    module_name, func = SCHEMES[scheme].split(":")
    opener = getattr(importlib.import_module(module_name), func)
    return opener(url)


def shared(url: str, factory, options: dict | None = None) -> Namespace:
    """Return the process-wide namespace for ``url`` (a backend's key for one store),
    creating it with ``factory()``. ``options``: what it is opened with; asking again with
    other options is refused (InvalidURL), never silently given the first ones."""
    options = options or {}
    with _shared_lock:
        if url not in _shared:
            _shared[url] = (factory(), options)
        namespace, opened_with = _shared[url]
        if opened_with != options:
            raise InvalidURL(f"{url} is already open in this process with {_shown(opened_with)}, "
                             f"not {_shown(options)}: open it with the same options, or close it first")
        return namespace


def _shown(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "the defaults"


def forget_shared(url: str) -> None:
    with _shared_lock:
        _shared.pop(url, None)


def url_options(url: str) -> tuple[str, dict[str, str]]:
    """Split ``scheme:rest?k=v`` into ``rest`` and its query options."""
    rest = url.partition(":")[2]
    path, _, query = rest.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    return path, options


def parse_bool(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "on", "yes"):
        return True
    if lowered in ("0", "false", "off", "no"):
        return False
    raise InvalidURL(f"option {name}={value!r} is not a boolean")


