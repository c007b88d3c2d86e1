"""A fault-injecting storage wrapper: fails, stalls or loses the reply of the N-th
storage operation, counted from when it is armed."""

from __future__ import annotations

import time

from dolite.errors import StorageError

MODES = ("fail", "lost_reply", "stall")


class InjectedFault(StorageError):
    pass


class Faults:
    def __init__(self):
        self.ops = 0
        self.at: int | None = None  # fault the at-th operation after arming
        self.mode = "fail"
        self.fired = False
        self.on_stall = None  # called while the stalled operation waits (concurrent reader)

    def arm(self, at: int | None, mode: str = "fail") -> None:
        self.ops, self.at, self.mode, self.fired = 0, at, mode, False

    def around(self, call):
        """Run ``call()`` (one storage operation), injecting the armed fault."""
        self.ops += 1
        if self.at is None or self.ops != self.at:
            return call()
        self.fired = True
        if self.mode == "fail":  # refused before it reached storage
            raise InjectedFault(f"injected failure of storage operation {self.ops}")
        if self.mode == "stall":  # slow, then applied normally; others may look meanwhile
            time.sleep(0.005)
            if self.on_stall is not None:
                self.on_stall()
            return call()
        call()  # lost_reply: applied, but the caller hears an error
        raise InjectedFault(f"injected lost reply of storage operation {self.ops}")


class FaultyStorage:
    def __init__(self, inner, faults: Faults):
        self._inner, self._faults, self.limits = inner, faults, inner.limits

    def get(self, keys):
        return self._faults.around(lambda: self._inner.get(keys))

    def put(self, entries):
        return self._faults.around(lambda: self._inner.put(entries))

    def delete(self, keys):
        return self._faults.around(lambda: self._inner.delete(keys))

    def list(self, **kwargs):
        return self._faults.around(lambda: self._inner.list(**kwargs))

    def commit(self, writes, deletes=(), expect=None):
        return self._faults.around(lambda: self._inner.commit(writes, deletes, expect))


class FaultyNamespace:
    def __init__(self, inner):
        self._inner, self.url, self.limits = inner, inner.url, inner.limits
        self.faults = Faults()

    def object(self, name: str) -> FaultyStorage:
        return FaultyStorage(self._inner.object(name), self.faults)

    def names(self):
        return self._inner.names()

    def drop(self, name: str) -> None:
        self._inner.drop(name)

    def close(self) -> None:
        pass
