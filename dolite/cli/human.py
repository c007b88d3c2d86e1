"""Times and sizes for people: what the CLI prints, and the times it accepts (``--at``)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RELATIVE = re.compile(r"-(\d+(?:\.\d+)?)([smhdw])\Z")


def size(n: int | float) -> str:
    """``1536`` -> ``"1.5 KiB (1536 bytes)"``."""
    value, unit = float(n), "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({n} bytes)"


def duration(seconds: float) -> str:
    """``90`` -> ``"1 min 30 s"`` (two largest units at most)."""
    seconds = round(abs(seconds))
    parts = []
    for name, unit in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= unit or (unit == 1 and not parts):
            parts.append(f"{seconds // unit} {name}")
            seconds %= unit
    return " ".join(parts[:2])


def moment(at: float, now: float | None = None) -> str:
    """A Unix time as local ISO 8601 plus how long ago (or ahead) it is."""
    now = time.time() if now is None else now
    stamp = datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")
    return f"{stamp} ({duration(now - at)} {'ago' if at <= now else 'from now'})"


def parse_at(text: str, now: float | None = None) -> float:
    """``--at``: ISO 8601 (local time unless it names a zone), Unix seconds, or a time
    relative to now: ``-30s``, ``-5m``, ``-2h``, ``-1d``, ``-1w``. ValueError otherwise."""
    now = time.time() if now is None else now
    relative = _RELATIVE.match(text.strip())
    if relative:
        return now - float(relative[1]) * _UNITS[relative[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--at {text!r}: expected an ISO 8601 time (2025-01-31T12:00), Unix seconds, "
                         "or a time ago like -5m, -2h, -1d") from None
    return parsed.timestamp()


def info_rows(facts: dict, now: float | None = None) -> list[tuple[str, str]]:
    """``dolite info``'s facts as (label, text) rows: sizes, times and the lease in words."""
    rows = []
    for key, value in facts.items():
        label = key.removesuffix("_seconds").replace("_", " ")
        if value is None:
            text = "none"
        elif key in ("size", "page_size", "chunk_size") and isinstance(value, int):
            text = size(value)
        elif key.endswith("_seconds") and isinstance(value, (int, float)):
            text = duration(value)
        elif key.endswith("_at") and isinstance(value, (int, float)):
            text = moment(value, now)
        elif key == "lease" and isinstance(value, dict):
            text = lease(value, now)
        else:
            text = str(value)
        rows.append((label, text))
    return rows


def lease(facts: dict, now: float | None = None) -> str:
    now = time.time() if now is None else now
    expires = facts.get("expires") or 0.0
    state = f"expires in {duration(expires - now)}" if expires > now else "released or expired (free)"
    return f"{facts.get('owner')} (epoch {facts.get('epoch')}): {state}"


def utc(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat()
