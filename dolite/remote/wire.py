"""The JSON wire format of the dolite HTTP API, shared by the server and the client.

SQLite values travel as plain JSON where that is exact, else as a tagged object:

=====================  ===============================================================
NULL, TEXT, REAL       ``null``, ``"text"``, ``1.5``
INTEGER                a number if ``|n| <= 2**53 - 1``, else ``{"type": "integer", "value": "9007199254740993"}``
REAL +-infinity        ``{"type": "float", "value": "Infinity"}`` (or ``"-Infinity"``)
BLOB                   ``{"type": "blob", "base64": "AAEC"}``
=====================  ===============================================================

Parameters accept the same forms (and ``true``/``false`` as 1/0), positionally as a
list or by name as an object (``:name``, ``@name``, ``$name``).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

from dolite.errors import WireError  # noqa: F401 - re-exported: the wire format's error

SAFE_INT = 2**53 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def encode_value(value: Any) -> Any:
    """A SQLite value (as APSW returns it) in its JSON form."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if -SAFE_INT <= value <= SAFE_INT else {"type": "integer", "value": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"type": "float", "value": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"type": "blob", "base64": base64.b64encode(bytes(value)).decode("ascii")}
    raise WireError(f"cannot encode a {type(value).__name__} value")


def decode_value(value: Any) -> Any:
    """A JSON value (parameter or result cell) back as the Python/SQLite value."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise WireError(f"integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "blob" and isinstance(value.get("base64"), str) and set(value) == {"type", "base64"}:
            try:
                return base64.b64decode(value["base64"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise WireError(f"blob is not valid base64: {exc}") from None
        if kind == "integer" and isinstance(value.get("value"), str) and set(value) == {"type", "value"}:
            try:
                number = int(value["value"], 10)
            except ValueError:
                raise WireError(f"integer value {value['value'][:40]!r} is not a decimal integer") from None
            return decode_value(number)
        if kind == "float" and isinstance(value.get("value"), str) and set(value) == {"type", "value"}:
            text = value["value"]
            if text not in ("Infinity", "-Infinity", "NaN"):
                try:
                    return float(text)
                except ValueError:
                    raise WireError(f"float value {text[:40]!r} is not a number") from None
            return float(text.replace("Infinity", "inf"))
    raise WireError(
        "a value must be null, a number, a string, or "
        '{"type": "blob", "base64": ...} / {"type": "integer", "value": "..."} / {"type": "float", "value": "..."}'
    )


@dataclass(frozen=True)
class Statement:
    """One SQL statement and its bound parameters (a tuple, or a dict of names)."""

    sql: str
    params: tuple | dict


def parse_statement(item: Any, where: str = "body") -> Statement:
    """Validate ``{"sql": str, "params": list | object}``."""
    if not isinstance(item, dict):
        raise WireError(f"{where} must be an object with \"sql\"")
    unknown = set(item) - {"sql", "params"}
    if unknown:
        raise WireError(f"{where} has unknown field(s): {', '.join(sorted(unknown))}")
    sql = item.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise WireError(f"{where}.sql must be a non-empty string")
    raw = item.get("params", [])
    if isinstance(raw, list):
        params: tuple | dict = tuple(decode_value(v) for v in raw)
    elif isinstance(raw, dict):
        params = {}
        for key, v in raw.items():
            name = key[1:] if key[:1] in (":", "@", "$") else key
            if not name:
                raise WireError(f"{where}.params has an empty parameter name")
            params[name] = decode_value(v)
    elif raw is None:
        params = ()
    else:
        raise WireError(f"{where}.params must be a list or an object")
    return Statement(sql, params)


def parse_query(body: Any, max_statements: int) -> tuple[list[Statement], bool]:
    """A query body: ``{"sql", "params"}`` or ``{"batch": [...]}``. Returns the statements
    and whether it was a batch."""
    if not isinstance(body, dict):
        raise WireError('the body must be a JSON object: {"sql": ..., "params": [...]} or {"batch": [...]}')
    if "batch" in body:
        if set(body) != {"batch"}:
            raise WireError('a batch body has only the field "batch"')
        batch = body["batch"]
        if not isinstance(batch, list) or not batch:
            raise WireError("batch must be a non-empty list of statements")
        if len(batch) > max_statements:
            raise WireError(f"batch has {len(batch)} statements, over the limit of {max_statements}")
        return [parse_statement(item, f"batch[{i}]") for i, item in enumerate(batch)], True
    return [parse_statement(body)], False


def encode_params(params: Any) -> list | dict:
    """Client side: Python parameters in their JSON form."""
    if params is None:
        return []
    if isinstance(params, dict):
        return {k: encode_value(v) for k, v in params.items()}
    return [encode_value(v) for v in params]
