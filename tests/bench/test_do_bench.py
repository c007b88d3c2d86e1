"""`dolite cloudflare bench` at tiny sizes: the result's shape and sanity, never its timings;
the Worker's billed-row counts; the native baseline's guarded batches; the RTT proxy."""

from __future__ import annotations

import json
import math
import socket
import time
import uuid

import httpx
import pytest

from dolite.cloudflare.bench import DoBenchSizes, run_do_bench
from dolite.cloudflare.bench_clients import parse_rows_header
from dolite.cloudflare.cost import MIX, PRICE_PER_MILLION, Usage, cost_per_million, mixed
from dolite.cloudflare.dev import start_workerd
from dolite.cloudflare.rtt_proxy import RttProxy
from dolite.storage.durable_object import encode_records

# Enough rows that a cold scan needs chunks beyond what opening the database prefetched.
TINY = DoBenchSizes(rows=3_000, commits=5, reads=10, txns=4, batches=2, scans=2, fill_batch=1_000)
WORKLOADS = {"commit", "txn_100_rows", "interactive_txn", "point_read", "point_read_hot", "full_scan",
             "full_scan_hot"}


def priced(figures: dict) -> float:
    """The cost per million transactions from a side's counts, at the published prices."""
    # each round trip is one Worker request ($0.30) and one Durable Object request ($0.15)
    return (figures["rows_written"] * 1.00 + figures["rows_read"] * 0.001 + figures["round_trips"] * 0.45)


def test_run_do_bench_reports_counts_and_costs_of_both_sides():
    result = run_do_bench(quick=True, sizes=TINY)
    json.dumps(result)  # --json must be able to print it
    assert result["sizes"]["rows"] == 3_000 and result["rtt_ms"] == 0
    assert set(result["workloads"]) == WORKLOADS == set(result["ratios"])
    for workload, sides in result["workloads"].items():
        for side, figures in sides.items():
            assert math.isfinite(figures["per_s"]) and figures["per_s"] > 0, (workload, side)
            assert figures["cost_per_million"] == pytest.approx(priced(figures)), (workload, side)
            assert result["cost_per_million"][workload][side] == figures["cost_per_million"]
    w = result["workloads"]
    # Rows are counted in the Worker: every dolite commit writes at least the head, which
    # holds the page the inserts rewrite (pages/inline.py); a page split writes more.
    assert 1 < w["commit"]["dolite"]["rows_written"] < 2 and w["commit"]["native"]["rows_written"] >= 1
    assert w["txn_100_rows"]["native"]["rows_written"] >= 100
    assert w["interactive_txn"]["native"]["rows_written"] >= 2
    assert w["interactive_txn"]["native"]["round_trips"] == 2  # read, then one guarded batch
    assert w["full_scan"]["native"]["rows_read"] >= 3_000 and w["full_scan"]["dolite"]["rows_read"] >= 1
    assert w["full_scan_hot"]["dolite"]["rows_read"] == 0  # every page is in the cache by then
    assert w["point_read"]["native"]["round_trips"] == 1
    assert w["point_read_hot"]["dolite"]["round_trips"] == 0  # an exclusive connection's cache
    assert result["round_trips_per_commit"]["dolite"] >= 1 and result["round_trips_per_commit"]["native"] == 1
    assert result["rows_written_per_commit"] == {s: f["rows_written"] for s, f in w["commit"].items()}
    cost = result["cost_per_million"]
    assert cost["prices_usd_per_million"] == PRICE_PER_MILLION
    for side in ("dolite", "native"):
        expected = sum(share * priced(w[kind][side]) for kind, share in MIX.items())
        assert cost["mixed"][side] == pytest.approx(expected)
    for kind in ("commit", "txn_100_rows", "interactive_txn"):  # the collection's share, within
        d = w[kind]["dolite"]
        assert 0 < d["gc"]["round_trips"] < d["round_trips"] and 0 < d["gc"]["ms"], kind
        assert 0 < d["gc"]["rows_written"] < d["rows_written"] and d["gc"]["per_s_with_drain"] < d["per_s"], kind
    assert "gc" not in w["point_read"]["dolite"]
    assert result["dolite_details"]["responses_without_row_counts"] == 0
    assert set(result["goals"]) >= {"commit", "interactive_txn", "rows_written_per_commit", "cost_mixed"}
    assert result["goals"]["cost_txn_100_rows"]["met"] == (cost["txn_100_rows"]["dolite"]
                                                           <= cost["txn_100_rows"]["native"])


