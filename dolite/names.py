"""Database names: what the storage layer and URLs accept."""

from __future__ import annotations

import re

from dolite.errors import InvalidName

MAX_NAME = 128
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid database name, else raise InvalidName."""
    if not isinstance(name, str) or not name:
        raise InvalidName("database name must be a non-empty string")
    if len(name) > MAX_NAME:
        raise InvalidName(f"database name is {len(name)} characters, over the limit of {MAX_NAME}")
    if not _NAME.fullmatch(name) or ".." in name:
        raise InvalidName(
            f"invalid database name {name!r}: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit, without '..'"
        )
    return name
