"""Objects load on first use and are evicted when idle or over capacity."""

from __future__ import annotations

import re
import time

from tests.server.conftest import Server


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{name}(?:{{[^}}]*{re.escape(labels)}[^}}]*}})? (\S+)$" if labels else rf"^{name}(?:{{[^}}]*}})? (\S+)$"
    return sum(float(m) for m in re.findall(pattern, text, re.MULTILINE))


def fill(http, count: int) -> None:
    for i in range(count):
        assert http.post("/v1/databases", json={"name": f"db{i}"}).status_code == 201
        http.post(f"/v1/databases/db{i}/query", json={"sql": "CREATE TABLE t(v)"})


def test_capacity_eviction(tmp_path):
    srv = Server(f"lmdb:{tmp_path}/data", "--idle-timeout", "60", "--max-objects", "3").start()
    try:
        with srv.http() as http:
            fill(http, 6)
            time.sleep(1.2)
            text = http.get("/metrics").text
            assert metric(text, "dolite_objects_loaded") == 3
            assert metric(text, "dolite_object_evictions_total", 'reason="capacity"') >= 3
    finally:
        srv.stop()


def test_idle_eviction_and_transparent_reload(tmp_path):
    srv = Server(f"lmdb:{tmp_path}/data", "--idle-timeout", "0.5").start()
    try:
        with srv.http() as http:
            fill(http, 4)
            assert metric(http.get("/metrics").text, "dolite_object_loads_total") >= 4
            time.sleep(1.5)
            text = http.get("/metrics").text
            assert metric(text, "dolite_objects_loaded") == 0
            assert metric(text, "dolite_object_evictions_total", 'reason="idle"') >= 4
            for i in range(4):  # evicted objects reload transparently, with their data
                r = http.post(f"/v1/databases/db{i}/query", json={"sql": "SELECT count(*) FROM t"})
                assert r.json()["rows"] == [[0]]
            assert metric(http.get("/metrics").text, "dolite_chunks_read_total") > 0
    finally:
        srv.stop()