def test_run_do_bench_with_an_injected_round_trip_delays_both_sides():
    result = run_do_bench(quick=True, rtt_ms=20, sizes=TINY)
    assert result["rtt_ms"] == 20 and "20 ms round trip injected" in result["environment"]["runtime"]
    w = result["workloads"]
    # Every request on a transaction's path pays the delay, so no side can do more than
    # 1 / 20 ms of those a second (dolite's garbage collection runs beside that path).
    on_path = {"dolite": w["commit"]["dolite"]["round_trips"] - w["commit"]["dolite"]["gc"]["round_trips"],
               "native": w["commit"]["native"]["round_trips"]}
    for side in ("dolite", "native"):
        assert on_path[side] >= 1 and w["commit"][side]["per_s"] <= 1000 / 20 / on_path[side]
    assert w["interactive_txn"]["native"]["per_s"] <= 1000 / 20 / 2


def test_cost_is_the_published_prices_times_the_counts():
    assert PRICE_PER_MILLION == {"rows_written": 1.00, "rows_read": 0.001, "object_requests": 0.15,
                                 "worker_requests": 0.30}
    assert cost_per_million(Usage(requests=1, rows_read=10, rows_written=3)) == pytest.approx(3.46)
    assert Usage(4, 8, 2).per(2) == Usage(2, 4, 1)
    with pytest.raises(ValueError):
        Usage(1, 1, 1).per(0)
    each = {kind: Usage(1, 0, 0) for kind in MIX}
    assert mixed(each).requests == pytest.approx(1)
    with pytest.raises(KeyError, match="commit"):
        mixed({"point_read": Usage()})


def test_rows_header_parsing_refuses_what_it_cannot_read():
    assert parse_rows_header("read=3,written=0") == (3, 0)
    for bad in ("read=1", "read=1,written=2,x=3", "read=a,written=1", ""):
        with pytest.raises(ValueError):
            parse_rows_header(bad)


# -- against one workerd (the benchmark build, config "bench") --------------------------------


@pytest.fixture(scope="module")
def bench_workerd(tmp_path_factory):
    """The Worker's benchmark build (config "bench"), which adds the native SQL route."""
    with start_workerd(port=0, data_dir=tmp_path_factory.mktemp("bench-do"), secret=uuid.uuid4().hex,
                       config="bench") as handle:
        yield handle


@pytest.fixture
def client(bench_workerd):
    with httpx.Client(base_url=bench_workerd.url,
                      headers={"authorization": f"Bearer {bench_workerd.secret}"}) as c:
        yield c


def error_code(reply: httpx.Response) -> str:
    return reply.json()["error"]["code"]


def rows(reply: httpx.Response) -> tuple[int, int]:
    return parse_rows_header(reply.headers["x-dolite-rows"])


def test_storage_worker_reports_the_rows_each_call_reads_and_writes(client):
    path = f"/v1/objects/rows-{uuid.uuid4().hex[:8]}/"
    first = client.post(path + "put", content=encode_records([("a", b"1"), ("b", b"2"), ("c", b"3")]))
    assert first.status_code == 204 and rows(first) == (0, 4)  # 3 keys + the name in the registry
    assert rows(client.post(path + "put", content=encode_records([("d", b"4")]))) == (0, 1)
    assert rows(client.post(path + "get", content=encode_records([("a", None), ("zz", None)]))) == (2, 0)
    assert rows(client.get(path + "list", params={"limit": "3"})) == (3, 0)
    commit = encode_records([("a", b"9"), ("e", b"5")]) + encode_records([("d", None)]) \
        + encode_records([("b", b"2")])
    assert rows(client.post(path + "commit", content=commit)) == (1, 3)
    refused = encode_records([("a", b"0")]) + encode_records([]) + encode_records([("b", b"changed")])
    conflict = client.post(path + "commit", content=refused)
    assert conflict.status_code == 409 and rows(conflict) == (1, 0)
    assert rows(client.post(path + "delete", content=encode_records([("e", None)]))) == (0, 1)
    # A delete writes a row only where a key was there to delete (a repeated key once).
    gone = encode_records([("a", None), ("e", None), ("a", None)])
    assert rows(client.post(path + "delete", content=gone)) == (0, 1)
    assert rows(client.post(path + "commit", content=encode_records([("f", b"6")]) + gone
                            + encode_records([]))) == (0, 1)
    drop = client.post(path + "drop")
    assert drop.status_code == 204 and "x-dolite-rows" not in drop.headers  # deleteAll reports no count


