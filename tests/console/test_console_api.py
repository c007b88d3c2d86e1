"""The JSON routes the console uses (docs/SERVICE.md, "Console and operations"), over a real server."""

from __future__ import annotations

import time

import httpx

from tests.console.conftest import corrupt_a_chunk, make_database


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_status_reports_info_and_health(admin):
    make_database(admin, "api-status", rows=4)
    info = admin.get("/v1/databases/api-status/status").json()
    assert info["name"] == "api-status" and info["version"] == 3 and info["pages"] >= 2
    assert info["health"] == "unchecked" and info["lease"]["owner"]
    _error(admin.get("/v1/databases/no-such-db/status"), 404, "database_not_found")


def test_versions_list_commits_newest_first(admin):
    make_database(admin, "api-versions", rows=6)
    listed = admin.get("/v1/databases/api-versions/versions").json()
    assert listed["current"] == 3
    assert [v["version"] for v in listed["versions"]] == [3, 2, 1]
    assert all(v["size"] > 0 and v["chunks_written"] >= 1 and v["time"] > 0 for v in listed["versions"])


def test_check_is_admin_only_and_sets_health(admin, reader):
    make_database(admin, "api-check", rows=4)
    _error(reader.post("/v1/databases/api-check/check"), 403, "forbidden")
    report = admin.post("/v1/databases/api-check/check").json()
    assert report["ok"] is True and report["integrity"] == ["ok"], report
    assert report["chunks_checked"] >= 1 and report["records_checked"] >= 1
    assert admin.get("/v1/databases/api-check/status").json()["health"] == "ok"


def test_restore_in_place_and_fork(admin, reader):
    make_database(admin, "api-restore", rows=10)
    count = lambda db: admin.post(f"/v1/databases/{db}/query",  # noqa: E731
                                  json={"sql": "SELECT count(*) FROM items"}).json()["rows"][0][0]
    assert count("api-restore") == 10
    _error(reader.post("/v1/databases/api-restore/restore", json={"version": 2}), 403, "forbidden")
    done = admin.post("/v1/databases/api-restore/restore", json={"version": 2})
    assert done.status_code == 200 and done.json()["version"] == 4
    assert count("api-restore") == 5
    admin.delete("/v1/databases/api-restore-fork")
    forked = admin.post("/v1/databases/api-restore/restore", json={"version": 3, "into": "api-restore-fork"})
    assert forked.status_code == 201, forked.text
    assert count("api-restore-fork") == 10 and count("api-restore") == 5
    _error(admin.post("/v1/databases/api-restore/restore", json={"version": 3, "into": "api-restore-fork"}),
           409, "already_exists")


def test_restore_refuses_bad_bodies_and_changes_nothing(admin):
    make_database(admin, "api-restore-bad", rows=2)
    url = "/v1/databases/api-restore-bad/restore"
    for body in ({}, {"version": "2"}, {"version": True}, {"version": 0}, {"version": 2, "at": 1},
                 {"version": 2, "into": 7}, [2]):
        _error(admin.post(url, json=body), 400, "bad_request")
    _error(admin.post(url, json={"version": 2, "into": "../x"}), 400, "invalid_name")
    _error(admin.post(url, json={"version": 99}), 409, "snapshot_expired")
    assert admin.get("/v1/databases/api-restore-bad/status").json()["version"] == 3


def test_stats_ring_buffer_samples_load(admin, reader):
    make_database(admin, "api-stats")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        admin.post("/v1/databases/api-stats/query", json={"sql": "INSERT INTO items(name) VALUES ('x')"})
        samples = reader.get("/v1/stats", params={"database": "api-stats"}).json()["samples"]
        if any(s["commits_per_s"] > 0 and s["request_ms"] for s in samples):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no sample saw the commits: {samples[-3:]}")
    whole = reader.get("/v1/stats").json()
    assert whole["interval"] > 0 and any(s["requests_per_s"] > 0 for s in whole["samples"])
    _error(httpx.get(admin.base_url.join("/v1/stats")), 401, "unauthorized")


