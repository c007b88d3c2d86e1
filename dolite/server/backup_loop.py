"""Continuous backups from the service (``dolite serve --backup-to URL``).

Every ``every`` seconds a background task looks at each database's head and its GC hold
``backup:<target>`` (the version the last push from anywhere reached: the store itself
says what is backed up, so a restart or a second pusher is accounted for) and pushes
(:func:`dolite.backup.push_store`) each database that has committed since. Pushes run on
a worker thread, one database at a time; a failure is logged and retried next period.

Stalls are loud: for each database the loop knows since when its oldest not-backed-up
commit has waited. ``dolite_backup_lag_seconds{database}`` is that wait at scrape time (0
when backed up) and ``dolite_backup_last_success_timestamp{database}`` the end of its last
successful push from this process; ``/healthz`` says ``"degraded"``, with reasons, while
any lag exceeds ``max_lag``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily

from dolite.backup import BackupTarget
from dolite.backup.push import holder, push_store
from dolite.errors import DatabaseNotFound, Error
from dolite.ops.admin import list_databases
from dolite.pages import open_store
from dolite.pages.holds import read_holds
from dolite.server.backup_lag import waiting_since
from dolite.server.objects.metrics import REGISTRY
from dolite.storage import Namespace

log = logging.getLogger("dolite.server.backup")


@dataclass
class BackupState:
    """What the loop knows of one database."""

    pending_since: float | None = None  # commit time of the oldest version not backed up
    last_success: float | None = None  # when a push from this process last succeeded
    last_error: str | None = None

    def lag(self, now: float) -> float:
        return 0.0 if self.pending_since is None else max(0.0, now - self.pending_since)


class BackupLoop:
    """Pushes every database that committed since its last push, every ``every`` seconds."""

    def __init__(self, namespace: Namespace, target: BackupTarget, every: float = 10.0, max_lag: float = 60.0):
        if every <= 0 or max_lag <= 0:
            raise ValueError("the backup period and the lag threshold must be positive")
        self.namespace, self.target, self.every, self.max_lag = namespace, target, every, max_lag
        self.state: dict[str, BackupState] = {}
        _LOOPS.add(self)

    async def run(self) -> None:
        """Push rounds until cancelled (the service's lifespan owns the task)."""
        while True:
            await asyncio.to_thread(self.push_round)
            await asyncio.sleep(self.every)

    def push_round(self) -> None:
        """One pass over every database; forgets the databases that are gone."""
        try:
            names = list_databases(self.namespace)
        except Error as exc:
            log.warning("backup: cannot list databases: %s", exc)
            return
        for name in set(self.state) - set(names):
            del self.state[name]
        for name in names:
            try:
                self._push_if_behind(name, self.state.setdefault(name, BackupState()))
            except DatabaseNotFound:
                self.state.pop(name, None)  # dropped meanwhile

    def _push_if_behind(self, name: str, state: BackupState) -> None:
        store = open_store(self.namespace, name)
        head = store.read_head()
        hold = read_holds(store.storage, name).get(holder(self.target))
        backed = hold.version if hold is not None else 0
        if hold is not None and backed >= head.version:
            state.pending_since = None
            return
        if state.pending_since is None:
            state.pending_since = waiting_since(self.namespace, name, backed)
        try:
            result = push_store(store, self.target)
        except Error as exc:
            state.last_error = str(exc)
            log.warning("backup: push of %s to %s failed (retrying every %gs): %s", name, self.target.url,
                        self.every, exc)
            return
        state.last_success, state.last_error = time.time(), None
        state.pending_since = None if result.version >= head.version else state.pending_since

    def problems(self, now: float | None = None) -> list[str]:
        """Why the backups are unhealthy: each database whose lag exceeds ``max_lag``."""
        now = time.time() if now is None else now
        out = []
        for name, state in sorted(self.state.items()):
            lag = state.lag(now)
            if lag > self.max_lag:
                why = f": last push failed: {state.last_error}" if state.last_error else ""
                out.append(f"backup of {name} to {self.target.url} is {lag:.0f}s behind "
                           f"(limit {self.max_lag:g}s){why}")
        return out


_LOOPS: weakref.WeakSet[BackupLoop] = weakref.WeakSet()


class _BackupCollector:
    """The loops' gauges, computed at scrape time (so a stalled lag keeps growing)."""

    def collect(self):
        lag = GaugeMetricFamily("dolite_backup_lag_seconds", "Seconds the oldest commit not yet backed up "
                                "has waited (0: backed up)", labels=["database"])
        success = GaugeMetricFamily("dolite_backup_last_success_timestamp", "Unix time of the last "
                                    "successful backup push from this process", labels=["database"])
        now = time.time()
        for loop in list(_LOOPS):
            for name, state in sorted(loop.state.items()):
                lag.add_metric([name], state.lag(now))
                if state.last_success is not None:
                    success.add_metric([name], state.last_success)
        yield lag
        yield success

    def describe(self):
        return []  # no fixed samples to declare (auto_describe would otherwise collect)


REGISTRY.register(_BackupCollector())


def parse_period(text: str) -> float:
    """``10s``, ``1m``, ``500ms`` or plain seconds -> seconds (ValueError otherwise)."""
    from dolite.backup import parse_duration

    text = text.strip()
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    try:
        return float(text)
    except ValueError:
        return parse_duration(text)
