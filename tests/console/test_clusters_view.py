"""The console's Clusters view in a real headless chromium (issue #16 item 4): the list of
clusters, one cluster's shards with their slot counts, ranges and sizes, the slot map bar,
an in-doubt transaction highlighted, the cluster's SQL box (by key, batch, every shard),
a click through to a shard's database page, at desktop and phone width; with no
JavaScript error in the browser console."""

from __future__ import annotations

import json

import pytest

from dolite.cluster.map import ShardMap
from dolite.pages.format import HEAD, Head, encode_record
from dolite.pages.twophase import prepare_key
from dolite.storage import open_storage
from tests.console.browser import PHONE, ConsoleLog, start_browser, viewport, wait_for
from tests.console.conftest import ADMIN
from tests.console.test_browser import by_id, css, go, login, visible_text

pytestmark = pytest.mark.timeout(120)
STUCK_TXN = "txn-console-test"


def plant_in_doubt(server, shard: str) -> None:
    """Leave a prepare record for the version after ``shard``'s head, as a coordinator that
    died between prepare and decision would (``GET /v1/clusters/NAME`` lists it)."""
    namespace = open_storage(server.storage)
    try:
        obj = namespace.object(shard)
        head = Head.decode(obj.get([HEAD])[HEAD], shard)
        key = prepare_key(head.version + 1)
        obj.put({key: encode_record(key, {"txn": STUCK_TXN, "coordinator": "stuck.txn", "owner": "gone:1:x",
                                          "expires": 0.0, "size": head.size, "time": head.time})})
    finally:
        namespace.close()


def drop_cluster_objects(server, names: list[str]) -> None:
    """Remove the clusters' map and coordinator objects, which ``GET /v1/databases`` lists
    as if they were databases (the other console tests must not see them)."""
    namespace = open_storage(server.storage)
    try:
        for name in names:
            for suffix in (".map", ".txn"):
                namespace.drop(name + suffix)
    finally:
        namespace.close()


@pytest.fixture(scope="module")
def console(server):
    with server.http(ADMIN) as http:
        for name, shards in (("bank", 3), ("stuck", 2)):
            answer = http.post("/v1/clusters", json={"name": name, "shards": shards})
            assert answer.status_code in (201, 409), answer.text
        http.post("/v1/clusters/bank/query", json={"all": True, "sql":
                  "CREATE TABLE IF NOT EXISTS accounts(id TEXT PRIMARY KEY, balance INTEGER)"}).raise_for_status()
        batch = [{"key": who, "sql": "INSERT OR REPLACE INTO accounts VALUES (?, 100)", "params": [who]}
                 for who in ("ann", "bob", "cyd", "dan")]
        http.post("/v1/clusters/bank/query", json={"batch": batch}).raise_for_status()
        assert http.get("/v1/clusters/stuck").status_code == 200  # opened before the record appears
    plant_in_doubt(server, "stuck.s1")
    driver = start_browser()
    log = ConsoleLog(driver)
    driver.get(server.url + "/#/clusters")  # not the Databases view: see test_databases_are_only_databases
    login(driver, ADMIN)
    wait_for(lambda: by_id(driver, "nav").is_displayed(), what="logged in")
    yield driver, log
    log.collect()
    driver.quit()
    drop_cluster_objects(server, ["bank", "stuck"])


def test_databases_are_only_databases(console, admin):
    listed = admin.get("/v1/databases").json()["databases"]
    assert "bank.s0" in listed and "bank.map" not in listed


def cells(row) -> dict[str, str]:
    return {td.get_attribute("data-label"): td.text for td in row.find_elements("css selector", "td")}


def test_clusters_list_shows_shards_and_in_doubt(console, tmp_path):
    driver, _ = console
    css(driver, 'nav a[href="#/clusters"]')[0].click()
    rows = wait_for(lambda: len(css(driver, "#cluster-table tbody tr")) >= 2 and css(driver, "#cluster-table tbody tr"),
                    what="the clusters table")
    by_name = {r.get_attribute("data-name"): r for r in rows}
    bank, stuck = cells(by_name["bank"]), cells(by_name["stuck"])
    assert bank["Shards"] == "3" and bank["In doubt"] == "none" and "KiB" in bank["Size"]
    assert stuck["Shards"] == "2" and stuck["In doubt"] == "1 transaction"
    assert "in-doubt" in by_name["stuck"].get_attribute("class").split()
    assert css(driver, 'nav a[aria-current="page"]')[0].text == "Clusters"
    driver.save_screenshot(str(tmp_path / "clusters.png"))


