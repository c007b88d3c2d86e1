"""Fair share of the service between tokens: per-token concurrency with a bounded queue.

Each token runs at most ``running`` requests at once; up to ``queued`` more wait, in
arrival order, until a slot frees or the request's deadline passes (503 ``busy``). Past
that the request is refused at once (429 ``too_many_requests``). Both carry
``Retry-After``. So one token's slow requests use at most ``running`` of the host's
workers, and cannot starve other tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from dolite.errors import Busy, TooManyRequests
from dolite.server.objects import deadline


@dataclass
class _Lane:
    slots: asyncio.Semaphore
    waiting: int = 0
    users: int = 0


@dataclass
class TokenLimiter:
    running: int = 8
    queued: int = 64
    _lanes: dict[bytes, _Lane] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def slot(self, key: bytes) -> AsyncIterator[None]:
        """Hold one of ``key``'s slots while the block runs (see the module docstring)."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(asyncio.Semaphore(self.running))
        if lane.slots.locked() and lane.waiting >= self.queued:
            raise TooManyRequests(f"this token already has {self.running} requests "
                               f"running and {self.queued} waiting: slow down", headers={"Retry-After": "1"})
        lane.users += 1
        try:
            await self._acquire(lane)
            try:
                yield
            finally:
                lane.slots.release()
        finally:
            lane.users -= 1
            if lane.users == 0:
                del self._lanes[key]

    @staticmethod
    async def _acquire(lane: _Lane) -> None:
        lane.waiting += 1
        try:
            await asyncio.wait_for(lane.slots.acquire(), max(0.0, deadline.remaining()))
        except TimeoutError:
            raise Busy("this token's earlier requests are still running and this one "
                               "reached its deadline waiting", headers={"Retry-After": "1"}) from None
        finally:
            lane.waiting -= 1
