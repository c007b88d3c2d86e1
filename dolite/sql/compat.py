"""The parts of stdlib :mod:`sqlite3`'s surface that dolite's local driver shares with it.

Adapters and converters are sqlite3's own registries (``sqlite3.adapters``,
``sqlite3.converters``): an adapter or converter registered through either module applies
to both, as do sqlite3's default date/datetime adapters and "date"/"timestamp" converters.
Everything here follows sqlite3's documented semantics for Python 3.11-3.13; where dolite
differs, docs/COMPATIBILITY.md says so.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Callable
from itertools import chain

import apsw

from dolite.errors import NotSupportedError, ProgrammingError
from dolite.sql.pep249 import split_statements

sqlite_version = apsw.sqlite_lib_version()
"""The SQLite that runs dolite's databases (APSW's), not the one stdlib sqlite3 links."""
sqlite_version_info = tuple(int(part) for part in sqlite_version.split("."))
PARSE_DECLTYPES = sqlite3.PARSE_DECLTYPES
PARSE_COLNAMES = sqlite3.PARSE_COLNAMES
PrepareProtocol = sqlite3.PrepareProtocol
Binary = memoryview
adapters = sqlite3.adapters
converters = sqlite3.converters
register_adapter = sqlite3.register_adapter
register_converter = sqlite3.register_converter
adapt = sqlite3.adapt
enable_callback_tracebacks = sqlite3.enable_callback_tracebacks
CONSTANTS = {name: value for name, value in vars(sqlite3).items() if name.startswith("SQLITE_")}
"""sqlite3's SQLITE_* constants (authorizer actions and answers, limit categories, codes)."""


def complete_statement(statement: str) -> bool:
    """Whether ``statement`` is one or more complete SQL statements (SQLite's own test)."""
    if not isinstance(statement, str):
        raise TypeError(f"complete_statement() argument 'statement' must be str, not {type(statement).__name__}")
    return apsw.complete(statement)


# -- statements and parameters ---------------------------------------------------------------

_ONLY_COMMENTS = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?(?:\*/|\Z))*\Z", re.S)
_COMMENTS = r"(?:\s+|--[^\n]*\n|/\*.*?\*/)*"
_REFUSED = [
    (re.compile(_COMMENTS + r"PRAGMA\s+(?:[\w\"`\[\]]+\s*\.\s*)?journal_mode\s*(?:=|\()\s*['\"]?(?!memory\b)\w",
                re.I | re.S),
     "dolite keeps SQLite's journal in memory (journal_mode=MEMORY): WAL and on-disk journals do not apply"),
    (re.compile(_COMMENTS + r"VACUUM\b[^;]*\bINTO\b", re.I | re.S),
     "VACUUM INTO writes a file: use dolite export (dolite.ops.snapshot) or Connection.backup"),
]


def check_supported(sql: str) -> None:
    """Refuse a statement dolite cannot do and SQLite would quietly not do (WAL, VACUUM INTO)."""
    for pattern, reason in _REFUSED:
        if pattern.match(sql):
            raise NotSupportedError(reason)


def check_script(script: str) -> None:
    """:func:`check_supported` for every statement of a script."""
    for statement in split_statements(script):
        check_supported(statement)


@functools.lru_cache(maxsize=512)
def check_one_statement(sql: str) -> None:
    """Refuse ``sql`` if it holds more than one statement (sqlite3's rule: after the first
    statement only whitespace and comments may follow), or if it asks for something dolite
    cannot do (WAL, VACUUM INTO a file) and SQLite would otherwise quietly not do."""
    check_supported(sql)
    start = 0
    while (end := sql.find(";", start)) != -1:
        if apsw.complete(sql[:end + 1]):
            if not _ONLY_COMMENTS.match(sql, end + 1):
                raise ProgrammingError("You can only execute one statement at a time.")
            return
        start = end + 1


_PLAIN = frozenset({int, float, str, bytes, type(None)})
_ROWS = frozenset({tuple, list})
_BINDABLE = (int, float, str, bytes, bytearray, memoryview, type(None))
_BASE_TYPES = (int, float, str, bytearray)


@functools.lru_cache(maxsize=8)
def _base_types_adapted(_registry_size: int) -> bool:
    return any(kind in _BASE_TYPES for kind, _ in list(adapters))


