"""The console in a real headless chromium (issue #16): log in, see the databases, open
one, see its charts render with data, check it, restore and fork, run queries, see errors,
see a read-only token refused an admin action, at desktop and phone width, by keyboard;
with no JavaScript error in the browser console. Assertions are on the DOM; screenshots go
to each test's temporary folder."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.console.browser import PHONE, ConsoleLog, start_browser, viewport, wait_for
from tests.console.conftest import ADMIN, READER, corrupt_a_chunk, make_database

pytestmark = pytest.mark.timeout(120)
DB = "shop"


@pytest.fixture(scope="module")
def console(server):
    make_database(server.http(ADMIN), DB, rows=30)
    make_database(server.http(ADMIN), "notes", rows=2)
    driver = start_browser()
    log = ConsoleLog(driver)
    driver.get(server.url + "/")
    yield driver, log
    log.collect()
    driver.quit()


def by_id(driver, id_):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, id_)


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def visible_text(driver, id_) -> str:
    el = by_id(driver, id_)
    return el.text if el.is_displayed() else ""


def login(driver, token: str) -> None:
    """Log out if logged in, then log in with ``token`` typed and submitted by keyboard."""
    from selenium.webdriver.common.keys import Keys

    if by_id(driver, "logout").is_displayed():
        by_id(driver, "logout").click()
    field = wait_for(lambda: by_id(driver, "token").is_displayed() and by_id(driver, "token"), what="login box")
    field.clear()
    field.send_keys(token, Keys.ENTER)


def go(driver, hash_: str) -> None:
    driver.execute_script("location.hash = arguments[0]", hash_)


def test_login_refuses_a_bad_token_then_lists_databases(console, tmp_path):
    driver, _ = console
    login(driver, "not-a-token-at-all")
    wait_for(lambda: "not valid" in visible_text(driver, "login-error"), what="refusal of a bad token")
    login(driver, ADMIN)
    rows = wait_for(lambda: css(driver, "#db-table tbody tr"), what="the databases table")
    names = [r.get_attribute("data-name") for r in rows]
    assert not by_id(driver, "login").is_displayed() and by_id(driver, "nav").is_displayed()
    assert DB in names and "notes" in names
    shop = css(driver, f'#db-table tr[data-name="{DB}"] td')
    cells = {td.get_attribute("data-label"): td.text for td in shop}
    assert cells["Version"] == "3" and int(cells["Pages"]) >= 2 and cells["Health"] == "unchecked"
    assert "KiB" in cells["Size"] and cells["Lease holder"] not in ("", "—")
    assert cells["Backup lag"].startswith("3 versions behind")  # nothing pushed to the target yet
    driver.save_screenshot(str(tmp_path / "databases.png"))


def test_databases_sort_and_filter_by_keyboard(console):
    from selenium.webdriver.common.keys import Keys

    driver, _ = console
    go(driver, "#/")
    wait_for(lambda: len(css(driver, "#db-table tbody tr")) >= 2, what="the databases table")
    by_id(driver, "db-filter").send_keys("note")
    wait_for(lambda: [r.get_attribute("data-name") for r in css(driver, "#db-table tbody tr")] == ["notes"],
             what="the filter")
    by_id(driver, "db-filter").clear()
    by_id(driver, "db-filter").send_keys(Keys.BACKSPACE)  # an input event for the cleared field
    order = lambda: [r.get_attribute("data-name") for r in css(driver, "#db-table tbody tr")]  # noqa: E731
    sort = lambda key: css(driver, f'button[data-sort="{key}"]')[0]  # noqa: E731
    sort("size").send_keys(Keys.ENTER)  # buttons in the header: keyboard sortable
    wait_for(lambda: sort("size").find_element("xpath", "..").get_attribute("aria-sort") == "ascending",
             what="sorted by size")
    assert driver.switch_to.active_element.get_attribute("data-sort") == "size"  # focus stays
    sort("name").send_keys(Keys.ENTER)
    wait_for(lambda: order() == sorted(order()), what="sorted by name")
    sort("name").send_keys(Keys.ENTER)
    wait_for(lambda: order() == sorted(order(), reverse=True) and order()[0] == DB, what="by name, descending")


def load(server, name: str, seconds: float, until=lambda: False) -> None:
    """Commit to ``name`` (seen by the server's sampler, every 2 s) for ``seconds`` or until ``until()``."""
    with server.http(ADMIN) as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            http.post(f"/v1/databases/{name}/query", json={"sql": "UPDATE items SET price = price + 1 WHERE id = 1"})
            time.sleep(0.05 + 0.1 * (int(time.monotonic()) % 3))


def test_one_database_shows_versions_schema_and_charts_with_data(console, server, tmp_path):
    driver, _ = console
    go(driver, "#/")
    link = wait_for(lambda: css(driver, f'#db-table tr[data-name="{DB}"] a'), what="the link")[0]
    link.click()
    wait_for(lambda: by_id(driver, "db-title").text == DB, what="the database page")
    wait_for(lambda: len(css(driver, "#versions-table tbody tr")) == 3, what="three versions")
    assert css(driver, "#versions-table tbody tr")[0].get_attribute("data-version") == "3"
    schema = wait_for(lambda: css(driver, "#schema-table tbody tr"), what="the schema")
    assert [td.text for td in schema[0].find_elements("css selector", "td")] == ["items", "table", "items", "30"]
    assert [td.text for td in schema[1].find_elements("css selector", "td")][:2] == ["items_name", "index"]
    def drawn(chart: str) -> bool:
        figure = by_id(driver, chart)
        return float(figure.get_attribute("data-max") or 0) > 0 and bool(figure.find_elements("css selector",
                                                                                                "svg polyline"))

    load(server, DB, 20, until=lambda: drawn("chart-commits") and drawn("chart-latency"))
    for chart in ("chart-commits", "chart-latency"):
        assert drawn(chart), chart
        assert "no data" not in by_id(driver, chart).get_attribute("aria-label")
    assert by_id(driver, "versions-chart").find_elements("css selector", "svg polyline")
    driver.save_screenshot(str(tmp_path / "database.png"))


def test_check_restore_and_fork_as_admin(console, server, tmp_path):
    driver, _ = console
    go(driver, f"#/db/{DB}")
    wait_for(lambda: by_id(driver, "db-title").text == DB and css(driver, "#versions-table tbody tr"), what="page")
    by_id(driver, "check-button").click()
    wait_for(lambda: visible_text(driver, "check-result").startswith("OK"), what="the check's verdict")
    wait_for(lambda: "Healthok" in by_id(driver, "db-info").text.replace("\n", ""), what="health ok")
    version = css(driver, '#versions-table tr[data-version="2"] button.fork')[0]
    version.click()
    field = wait_for(lambda: by_id(driver, "confirm-input").is_displayed() and by_id(driver, "confirm-input"))
    assert field.get_attribute("value") == f"{DB}-v2"
    with server.http(ADMIN) as http:
        http.delete(f"/v1/databases/{DB}-v2")
    by_id(driver, "confirm-ok").click()
    wait_for(lambda: f"Forked version 2 into {DB}-v2" in visible_text(driver, "action-result"), what="fork")
    css(driver, '#versions-table tr[data-version="2"] button.restore')[0].click()
    wait_for(lambda: by_id(driver, "confirm").is_displayed())
    by_id(driver, "confirm-ok").click()
    wait_for(lambda: f"Restored {DB} to version 2" in visible_text(driver, "action-result"), what="restore")
    driver.save_screenshot(str(tmp_path / "restored.png"))
    with server.http(ADMIN) as http:
        count = lambda db: http.post(f"/v1/databases/{db}/query",  # noqa: E731
                                     json={"sql": "SELECT count(*) FROM items"}).json()["rows"][0][0]
        assert count(DB) == 15 and count(f"{DB}-v2") == 15


def test_sql_box_pages_exports_and_shows_errors(console, tmp_path):
    driver, _ = console
    go(driver, f"#/sql/{DB}")
    text = wait_for(lambda: by_id(driver, "sql-text"))
    assert driver.switch_to.active_element == text  # the box has the focus
    text.send_keys("INSERT INTO items(name) VALUES ('a;b'); SELECT id, name FROM items ORDER BY id")
    by_id(driver, "sql-run").click()
    wait_for(lambda: by_id(driver, "sql-page").text == "Page 1 of 1", what="the results")
    assert len(css(driver, "#sql-results tbody tr")) == 16
    assert "2 statements" in by_id(driver, "sql-summary").text
    text.clear()
    text.send_keys("WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 60) SELECT v FROM n")
    by_id(driver, "sql-run").click()
    wait_for(lambda: by_id(driver, "sql-page").text == "Page 1 of 3", what="paginated results")
    by_id(driver, "sql-next").click()
    first = css(driver, "#sql-results tbody tr td")[0].text
    assert first == "26" and by_id(driver, "sql-page").text == "Page 2 of 3"
    csv = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "import('/console/sql.js').then((m) => done(m.toCSV(['v', 's'], [[1, 'x,\"y'], [null, {type: 'integer', value: '9007199254740993'}]])));")
    assert csv == 'v,s\r\n1,"x,""y"\r\n,9007199254740993\r\n'
    by_id(driver, "sql-csv").click()  # the download itself is the browser's; it must not raise
    text.clear()
    text.send_keys("SELEC nothing")
    by_id(driver, "sql-run").click()
    error = wait_for(lambda: visible_text(driver, "sql-error"), what="the SQL error")
    assert "HTTP 400" in error and by_id(driver, "sql-error").get_attribute("data-code") == "sql_error"
    assert not css(driver, "#sql-results tr") and not by_id(driver, "sql-next").is_displayed()
    driver.save_screenshot(str(tmp_path / "sql-error.png"))


