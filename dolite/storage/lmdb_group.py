"""Group commit for the LMDB store (see dolite/storage/lmdb.py): the first writer to find
no group in progress leads; writers arriving meanwhile queue for the next group, whose
first is promoted to lead it. The store applies a group in ``_run_group``."""

from __future__ import annotations

import _thread
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from dolite.errors import StorageError

MAX_GROUP = 64  # requests per group commit
MAX_GROUP_BYTES = 16 << 20  # bytes of values per group (a group always takes one request)


class Request:
    """One write waiting for (or leading) a group commit."""

    __slots__ = ("deletes", "error", "expect", "lead", "nbytes", "result", "storage", "wake", "writes")

    def __init__(self, storage: Any, writes: Mapping[str, bytes], deletes: list[str],
                 expect: dict[str, bytes | None]):
        self.storage = storage
        self.writes = writes
        self.deletes = deletes
        self.expect = expect
        self.nbytes = sum(len(v) for v in writes.values())
        self.result: int | None = None  # keys deleted, set once applied
        self.error: BaseException | None = None
        self.wake: _thread.LockType | None = None  # held until the request is done (followers)
        self.lead = False  # promoted: lead the next group

    def outcome(self) -> int:
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommit:
    """The queue of write requests and its leader; a subclass applies each group
    (``_run_group``: set every request's ``result`` or ``error``)."""

    def __init__(self) -> None:
        self._group_lock = threading.Lock()
        self._queue: deque[Request] = deque()  # requests waiting for the next group
        self._leading = False  # a group is in progress (its leader will promote the next)
        self.group_stats = {"groups": 0, "requests": 0, "max_group": 0}

    def _submit(self, request: Request) -> int:
        """Apply one write request through group commit; return its result (keys deleted)."""
        with self._group_lock:
            if self._leading:
                request.wake = _thread.allocate_lock()
                request.wake.acquire()
                self._queue.append(request)
            else:
                self._leading = True
        if request.wake is not None:
            try:
                request.wake.acquire()  # released by the leader: done, or promoted to lead
            except BaseException:  # interrupted while queued (KeyboardInterrupt)
                self._withdraw(request)
                raise
            if not request.lead:
                return request.outcome()
        self._lead(request)
        return request.outcome()

    def _withdraw(self, request: Request) -> None:
        """Take an interrupted follower out of the queue, or, if it was already promoted,
        still lead its group (the others wait for it). If it is in a group already, the
        group goes on without it noticing: its outcome is unknown to its caller."""
        with self._group_lock:
            if request in self._queue:
                self._queue.remove(request)
                return
            promoted = request.lead
        if promoted:
            self._lead(request)

    def _lead(self, first: Request) -> None:
        group = [first]
        size = first.nbytes
        following = None
        try:
            with self._group_lock:
                queue = self._queue
                while queue and len(group) < MAX_GROUP and size + queue[0].nbytes <= MAX_GROUP_BYTES:
                    request = queue.popleft()
                    group.append(request)
                    size += request.nbytes
            self._run_group(group)
        finally:
            with self._group_lock:
                if self._queue:
                    following = self._queue.popleft()
                    following.lead = True
                else:
                    self._leading = False
                stats = self.group_stats
                stats["groups"] += 1
                stats["requests"] += len(group)
                stats["max_group"] = max(stats["max_group"], len(group))
            if following is not None:
                following.wake.release()
            for request in group[1:]:
                if request.error is None and request.result is None:  # leader interrupted
                    request.error = StorageError("lmdb: group commit interrupted")
                request.wake.release()

    def _run_group(self, group: list[Request]) -> None:
        raise NotImplementedError
