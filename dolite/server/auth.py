"""Bearer tokens with per-database scopes (read < write < admin), compared in constant time.

``--token T`` grants admin on every database. A token file is JSON::

    {"tokens": [
        {"token": "s3cret-admin", "scopes": {"*": "admin"}},
        {"token": "reader", "scopes": {"*": "read", "shop": "write"}}
    ]}

A scope key is a database name or ``*`` (any database); the most specific one applies.
With no token configured at all the service is open (allowed on loopback only).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from dolite.server.objects.errors import RequestError

READ, WRITE, ADMIN = 1, 2, 3
LEVELS = {"read": READ, "write": WRITE, "admin": ADMIN}
_NAMES = {v: k for k, v in LEVELS.items()}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dolite"'}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Grant:
    """What one token may do."""

    digest: bytes
    scopes: dict[str, int]

    def level(self, database: str | None) -> int:
        if database is not None and database in self.scopes:
            return self.scopes[database]
        return self.scopes.get("*", 0)

    def can_list(self, database: str) -> bool:
        return self.level(database) >= READ


OPEN = Grant(b"", {"*": ADMIN})


class Auth:
    """Checks the ``Authorization`` header of every request."""

    def __init__(self, grants: list[Grant]):
        self.grants = grants

    @property
    def enabled(self) -> bool:
        return bool(self.grants)

    @classmethod
    def from_options(cls, token: str | None = None, token_file: str | Path | None = None) -> Auth:
        grants: list[Grant] = []
        if token:
            grants.append(Grant(_digest(token), {"*": ADMIN}))
        if token_file:
            grants += load_token_file(token_file)
        return cls(grants)

    def identify(self, authorization: str | None) -> Grant:
        """The grant of the request's bearer token (401 if missing or unknown)."""
        if not self.grants:
            return OPEN
        if not authorization:
            raise RequestError(401, "unauthorized", "missing bearer token: send 'Authorization: Bearer <token>'",
                               headers=_CHALLENGE)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RequestError(401, "unauthorized", "the Authorization header must be 'Bearer <token>'",
                               headers=_CHALLENGE)
        presented = _digest(token.strip())
        found = None
        for grant in self.grants:  # no early exit: the time taken does not depend on which matched
            if hmac.compare_digest(presented, grant.digest):
                found = grant
        if found is None:
            raise RequestError(401, "unauthorized", "invalid token", headers=_CHALLENGE)
        return found

    @staticmethod
    def require(grant: Grant, database: str | None, level: int) -> int:
        """Raise 403 unless ``grant`` has ``level`` on ``database``; return its level."""
        have = grant.level(database)
        if have < level:
            what = f"database {database!r}" if database else "this server"
            raise RequestError(403, "forbidden", f"this token needs {_NAMES[level]} access to {what}")
        return have


def load_token_file(path: str | Path) -> list[Grant]:
    """Parse a token file (see the module docstring); ValueError on any mistake."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"token file {path}: {exc}") from None
    entries = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f'token file {path}: expected {{"tokens": [{{"token": ..., "scopes": {{...}}}}]}}')
    grants = []
    for i, entry in enumerate(entries):
        token = entry.get("token") if isinstance(entry, dict) else None
        scopes = entry.get("scopes", {"*": "admin"}) if isinstance(entry, dict) else None
        if not isinstance(token, str) or len(token) < 8:
            raise ValueError(f"token file {path}: tokens[{i}].token must be a string of 8+ characters")
        if not isinstance(scopes, dict) or not all(v in LEVELS for v in scopes.values()):
            raise ValueError(f"token file {path}: tokens[{i}].scopes maps names or '*' to read/write/admin")
        grants.append(Grant(_digest(token), {k: LEVELS[v] for k, v in scopes.items()}))
    return grants