def test_health_facts(admin):
    health = admin.get("/v1/health").json()
    assert health["storage"] == "ok" and health["corrupt"] == [] and health["status"] == "ok"
    _error(httpx.get(admin.base_url.join("/v1/health")), 401, "unauthorized")


def test_console_is_served_without_a_token_with_a_strict_policy(server):
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "dolite console" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "app.css", "charts.js"):
        assert httpx.get(f"{server.url}/console/{asset}").status_code == 200
    _error(httpx.get(server.url + "/console/nope.js"), 404, "not_found")
    _error(httpx.get(server.url + "/nothing-here"), 404, "not_found")


ROUTES = ("/v1/databases/{name}/status", "/v1/databases/{name}/versions", "/v1/databases/{name}/check",
          "/v1/databases/{name}/restore", "/v1/stats", "/v1/health")


def test_openapi_and_docs_describe_the_console_routes(admin):
    from tests.server.conftest import ROOT

    paths = admin.get("/openapi.json").json()["paths"]
    service_doc = (ROOT / "docs" / "SERVICE.md").read_text()
    for path in ROUTES:
        assert path in paths, path
        assert path in service_doc, path
    console_doc = (ROOT / "docs" / "CONSOLE.md").read_text()
    assert "(console.png)" in console_doc and (ROOT / "docs" / "console.png").stat().st_size < 200_000


def test_check_finds_damage_and_health_names_it_until_dropped(admin, server):
    make_database(admin, "api-broken", rows=30)
    corrupt_a_chunk(server, "api-broken")
    report = admin.post("/v1/databases/api-broken/check").json()
    assert report["ok"] is False and report["corrupt"], report
    assert admin.get("/v1/databases/api-broken/status").json()["health"] == "corrupt"
    health = admin.get("/v1/health").json()
    assert health["status"] == "degraded" and health["corrupt"] == ["api-broken"]
    admin.delete("/v1/databases/api-broken")
    assert admin.get("/v1/health").json()["corrupt"] == []


def test_status_and_health_tell_backup_lag(admin, server):
    from dolite import backup

    make_database(admin, "api-backup", rows=4)
    lag = admin.get("/v1/databases/api-backup/status").json()["backup_lag"]
    assert lag["versions_behind"] == 3 and lag["backed_up_version"] is None and lag["lagging"] is False
    assert lag["target"] == server.backups and 0 <= lag["seconds_behind"] < 60
    backup.push(server.storage, "api-backup", to=server.backups)
    lag = admin.get("/v1/databases/api-backup/status").json()["backup_lag"]
    assert lag["versions_behind"] == 0 and lag["backed_up_version"] == 3 and lag["seconds_behind"] == 0
    assert admin.get("/v1/health").json()["backup"] == {"target": server.backups, "lagging": []}


def test_backup_lag_counts_from_the_oldest_version_not_backed_up(tmp_path):
    import dolite
    from dolite import backup
    from dolite.ops.restore import retained_versions
    from dolite.server.backup_lag import LAG_LIMIT, backup_lag, lagging
    from dolite.storage import open_storage

    (tmp_path / "backups").mkdir()
    namespace, target = open_storage("memory:"), backup.open_target(f"file://{tmp_path}/backups")
    conn = dolite.connect("db", storage=namespace)
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    backup.push(namespace, "db", to=target)
    for _ in range(2):
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
    conn.close()
    times = dict(retained_versions(namespace, "db"))
    newest = max(times)
    first_unbacked = times[newest - 1]
    lag = backup_lag(namespace, "db", target, now=first_unbacked + LAG_LIMIT + 1)
    assert lag["versions_behind"] == 2 and lag["backed_up_version"] == newest - 2
    assert lag["seconds_behind"] == LAG_LIMIT + 1 and lag["lagging"] is True
    assert backup_lag(namespace, "db", target, now=first_unbacked + 1)["lagging"] is False
    assert lagging(namespace, ["db", "not-a-database"], target) == []  # not lagging yet; no such db skipped