def _adapted(value, key):
    """``value`` as SQLite can bind it, through sqlite3's adapters (sqlite3's rule: exact
    base types are adapted only once an adapter for a base type was registered)."""
    if type(value) in _PLAIN and not _base_types_adapted(len(adapters)):
        return value
    value = adapt(value, PrepareProtocol, value)
    if isinstance(value, _BINDABLE):
        return value
    raise ProgrammingError(f"Error binding parameter {key}: type '{type(value).__name__}' is not supported")


def bind_parameters(parameters):
    """The parameters of one statement, adapted: a sequence binds by position, a dict by
    name; anything else is refused as sqlite3 refuses it."""
    if _is_plain(parameters) and not _base_types_adapted(len(adapters)):
        return parameters  # the common case, kept cheap
    kind = type(parameters)
    if kind in (tuple, list) or (not isinstance(parameters, dict) and _is_sequence(parameters)):
        return tuple(_adapted(value, index) for index, value in enumerate(parameters, 1))
    if isinstance(parameters, dict):
        return {name: _adapted(value, f":{name}") for name, value in parameters.items()}
    raise ProgrammingError("parameters are of unsupported type")


def bind_all(seq_of_parameters):
    """``bind_parameters`` of each row (executemany), with the adapter check made once; a
    list or tuple of plain rows is checked in one pass and handed over as it is."""
    if _base_types_adapted(len(adapters)):
        return map(bind_parameters, seq_of_parameters)
    if type(seq_of_parameters) in _ROWS and _all_plain(seq_of_parameters):
        return seq_of_parameters
    return map(_bind_plain, seq_of_parameters)


def _all_plain(rows) -> bool:
    """Every row a tuple or list of plain values (checked at C speed, about 60 ns a row)."""
    return _ROWS.issuperset(map(type, rows)) and _PLAIN.issuperset(map(type, chain.from_iterable(rows)))


def _bind_plain(parameters):
    return parameters if _is_plain(parameters) else bind_parameters(parameters)


def _is_plain(parameters) -> bool:
    """A tuple or list of values SQLite binds as they are (no adapter is consulted)."""
    kind = type(parameters)
    return (kind is tuple or kind is list) and _PLAIN.issuperset(map(type, parameters))


def _is_sequence(value) -> bool:
    return hasattr(type(value), "__getitem__") and hasattr(type(value), "__len__") and not isinstance(value, (set, frozenset))


# -- results ---------------------------------------------------------------------------------


def _sqlite_text(value) -> bytes:
    """The bytes SQLite gives for a value read as a blob (what sqlite3 hands converters)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        text = "%.15g" % value
        if text.lstrip("-").isdigit():
            text += ".0"
        elif "e" in text and "." not in text:
            text = text.replace("e", ".0e", 1)
        return text.encode()
    return str(value).encode()


def _converter_name(declared: str | None) -> str | None:
    if not declared:
        return None
    return re.split(r"[\s(]", declared.strip(), maxsplit=1)[0].upper() or None


def column_converters(detect_types: int, described) -> tuple[list, list[str]]:
    """Per column: the converter that applies (or None) and the name sqlite3 reports.
    ``described`` is APSW's description: (name, declared type, ...) per column."""
    out, names = [], []
    for column in described:
        name, declared = column[0], column[1]
        converter = None
        if detect_types & PARSE_COLNAMES and "[" in name:
            bracket = name[name.index("[") + 1:]
            if "]" in bracket:
                converter = converters.get(bracket[:bracket.index("]")].upper())
            name = name[:name.index("[")].rstrip()
        if converter is None and detect_types & PARSE_DECLTYPES:
            converter = converters.get(_converter_name(declared))
        out.append(converter)
        names.append(name)
    return out, names


class RowShaper:
    """Turns one raw row into what sqlite3 would return: converters (detect_types), then
    text_factory for TEXT values, then the cursor's row_factory."""

    def __init__(self, converters_: list, text_factory, row_factory):
        self.converters = converters_ if any(converters_) else None
        self.text_factory = None if text_factory is str else text_factory
        self.row_factory = Row if row_factory is sqlite3.Row else row_factory

    @property
    def needed(self) -> bool:
        return bool(self.converters or self.text_factory or self.row_factory)

    def __call__(self, cursor, row: tuple):
        if self.converters or self.text_factory:
            row = tuple(self._value(i, v) for i, v in enumerate(row))
        return self.row_factory(cursor, row) if self.row_factory else row

    def _value(self, index: int, value):
        converter = self.converters[index] if self.converters else None
        if value is None:
            return None
        if converter is not None:
            return converter(_sqlite_text(value))
        if self.text_factory is not None and isinstance(value, str):
            return bytes(value.encode()) if self.text_factory is bytes else self.text_factory(value.encode())
        return value


