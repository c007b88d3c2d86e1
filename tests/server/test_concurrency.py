"""One object serializes its requests (no lost update); different objects run in parallel."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dolite.remote.client import Client
from tests.server.conftest import Server

N_CLIENTS, M_INCREMENTS = 8, 25
SLOW = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < ?) SELECT count(*) FROM r"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    path = tmp_path_factory.mktemp("conc")
    server = Server(f"lmdb:{path}/data", "--statement-timeout", "20", log=path / "server.log").start()
    yield server
    server.stop()


def test_n_clients_m_increments_lose_nothing(srv):
    with Client(srv.url, token=srv.token) as admin:
        admin.create("counter")
        admin.batch("counter", ["CREATE TABLE c(n INTEGER)", "INSERT INTO c VALUES (0)"])

    def worker(k: int) -> None:
        with Client(srv.url, token=srv.token) as client:
            for _ in range(M_INCREMENTS):
                if k % 2:
                    client.query("counter", "UPDATE c SET n = n + 1")
                else:  # read-modify-write across requests: a session keeps it atomic
                    with client.session("counter") as s:
                        n = s.query("SELECT n FROM c").rows[0][0]
                        s.query("UPDATE c SET n = ?", [n + 1])

    with ThreadPoolExecutor(N_CLIENTS) as pool:
        for f in [pool.submit(worker, k) for k in range(N_CLIENTS)]:
            f.result(timeout=120)
    with Client(srv.url, token=srv.token) as client:
        assert client.query("counter", "SELECT n FROM c").rows == [(N_CLIENTS * M_INCREMENTS,)]


def test_dbapi_connections_serialize_transactions(srv):
    import dolite

    setup = dolite.connect(f"{srv.url}/ledger", token=srv.token)
    setup.executescript("CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER);"
                        "INSERT INTO acct VALUES (1, 1000), (2, 1000);")

    def transfer(k: int) -> None:
        conn = dolite.connect(f"{srv.url}/ledger", token=srv.token)
        for _ in range(10):
            conn.execute("UPDATE acct SET bal = bal - 1 WHERE id = 1")  # opens the transaction
            (bal,) = conn.execute("SELECT bal FROM acct WHERE id = 2").fetchone()
            conn.execute("UPDATE acct SET bal = ? WHERE id = 2", [bal + 1])
            conn.commit()
        conn.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(transfer, range(4)))
    assert setup.execute("SELECT bal FROM acct ORDER BY id").fetchall() == [(960,), (1040,)]
    setup.close()


def _timed(client: Client, name: str, sql: str, params=()) -> tuple[float, float]:
    start = time.monotonic()
    client.query(name, sql, params)
    return start, time.monotonic()


def test_different_objects_run_in_parallel_one_object_in_order(srv):
    with Client(srv.url, token=srv.token) as client:
        for name in ("slow-a", "fast-b"):
            client.create(name)
        # Calibrate a statement that keeps object A busy for about a second.
        n = 200_000
        while True:
            start, end = _timed(client, "slow-a", SLOW, [n])
            if end - start > 0.8 or n > 50_000_000:
                break
            n *= 2
    results: dict[str, tuple[float, float]] = {}
    started = threading.Event()

    def run(key: str, name: str, sql: str, params=()) -> None:
        with Client(srv.url, token=srv.token) as c:
            if key != "slow":
                started.wait(5)
                time.sleep(0.2)  # let the slow statement get going
            else:
                started.set()
            results[key] = _timed(c, name, sql, params)

    threads = [threading.Thread(target=run, args=("slow", "slow-a", SLOW, [n])),
               threading.Thread(target=run, args=("other", "fast-b", "SELECT 1")),
               threading.Thread(target=run, args=("same", "slow-a", "SELECT 1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    slow_end, other_end, same_end = (results[k][1] for k in ("slow", "other", "same"))
    assert other_end < slow_end - 0.2, "a request to another object waited for the busy one"
    # Started 0.2 s into a statement of 0.8 s or more: without serialization it would be
    # back long before the slow one.
    assert same_end >= slow_end - 0.3, "a second request to a busy object did not wait its turn"
