"""The ring buffer behind GET /v1/stats (dolite/server/stats.py), with stand-in stores."""

from __future__ import annotations

from types import SimpleNamespace

from dolite.server import stats
from dolite.server.stats import Sampler


class Store:
    """A loaded database as the sampler sees it: its newest head's version."""

    def __init__(self, version: int):
        self.version = version

    def known_newest(self):
        return SimpleNamespace(version=self.version)


def test_commits_are_counted_from_versions_across_evictions(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(stats.time, "time", lambda: clock[0])

    def sample():
        clock[0] += 2.0
        return sampler.sample()

    loaded = {"a": Store(5)}
    sampler = Sampler(lambda: list(loaded.items()), keep=3)
    assert sample() is None                               # the baseline
    loaded["a"].version = 9
    sample()
    del loaded["a"]                                       # evicted: not seen this time
    sample()
    loaded["a"] = Store(12)                               # reloaded after 3 more commits
    sample()
    sample()
    series = sampler.series("a")
    assert len(series) == 3                               # keep=3: the oldest sample was dropped
    assert [s["commits_per_s"] for s in series] == [0, 1.5, 0]


def test_request_timings_per_database_are_bounded_and_reset_each_sample(monkeypatch):
    monkeypatch.setattr(stats, "MAX_TIMED", 2)
    sampler = Sampler(list)
    sampler.sample()
    for name, seconds in (("a", 0.010), ("a", 0.030), ("b", 0.001), ("c", 0.5)):
        sampler.observe(name, seconds)
    sampler.sample()
    sampler.sample()
    latest, previous = sampler.series("a")[-1], sampler.series("a")[-2]
    assert previous["request_ms"] == 20.0 and previous["request_ms_max"] == 30.0
    assert latest["request_ms"] is None and latest["requests_per_s"] == 0
    assert sampler.series("c")[-2]["requests_per_s"] == 0   # over the bound: not kept
    assert "databases" not in sampler.series()[-1]