def test_one_cluster_shows_shards_slot_map_and_links_to_a_shard(console, tmp_path):
    driver, _ = console
    go(driver, "#/clusters")
    wait_for(lambda: css(driver, '#cluster-table tr[data-name="bank"] a'), what="the link")[0].click()
    wait_for(lambda: by_id(driver, "cluster-title").text == "bank", what="the cluster page")
    rows = wait_for(lambda: css(driver, "#shards-table tbody tr"), what="the shards")
    shown = [cells(r) for r in rows]
    assert [s["Shard"] for s in shown] == ["bank.s0", "bank.s1", "bank.s2"]
    assert [s["Slots"] for s in shown] == ["342 (33.4 %)", "341 (33.3 %)", "341 (33.3 %)"]
    assert [s["Slot ranges"] for s in shown] == ["0–341", "342–682", "683–1023"]
    assert all("KiB" in s["Size"] and s["In doubt"] == "none" for s in shown)
    bar = by_id(driver, "slot-map")
    assert len(bar.find_elements("css selector", "svg rect")) == 3
    assert "bank.s0: 342 slots" in bar.get_attribute("aria-label")
    assert not by_id(driver, "in-doubt").is_displayed()
    assert css(driver, 'nav a[aria-current="page"]')[0].text == "Clusters"
    driver.save_screenshot(str(tmp_path / "cluster.png"))
    css(driver, '#shards-table tr[data-name="bank.s1"] a')[0].click()
    wait_for(lambda: by_id(driver, "db-title").text == "bank.s1", what="the shard's database page")
    wait_for(lambda: css(driver, "#versions-table tbody tr"), what="the shard's versions")


def test_in_doubt_transaction_is_highlighted(console, tmp_path):
    driver, _ = console
    go(driver, "#/cluster/stuck")
    alert = wait_for(lambda: visible_text(driver, "in-doubt"), what="the in-doubt alert")
    assert alert.startswith(f"1 transaction in doubt: {STUCK_TXN} on stuck.s1")
    row = css(driver, '#shards-table tr[data-name="stuck.s1"]')[0]
    assert "in-doubt" in row.get_attribute("class").split() and cells(row)["In doubt"] == STUCK_TXN
    assert cells(css(driver, '#shards-table tr[data-name="stuck.s0"]')[0])["In doubt"] == "none"
    driver.save_screenshot(str(tmp_path / "in-doubt.png"))


def run_sql(driver, statements: str) -> None:
    text = by_id(driver, "sql-text")
    text.clear()
    text.send_keys(statements)
    by_id(driver, "sql-run").click()


def test_cluster_sql_by_key_batch_and_every_shard(console, tmp_path):
    from selenium.webdriver.support.ui import Select

    driver, _ = console
    go(driver, "#/cluster/bank")
    wait_for(lambda: css(driver, "#shards-table tbody tr"), what="the cluster page")
    run_sql(driver, "SELECT 1")
    assert "routing key" in wait_for(lambda: visible_text(driver, "sql-error"), what="the missing key")
    by_id(driver, "sql-key").send_keys("eve")
    run_sql(driver, "INSERT OR REPLACE INTO accounts VALUES ('eve', 7); SELECT id, balance FROM accounts WHERE id = 'eve'")
    home = ShardMap.initial("bank", 3).shard_for("eve")
    wait_for(lambda: visible_text(driver, "sql-summary").startswith(f"2 statements on {home}:"), what="the batch")
    assert [td.text for td in css(driver, "#sql-results tbody td")] == ["eve", "7"]
    Select(by_id(driver, "sql-mode")).select_by_value("all")
    assert not by_id(driver, "sql-key").is_displayed()
    run_sql(driver, "SELECT id FROM accounts ORDER BY id")
    wait_for(lambda: visible_text(driver, "sql-summary").startswith("1 statement on 3 shards: 5 rows"), what="fan-out")
    assert sorted(td.text for td in css(driver, "#sql-results tbody td")) == ["ann", "bob", "cyd", "dan", "eve"]
    run_sql(driver, "SELECT 1; SELECT 2")
    refusal = wait_for(lambda: visible_text(driver, "sql-error"), what="the refusal of a batch on every shard")
    assert "one statement at a time" in refusal and not css(driver, "#sql-results tr")
    run_sql(driver, "BEGIN")
    refused = wait_for(lambda: "HTTP 400" in visible_text(driver, "sql-error") and visible_text(driver, "sql-error"),
                       what="the service's refusal")
    assert refused.startswith("transaction_control (HTTP 400)")
    driver.save_screenshot(str(tmp_path / "cluster-sql.png"))


def test_cluster_pages_at_phone_width(console, tmp_path):
    driver, _ = console
    viewport(driver, *PHONE)
    try:
        for page, ready in (("#/clusters", "#cluster-table tbody tr"), ("#/cluster/bank", "#shards-table tbody tr")):
            go(driver, page)
            wait_for(lambda: css(driver, ready), what=page)
            width = driver.execute_script("return document.documentElement.scrollWidth")
            assert width <= PHONE[0], f"{page} scrolls sideways on a phone: {width}px"
            driver.save_screenshot(str(tmp_path / f"phone-{page.strip('#/').replace('/', '-')}.png"))
    finally:
        viewport(driver, 1280, 800)


def test_no_javascript_errors_in_the_browser_console(console):
    _, log = console
    errors = log.errors()
    assert not errors, json.dumps(errors, indent=1)


def test_slot_ranges_are_the_runs_of_each_shard():
    from dolite.server.clusters import slot_ranges

    moved = ShardMap.initial("c", 2).moved([0, 1, 5, 1023], "c.s1")
    assert slot_ranges(moved.slots, 0) == [[2, 4], [6, 511]]
    assert slot_ranges(moved.slots, 1) == [[0, 1], [5, 5], [512, 1023]]
    assert slot_ranges(moved.slots, 2) == []