class Row:
    """sqlite3.Row for dolite cursors: a tuple that also indexes by column name
    (case-insensitive), with keys(); equal to another Row with the same columns and values."""

    __slots__ = ("_names", "_values")

    def __init__(self, cursor, data: tuple):
        if not isinstance(data, tuple):
            raise TypeError(f"Row() argument 2 must be tuple, not {type(data).__name__}")
        self._names = tuple(column[0] for column in cursor.description or ())
        self._values = data

    def keys(self) -> list[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self):
        return iter(self._values)

    def __getitem__(self, key):
        if isinstance(key, str):
            folded = key.casefold()
            for name, value in zip(self._names, self._values):
                if name.casefold() == folded:
                    return value
            raise IndexError("No item with that key")
        return self._values[key]

    def __eq__(self, other):
        if not isinstance(other, Row):
            return NotImplemented
        return self._names == other._names and self._values == other._values

    def __hash__(self) -> int:
        return hash(self._names) ^ hash(self._values)


# -- user callbacks ----------------------------------------------------------------------------


def _callback_failed(message: str) -> apsw.SQLError:
    """The error a failed user callback becomes (sqlite3's OperationalError message); the
    traceback is printed when sqlite3.enable_callback_tracebacks(True) asked for it."""
    if getattr(sqlite3, "_enable_callback_tracebacks", False):  # pragma: no cover
        import traceback
        traceback.print_exc()
    return apsw.SQLError(message)


def _result(value):
    if isinstance(value, _BINDABLE):
        return value
    raise TypeError(f"user-defined function returned unsupported type {type(value).__name__}")


def scalar_function(func: Callable) -> Callable:
    """``func`` as SQLite calls it, failing as sqlite3's user functions fail."""
    @functools.wraps(func)
    def call(*args):
        try:
            return _result(func(*args))
        except Exception:
            raise _callback_failed("user-defined function raised exception") from None
    return call


def _method(instance, name: str, kind: str = "aggregate") -> Callable:
    method = getattr(instance, name, None)
    if method is None:
        raise _callback_failed(f"user-defined {kind}'s '{name}' method not defined")

    def call(*args):
        try:
            return method(*args)
        except Exception:
            raise _callback_failed(f"user-defined {kind}'s '{name}' method raised error") from None
    return call


def aggregate_factory(cls: type) -> Callable:
    """An APSW aggregate factory for a sqlite3-style class (``step(*args)``, ``finalize()``)."""
    def factory():
        try:
            instance = cls()
        except Exception:
            raise _callback_failed("user-defined aggregate's '__init__' method raised error") from None
        step, finalize = _method(instance, "step"), _method(instance, "finalize")
        return None, lambda _ctx, *args: step(*args), lambda _ctx: _result(finalize())
    return factory


def window_factory(cls: type) -> Callable:
    """An APSW window-function factory for a sqlite3-style class (step, value, inverse, finalize)."""
    def factory():
        try:
            instance = cls()
        except Exception:
            raise _callback_failed("user-defined aggregate's '__init__' method raised error") from None
        step, inverse = _method(instance, "step"), _method(instance, "inverse")
        value, finalize = _method(instance, "value"), _method(instance, "finalize")
        return (None, lambda _c, *a: step(*a), lambda _c: _result(finalize()),
                lambda _c: _result(value()), lambda _c, *a: inverse(*a))
    return factory


def authorizer(callback: Callable) -> Callable:
    """sqlite3's authorizer rule: an exception or an answer that is not OK/DENY/IGNORE denies."""
    def authorize(action, arg1, arg2, dbname, source):
        try:
            answer = callback(action, arg1, arg2, dbname, source)
        except Exception:
            return apsw.SQLITE_DENY
        if type(answer) is not int or answer not in (apsw.SQLITE_OK, apsw.SQLITE_DENY, apsw.SQLITE_IGNORE):
            return apsw.SQLITE_DENY
        return answer
    return authorize


def progress_handler(handler: Callable) -> Callable:
    """sqlite3's rule: a true answer or an exception interrupts the statement."""
    def progress():
        try:
            return bool(handler())
        except Exception:
            return True
    return progress