def test_native_sql_baseline_needs_the_secret_and_is_atomic(bench_workerd, client):
    path = f"{bench_workerd.url}/v1/native/test-native/sql"
    assert error_code(httpx.post(path, json={"sql": "SELECT 1"})) == "unauthorized"
    assert httpx.post(path, json={"sql": "SELECT 1"}, headers={"authorization": "Bearer nope"}).status_code == 401
    assert client.post(path, json={"sql": "CREATE TABLE IF NOT EXISTS a(x)"}).status_code == 200
    assert client.post(path, json={"sql": "DELETE FROM a"}).status_code == 200
    # A batch is one transaction: a failing statement rolls back the ones before it.
    bad = client.post(path, json={"batch": [{"sql": "INSERT INTO a VALUES (?)", "params": [1]},
                                            {"sql": "INSERT INTO nowhere VALUES (1)"}]})
    assert bad.status_code == 400 and error_code(bad) == "bad_request" and "nowhere" in bad.text
    good = client.post(path, json={"batch": [{"sql": "INSERT INTO a VALUES (?)", "params": [2]},
                                             {"sql": "SELECT x FROM a"}]})
    assert good.json()["rows"] == [[2]] and good.json()["rowsWritten"] >= 1
    assert client.post(path, content=b"not json").status_code == 400
    assert error_code(client.post(path, json={"sql": "SELECT 1", "parms": [1]})) == "bad_request"
    assert error_code(client.get(path)) == "method_not_allowed"
    assert error_code(client.post(path, content=b" " * ((8 << 20) + 1))) == "payload_too_large"
    # The storage routes are the storage Worker's own.
    assert error_code(client.get(f"{bench_workerd.url}/v1/objects/x/put")) == "method_not_allowed"


def test_native_guarded_batch_rolls_back_when_the_guard_fails(bench_workerd, client):
    path = f"{bench_workerd.url}/v1/native/test-guard-{uuid.uuid4().hex[:8]}/sql"
    client.post(path, json={"batch": [{"sql": "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER)"},
                                      {"sql": "INSERT INTO t VALUES (1, 10), (2, 20)"}]})
    guarded = "UPDATE t SET n = ? WHERE id = 1 AND n = ? RETURNING id"
    stale = client.post(path, json={"batch": [
        {"sql": "UPDATE t SET n = n + 1 WHERE id = 2"},
        {"sql": guarded, "params": [5, 999], "expectRows": 1}]})
    assert stale.status_code == 409 and error_code(stale) == "conflict"
    alone = client.post(path, json={"sql": "UPDATE t SET n = 0 WHERE id = 2 RETURNING id", "expectRows": 0})
    assert alone.status_code == 409  # a single guarded statement is undone too
    assert client.post(path, json={"sql": "SELECT n FROM t ORDER BY id"}).json()["rows"] == [[10], [20]]
    fresh = client.post(path, json={"batch": [{"sql": guarded, "params": [5, 10], "expectRows": 1}]})
    assert fresh.status_code == 200 and fresh.json()["rows"] == [[1]]
    assert error_code(client.post(path, json={"sql": "SELECT 1", "expectRows": -1})) == "bad_request"


def test_rtt_proxy_adds_at_least_the_delay_and_closes_on_exit(bench_workerd):
    with RttProxy(bench_workerd.host, bench_workerd.port, rtt_ms=30) as proxy:
        with httpx.Client(base_url=f"http://127.0.0.1:{proxy.port}") as through:
            assert through.get("/v1/health").text == "ok"  # connection set up
            t0 = time.perf_counter()
            assert through.get("/v1/health").text == "ok"
            assert time.perf_counter() - t0 >= 0.030
        port = proxy.port
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(ValueError):
        RttProxy("127.0.0.1", 1, rtt_ms=-1)


def test_cli_refuses_a_negative_rtt():
    from typer.testing import CliRunner

    from dolite.cloudflare import cli

    result = CliRunner().invoke(cli.app, ["bench", "--rtt-ms", "-1"])
    assert result.exit_code == 2 and "rtt-ms" in result.output