def test_read_only_token_is_refused_admin_actions(console, tmp_path):
    driver, _ = console
    go(driver, "#/")
    login(driver, READER)
    wait_for(lambda: css(driver, "#db-table tbody tr"), what="the databases table")
    go(driver, f"#/db/{DB}")
    wait_for(lambda: by_id(driver, "db-title").text == DB and css(driver, "#versions-table tbody tr"), what="page")
    by_id(driver, "check-button").click()
    refusal = wait_for(lambda: "HTTP" in visible_text(driver, "check-result") and visible_text(driver, "check-result"),
                       what="the refusal")
    assert refusal.startswith("forbidden (HTTP 403)") and "admin" in refusal
    css(driver, '#versions-table tr[data-version="1"] button.restore')[0].click()
    wait_for(lambda: by_id(driver, "confirm").is_displayed())
    by_id(driver, "confirm-ok").click()
    refused = wait_for(lambda: visible_text(driver, "action-result"), what="the restore refusal")
    assert refused.startswith("forbidden (HTTP 403)")
    go(driver, f"#/sql/{DB}")
    wait_for(lambda: by_id(driver, "sql-text")).send_keys("DELETE FROM items")
    by_id(driver, "sql-run").click()
    assert "HTTP 403" in wait_for(lambda: visible_text(driver, "sql-error"), what="the write refusal")
    driver.save_screenshot(str(tmp_path / "read-only.png"))


