"""The connection pragmas of the HTTP DB-API driver (:mod:`dolite.remote.httpdbapi`).

The server keeps a connection setting (``recursive_triggers``, ``defer_foreign_keys``) for
one request or one session only, and puts it back when that ends (it must not reach
another token's requests). sqlite3 keeps them on the connection, so
:class:`ConnectionPragmas` remembers what the user set and gives the statements that set
it again at the start of each transaction the driver opens on the server (an autocommit
request, made a batch, or a new session). As in SQLite:

- ``recursive_triggers`` holds for the connection's life, until set again;
- ``defer_foreign_keys`` holds until the next transaction ends (SQLite turns it off at
  each COMMIT and ROLLBACK). Here any autocommit request ends one, even one that reads no
  table (``SELECT 1``), where SQLite keeps the setting: the only difference.

``read_uncommitted`` has no effect on the server (no shared cache) and is answered here.
"""

from __future__ import annotations

import re

from dolite.remote.api import Result
from dolite.sql.pep249 import OperationalError

_LEAD = r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*"
_END = r"\s*;?\s*\Z"
_SET = re.compile(_LEAD + r"PRAGMA\s+(?:main\.)?(\w+)\s*(?:=\s*|\(\s*)([\w'\"+-]+)\s*\)?" + _END, re.I | re.S)
_READ = re.compile(_LEAD + r"PRAGMA\s+(?:main\.)?(\w+)" + _END, re.I | re.S)
_WORDS = {"on": 1, "true": 1, "yes": 1, "off": 0, "false": 0, "no": 0}
CONNECTION_LIFE = frozenset({"recursive_triggers"})
ONE_TRANSACTION = frozenset({"defer_foreign_keys"})
LOCAL = frozenset({"read_uncommitted"})
NOTHING = Result([], [], 0, 0)


def parse(sql: str) -> tuple[str, str | None] | None:
    """``(name, value)`` of a ``PRAGMA name = value`` (value None for a read), lower-case
    name without ``main.``; None for any other statement."""
    setting = _SET.match(sql)
    if setting:
        return setting[1].lower(), setting[2]
    reading = _READ.match(sql)
    return (reading[1].lower(), None) if reading else None


def flag(value: str, name: str) -> int:
    """A boolean pragma's value as SQLite reads it (on/off words or an integer); a value
    SQLite would quietly read as off is refused instead."""
    word = value.strip("'\"").lower()
    if word in _WORDS:
        return _WORDS[word]
    try:
        return int(int(word, 0) != 0)
    except ValueError:
        raise OperationalError(f"PRAGMA {name}: expected on/off, got {value}") from None


class ConnectionPragmas:
    """The settings of one connection the server would not keep (see the module docstring).
    Invariant: ``settings`` holds only what the user set, as 0 or 1."""

    def __init__(self) -> None:
        self.settings: dict[str, int] = {}

    def answer(self, pragma: tuple[str, str | None], in_transaction: bool) -> Result | None:
        """Set or read ``pragma`` here and answer it, or None when the server must run it.
        A setting made inside a transaction also goes to the server (None): it must hold
        in the transaction already open there."""
        name, value = pragma
        remembered = name in LOCAL or name in CONNECTION_LIFE or name in ONE_TRANSACTION
        if not remembered:
            return None
        if value is None:
            if name not in self.settings and name not in LOCAL:
                return None  # never set here: the server's own value
            return Result([name], [(self.settings.get(name, 0),)], 0, 0)
        self.settings[name] = flag(value, name)
        return None if in_transaction and name not in LOCAL else NOTHING

    def prefix(self) -> list[str]:
        """The statements that open a transaction on the server with these settings (those
        left off are off there already: the server starts each transaction with SQLite's
        defaults)."""
        return [f"PRAGMA {name} = 1" for name, value in self.settings.items() if value and name not in LOCAL]

    def transaction_ended(self) -> None:
        """A transaction committed or rolled back: one-transaction settings are off again."""
        for name in ONE_TRANSACTION:
            self.settings.pop(name, None)
