"""GC holds: a reader outside the database (a backup, a replica) that must copy versions
before garbage collection drops them asks GC to keep every version newer than the one it
has copied.

``hold/<holder>`` (sealed JSON: version, time) in the database's own object. GC keeps the
records and chunk versions every holder still needs, but only for ``MAX_HOLD_SECONDS``
after the hold was last moved: a holder that stops (a dead backup target) must not make the
store grow for ever. Past that GC proceeds, logs an alert and counts it, and the holder
learns on its next run that versions are gone (a backup then takes a full snapshot).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dolite.pages.format import Head, decode_record, encode_record
from dolite.storage.base import Storage

HOLD_PREFIX = "hold/"
MAX_HOLD_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Hold:
    holder: str
    version: int  # the holder has copied every version up to this one
    time: float  # when the hold was last moved

    def stale(self, now: float, max_age: float = MAX_HOLD_SECONDS) -> bool:
        return now - self.time > max_age


def set_hold(storage: Storage, holder: str, version: int) -> Hold:
    """Record that ``holder`` has copied every version up to ``version``."""
    hold = Hold(holder, version, time.time())
    key = HOLD_PREFIX + holder
    storage.put({key: encode_record(key, {"version": version, "time": hold.time})})
    return hold


def any_fresh(holds: dict[str, Hold], now: float) -> bool:
    """Whether any of ``holds`` is still in force (not stale)."""
    return any(not hold.stale(now) for hold in holds.values())


def release_hold(storage: Storage, holder: str) -> None:
    storage.delete([HOLD_PREFIX + holder])


def read_holds(storage: Storage, name: str = "database") -> dict[str, Hold]:
    """Every holder's hold. Raises CorruptChunk on a damaged one (GC then stops)."""
    holds = {}
    for key, raw in storage.list(prefix=HOLD_PREFIX).items():
        fields = decode_record(raw, key, name)
        holder = key[len(HOLD_PREFIX):]
        holds[holder] = Hold(holder, fields["version"], fields["time"])
    return holds


class Pins:
    """The versions readers in this process have pinned (a holder's hold, in memory): GC
    keeps every version one of them may still read. Thread-safe."""

    def __init__(self) -> None:
        self._readers: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._open = threading.Condition(self._lock)  # notified when a commit in place ends
        self._closed = False  # a commit in place is in flight: no new pin until it ends

    def add(self, version: int) -> None:
        with self._lock:
            while self._closed:
                self._open.wait()
            self._readers[version] += 1

    @contextmanager
    def sole(self, version: int, own: int) -> Iterator[bool]:
        """True if the only pins are the committer's ``own`` pins of ``version`` (its base):
        a commit may then overwrite that version in place, and no new pin is taken until
        the block ends (a reader would pin the version being overwritten). False: other
        readers here still read, pins go on as usual."""
        with self._lock:
            alone = not self._closed and dict(self._readers) == ({version: own} if own else {})
            self._closed = alone
        try:
            yield alone
        finally:
            if alone:
                with self._lock:
                    self._closed = False
                    self._open.notify_all()

    def remove(self, version: int) -> None:
        with self._lock:
            self._readers[version] -= 1
            if self._readers[version] <= 0:
                del self._readers[version]

    def while_reading(self, read: Callable[[], Head]) -> Head:
        """``read()``'s head, pinned; unpin it when done. Version 0 is pinned while ``read``
        runs, so a GC pass that takes its snapshot meanwhile deletes nothing: a pin taken
        only after the read could come too late for its head."""
        self.add(0)
        try:
            head = read()
            self.add(head.version)
        finally:
            self.remove(0)
        return head

    def versions(self) -> list[int]:
        with self._lock:
            return list(self._readers)