def test_health_view_and_phone_width(console, tmp_path):
    driver, _ = console
    go(driver, "#/health")
    facts = wait_for(lambda: by_id(driver, "health-facts").text, what="the health facts")
    assert "Storage\nok" in facts and "dolite_commits_total" in by_id(driver, "metrics").text
    assert not by_id(driver, "health-banner").is_displayed()
    from selenium.webdriver.common.keys import Keys

    css(driver, ".skip")[0].send_keys(Keys.ENTER)  # the skip link moves focus, not the route
    assert driver.switch_to.active_element.get_attribute("id") == "main"
    assert driver.execute_script("return location.hash") == "#/health"
    viewport(driver, *PHONE)
    try:
        for page, ready in (("#/", "#db-table tbody tr"), (f"#/db/{DB}", "#versions-table tbody tr"),
                            (f"#/sql/{DB}", "#sql-text")):
            go(driver, page)
            wait_for(lambda: css(driver, ready), what=page)
            width = driver.execute_script("return document.documentElement.scrollWidth")
            assert width <= PHONE[0], f"{page} scrolls sideways on a phone: {width}px"
            driver.save_screenshot(str(tmp_path / f"phone-{page.strip('#/').replace('/', '-') or 'home'}.png"))
    finally:
        viewport(driver, 1280, 800)


def test_banner_names_a_corrupt_database_until_it_is_dropped(console, server, tmp_path):
    driver, _ = console
    with server.http(ADMIN) as http:
        make_database(http, "broken", rows=30)
        corrupt_a_chunk(server, "broken")
        assert http.post("/v1/databases/broken/check").json()["ok"] is False
        go(driver, "#/")
        driver.refresh()
        banner = wait_for(lambda: by_id(driver, "health-banner").is_displayed() and by_id(driver, "health-banner"),
                          what="the health banner")
        assert banner.text == "Corrupt: broken (found by check)"
        row = wait_for(lambda: css(driver, '#db-table tr[data-name="broken"] td[data-label="Health"]'))[0]
        assert row.text == "corrupt"
        driver.save_screenshot(str(tmp_path / "banner.png"))
        http.delete("/v1/databases/broken")
    driver.refresh()
    wait_for(lambda: css(driver, "#db-table tbody tr"), what="the databases table")
    wait_for(lambda: not by_id(driver, "health-banner").is_displayed(), what="the banner to go")


@pytest.mark.skipif(not os.environ.get("DOLITE_CONSOLE_SCREENSHOT"), reason="set DOLITE_CONSOLE_SCREENSHOT=docs/console.png")
def test_docs_screenshot(console, server):
    """Refreshes the screenshot of docs/CONSOLE.md: a database page after 30 s of load."""
    driver, _ = console
    go(driver, "#/")
    login(driver, ADMIN)
    go(driver, "#/db/notes")
    wait_for(lambda: by_id(driver, "db-title").text == "notes", what="the database page")
    by_id(driver, "check-button").click()
    load(server, "notes", 30)
    viewport(driver, 1280, 1000)
    try:
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(os.environ["DOLITE_CONSOLE_SCREENSHOT"])
    finally:
        viewport(driver, 1280, 800)


def test_no_javascript_errors_in_the_browser_console(console):
    driver, log = console
    errors = log.errors()
    assert not errors, json.dumps(errors, indent=1)
    driver.execute_script("setTimeout(() => { throw new Error('deliberate'); })")  # the check can fail
    wait_for(lambda: any("deliberate" in e["message"] for e in log.errors()), what="a thrown error to be seen")
