"""`dolite cloudflare bench` at tiny sizes: the result's shape and sanity, never its timings."""

from __future__ import annotations

import json
import math
import uuid

import httpx
import pytest

from dolite.cloudflare.bench import DoBenchSizes, run_do_bench
from dolite.cloudflare.dev import start_workerd

TINY = DoBenchSizes(rows=60, commits=5, reads=10, fill_batch=25)


def test_run_do_bench_reports_positive_figures():
    result = run_do_bench(quick=True, sizes=TINY)
    json.dumps(result)  # --json must be able to print it
    assert result["sizes"]["rows"] == 60
    d, n = result["dolite"], result["native"]
    for key in ("commits_per_s", "cold_reads_per_s", "hot_reads_per_s", "bytes_sent_per_commit"):
        assert math.isfinite(d[key]) and d[key] > 0, key
    for key in ("commits_per_s", "reads_per_s", "bytes_sent_per_commit"):
        assert math.isfinite(n[key]) and n[key] > 0, key
    # A durable commit needs at least one request to the object; native is one by construction.
    assert d["round_trips_per_commit"] >= 1
    assert n["round_trips_per_commit"] == 1 and n["round_trips_per_read"] == 1
    assert d["round_trips_per_hot_read"] >= 0 and d["open_round_trips"] >= 1
    assert set(result["ratios"]) == {"commits_per_s", "cold_reads_per_s", "hot_reads_per_s"}
    assert all(v > 0 for v in result["ratios"].values())


@pytest.fixture(scope="module")
def bench_workerd(tmp_path_factory):
    """The Worker's benchmark build (config "bench"), which adds the native SQL route."""
    with start_workerd(port=0, data_dir=tmp_path_factory.mktemp("bench-do"), secret=uuid.uuid4().hex,
                       config="bench") as handle:
        yield handle


def error_code(reply: httpx.Response) -> str:
    return reply.json()["error"]["code"]


def test_native_sql_baseline_needs_the_secret_and_is_atomic(bench_workerd):
    workerd = bench_workerd
    path = f"{workerd.url}/v1/native/test-native/sql"
    assert error_code(httpx.post(path, json={"sql": "SELECT 1"})) == "unauthorized"
    assert httpx.post(path, json={"sql": "SELECT 1"}, headers={"authorization": "Bearer nope"}).status_code == 401
    client = httpx.Client(headers={"authorization": f"Bearer {workerd.secret}"})
    assert client.post(path, json={"sql": "CREATE TABLE IF NOT EXISTS a(x)"}).status_code == 200
    assert client.post(path, json={"sql": "DELETE FROM a"}).status_code == 200
    # A batch is one transaction: a failing statement rolls back the ones before it.
    bad = client.post(path, json={"batch": [{"sql": "INSERT INTO a VALUES (?)", "params": [1]},
                                            {"sql": "INSERT INTO nowhere VALUES (1)"}]})
    assert bad.status_code == 400 and error_code(bad) == "bad_request" and "nowhere" in bad.text
    good = client.post(path, json={"batch": [{"sql": "INSERT INTO a VALUES (?)", "params": [2]},
                                             {"sql": "SELECT x FROM a"}]})
    assert good.json()["rows"] == [[2]]
    assert client.post(path, content=b"not json").status_code == 400
    assert error_code(client.post(path, json={"sql": "SELECT 1", "parms": [1]})) == "bad_request"
    assert error_code(client.get(path)) == "method_not_allowed"
    assert error_code(client.post(path, content=b" " * ((8 << 20) + 1))) == "payload_too_large"
    # The storage routes are the storage Worker's own.
    assert error_code(client.get(f"{workerd.url}/v1/objects/x/put")) == "method_not_allowed"
