"""The Durable Object backend against real workerd processes: nothing is mocked."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from urllib.parse import quote

import httpx
import pytest

from dolite.cloudflare.dev import start_workerd
from dolite.errors import Conflict, InvalidURL, LimitExceeded, StorageError
from dolite.storage import open_storage
from dolite.storage.durable_object import DO_LIMITS, AuthError, encode_records
from tests.backends import session_workerd


@pytest.fixture
def workerd():
    return session_workerd()


@pytest.fixture
def ns(workerd):
    namespace = open_storage(f"{workerd.storage_url}&prefix={uuid.uuid4().hex[:12]}/")
    yield namespace
    namespace.close()


def raw(workerd, secret=None) -> httpx.Client:
    """A plain HTTP client that bypasses every check of the Python backend."""
    return httpx.Client(base_url=workerd.url, headers={"authorization": f"Bearer {secret or workerd.secret}"})


def error_of(reply: httpx.Response) -> tuple[int, str]:
    """(status, code) of an error reply, checked to be in the service's shape."""
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return reply.status_code, body["error"]["code"]


def test_wrong_or_missing_secret_is_refused(workerd, monkeypatch):
    bad = open_storage(f"do+http://127.0.0.1:{workerd.port}?secret=wrong-{uuid.uuid4().hex}")
    with pytest.raises(AuthError, match="refused the secret"):
        bad.object("x").put({"k": b"v"})
    with pytest.raises(AuthError):
        bad.names()
    monkeypatch.delenv("DOLITE_DO_SECRET", raising=False)
    with pytest.raises(InvalidURL, match="no secret"):
        open_storage(f"do+http://127.0.0.1:{workerd.port}")
    reply = httpx.post(f"{workerd.url}/v1/objects/x/put", content=encode_records([("k", b"v")]))
    assert error_of(reply) == (401, "unauthorized")
    # The secret can come from the environment instead of the URL.
    monkeypatch.setenv("DOLITE_DO_SECRET", workerd.secret)
    assert open_storage(f"do+http://127.0.0.1:{workerd.port}").object("x-env-secret").get(["k"]) == {}


def test_unreachable_worker_names_the_url():
    ns = open_storage("do+http://127.0.0.1:9?secret=s")
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:9"):
        ns.object("x").get(["k"])


def test_declared_limits_match_the_worker(workerd):
    info = raw(workerd).get("/v1/info").json()["limits"]
    assert (info["maxKeyBytes"], info["maxValueBytes"], info["maxKeysPerCall"]) == (
        DO_LIMITS.max_key_bytes, DO_LIMITS.max_value_bytes, DO_LIMITS.max_keys_per_call)


def test_over_limit_requests_refused_by_the_worker_before_any_write(workerd, ns):
    store = ns.object("limits")
    name = quote(store.name, safe="")
    client = raw(workerd)
    over = DO_LIMITS.max_value_bytes + 1
    # Hand-framed requests skip the client-side checks: the Worker itself must refuse them.
    cases = {
        "put": encode_records([("ok", b"1"), ("big", b"v" * over)]),
        "commit": encode_records([("ok", b"1"), ("big", b"v" * over)]) + encode_records([]) * 2,
    }
    for op, body in cases.items():
        reply = client.post(f"/v1/objects/{name}/{op}", content=body)
        assert error_of(reply) == (413, "limit_exceeded") and "over the limit" in reply.json()["error"]["message"]
    too_many = encode_records([(f"k{i}", b".") for i in range(DO_LIMITS.max_keys_per_call + 1)])
    assert error_of(client.post(f"/v1/objects/{name}/put", content=too_many)) == (413, "limit_exceeded")
    long_key = encode_records([("ok", b"1"), ("k" * (DO_LIMITS.max_key_bytes + 1), b"1")])
    assert error_of(client.post(f"/v1/objects/{name}/put", content=long_key)) == (413, "limit_exceeded")
    truncated = encode_records([("ok", b"1")])[:-1]
    assert error_of(client.post(f"/v1/objects/{name}/put", content=truncated)) == (400, "bad_request")
    assert store.list() == {}
    # Through the backend, the same requests fail fast as LimitExceeded.
    with pytest.raises(LimitExceeded):
        store.put({"ok": b"1", "big": b"v" * over})
    assert store.list() == {}


def test_malformed_requests_are_bad_requests_and_write_nothing(workerd, ns):
    store = ns.object("malformed")
    path = f"/v1/objects/{quote(store.name, safe='')}"
    client = raw(workerd)
    cases = {
        "an empty key": ("put", encode_records([("", b"v")])),
        "a JSON body": ("put", b'{"k": "v"}'),
        "a JSON commit": ("commit", b'{"writes": {}}'),
        "a key to get with a value": ("get", encode_records([("k", b"v")])),
        "a delete with a value": ("commit", encode_records([]) + encode_records([("k", b"v")]) + encode_records([])),
        "a write without a value": ("put", encode_records([("k", None)])),
        "trailing bytes": ("put", encode_records([("k", b"v")]) + b"x"),
    }
    for what, (op, body) in cases.items():
        assert error_of(client.post(f"{path}/{op}", content=body)) == (400, "bad_request"), what
    assert error_of(client.get(f"{path}/list", params={"frobnicate": "1"})) == (400, "bad_request")
    assert error_of(client.get(f"{path}/list", params={"reverse": "yes"})) == (400, "bad_request")
    assert error_of(client.get("/v1/names", params={"limit": "3"})) == (400, "bad_request")
    assert store.list() == {} and store.name not in open_storage(workerd.storage_url).names()


def test_route_and_method_errors_in_the_service_shape(workerd):
    client = raw(workerd)
    assert error_of(client.get("/v1/nowhere")) == (404, "not_found")
    assert error_of(client.post("/v1/objects/x/frobnicate")) == (404, "not_found")
    assert error_of(client.get("/v1/objects/x/put")) == (405, "method_not_allowed")
    assert error_of(client.post("/v1/objects/x/list")) == (405, "method_not_allowed")
    assert error_of(client.post("/v1/objects/%FF/get", content=encode_records([]))) == (400, "bad_request")


def test_request_body_over_the_cap_is_refused_unread(workerd, ns):
    cap = raw(workerd).get("/v1/info").json()["maxRequestBytes"]
    # The cap is the largest well-formed call: a commit at every limit fits under it.
    assert cap == 3 * 4 + 2 * DO_LIMITS.max_keys_per_call * (8 + DO_LIMITS.max_key_bytes + DO_LIMITS.max_value_bytes)
    store = ns.object("capped")
    path = f"/v1/objects/{quote(store.name, safe='')}/put"
    head = encode_records([("k", b"v")])
    body = head + b"\0" * (cap + 1 - len(head))
    reply = raw(workerd).post(path, content=body)
    assert error_of(reply) == (413, "payload_too_large") and str(cap) in reply.json()["error"]["message"]

    def chunked():  # no content-length: the Worker counts as it reads
        for at in range(0, len(body), 1 << 20):
            yield body[at:at + (1 << 20)]

    reply = raw(workerd).post(path, content=chunked())
    assert "content-length" not in reply.request.headers
    assert error_of(reply) == (413, "payload_too_large")
    assert store.list() == {}


def test_the_storage_worker_has_no_native_sql_route(workerd):
    """The benchmark baseline runs SQL: only the bench build (never deployed) has it."""
    reply = raw(workerd).post("/v1/native/x/sql", json={"sql": "SELECT 1"})
    assert error_of(reply) == (404, "not_found")


def test_deployed_bundle_is_the_storage_contract_alone(tmp_path, monkeypatch):
    """`dolite cloudflare deploy --dry-run` bundles what production gets: no native SQL."""
    from typer.testing import CliRunner

    from dolite.cloudflare import cli

    monkeypatch.setattr(cli, "cache_root", lambda: tmp_path)
    result = CliRunner().invoke(cli.app, ["deploy", "--dry-run"])
    assert result.exit_code == 0, result.output
    bundle = (tmp_path / "deploy" / "dist" / "worker.js").read_text()
    assert "DoliteObject" in bundle and "DoliteRegistry" in bundle
    for baseline in ("NativeSqlObject", "/v1/native", "storage.sql"):
        assert baseline not in bundle
    assert "NATIVE" not in (tmp_path / "deploy" / "wrangler.toml").read_text().replace("NativeSqlObject", "")


@pytest.mark.parametrize("storage_class, migration", [("sqlite", "new_sqlite_classes"), ("kv", "new_classes")])
def test_deploy_creates_sqlite_backed_objects_by_default(tmp_path, monkeypatch, storage_class, migration):
    """New Cloudflare accounts can only create SQLite-backed classes: that is the default;
    the KV-backed profile stays available. Both bundle (dry run)."""
    from typer.testing import CliRunner

    from dolite.cloudflare import cli

    monkeypatch.setattr(cli, "cache_root", lambda: tmp_path)
    args = ["deploy", "--dry-run"] + ([] if storage_class == "sqlite" else ["--storage-class", storage_class])
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    config = (tmp_path / "deploy" / "wrangler.toml").read_text()
    v1 = config.split('tag = "v1"')[1].split("[[migrations]]")[0]
    assert f'{migration} = ["DoliteObject", "DoliteRegistry"]' in v1
    bad = CliRunner().invoke(cli.app, ["deploy", "--dry-run", "--storage-class", "d1"])
    assert bad.exit_code != 0 and "--storage-class" in bad.output


def test_stale_lease_epoch_is_refused_by_the_object(workerd, ns):
    """Two writers fence each other with an epoch key; the object enforces the compare."""
    old_writer = ns.object("leased")
    new_writer = open_storage(ns.url).object("leased")
    old_writer.commit({"lease": b"epoch-1", "head": b"v1"}, expect={"lease": None})
    new_writer.commit({"lease": b"epoch-2"}, expect={"lease": b"epoch-1"})
    with pytest.raises(Conflict):
        old_writer.commit({"head": b"v2-from-stale-writer"}, expect={"lease": b"epoch-1"})
    # A hand-framed request gets the same refusal: the check lives in the Durable Object.
    body = encode_records([("head", b"v2")]) + encode_records([]) + encode_records([("lease", b"epoch-1")])
    reply = raw(workerd).post(f"/v1/objects/{quote(old_writer.name, safe='')}/commit", content=body)
    assert error_of(reply) == (409, "conflict")
    assert new_writer.get(["lease", "head"]) == {"lease": b"epoch-2", "head": b"v1"}


def test_any_unicode_object_name_and_key(ns):
    name = "数据库/é ü?&#%2F"
    store = ns.object(name)
    store.commit({"ключ/😀": b"\x00\xff"}, expect={"ключ/😀": None})
    assert store.list() == {"ключ/😀": b"\x00\xff"}
    assert name in ns.names()
    ns.drop(name)
    assert store.list() == {} and name not in ns.names()


def test_list_and_names_paginate_past_the_worker_caps(ns):
    store = ns.object("many")
    keys = [f"k{i:04d}" for i in range(300)]
    for i in range(0, len(keys), 100):
        store.put({k: k.encode() for k in keys[i:i + 100]})
    assert list(store.list()) == keys
    assert list(store.list(reverse=True)) == keys[::-1]
    assert list(store.list(limit=200)) == keys[:200]
    assert list(store.list(start="k0100", end="k0250", reverse=True, limit=140)) == keys[249:109:-1]
    for i in range(45):
        ns.object(f"obj-{i:02d}").put({"k": b"v"})
    ns.object("obj-empty").commit({}, expect={"absent": None})
    with pytest.raises(Conflict):
        ns.object("obj-never").commit({"k": b"v"}, expect={"k": b"old"})
    assert ns.names() == sorted(["many"] + [f"obj-{i:02d}" for i in range(45)])


def test_acknowledged_commits_survive_sigkill(tmp_path):
    """Kill -9 workerd in the middle of streams of commits, restart it on the same data."""
    data = tmp_path / "do-data"
    server = start_workerd(port=0, data_dir=data, secret="kill-test")
    writers = 3
    acked: dict[int, list[int]] = {w: [] for w in range(writers)}
    errors: list[Exception] = []

    def writer(ns, w):
        store = ns.object(f"db{w}")
        n = 0
        while True:
            n += 1
            try:
                store.commit(
                    {"head": str(n).encode(), f"log/{n:06d}": bytes([w]) * 3000},
                    expect={"head": str(n - 1).encode() if n > 1 else None},
                )
            except StorageError as exc:
                errors.append(exc)
                return
            acked[w].append(n)

    ns = open_storage(server.storage_url)
    threads = [threading.Thread(target=writer, args=(ns, w)) for w in range(writers)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        server.stop(signal.SIGKILL)
        for thread in threads:
            thread.join(10)
        assert len(errors) == writers and all(acked.values()), "writers should commit, then see the crash"
        print(f"acknowledged {sum(map(len, acked.values()))} commits before SIGKILL: {errors[0]}")
        server = start_workerd(port=0, data_dir=data, secret="kill-test")
        again = open_storage(server.storage_url)
        for w in range(writers):
            store = again.object(f"db{w}")
            head = int(store.get(["head"])["head"])
            logs = store.list(prefix="log/")
            # Every acknowledged commit is there; the one in flight is all there or not at all.
            assert head in (acked[w][-1], acked[w][-1] + 1)
            assert list(logs) == [f"log/{n:06d}" for n in range(1, head + 1)]
            assert set(logs.values()) == {bytes([w]) * 3000}
            store.commit({"head": str(head + 1).encode()}, expect={"head": str(head).encode()})
        assert sorted(again.names()) == [f"db{w}" for w in range(writers)]
    finally:
        server.stop(signal.SIGKILL)
        ns.close()


def test_a_commit_is_one_request_carrying_little_more_than_its_values(ns):
    """The round trip a commit costs, counted (its speed is `dolite cloudflare bench`'s)."""
    store = ns.object("one-request")
    store.commit({"head": b"0"}, expect={"head": None})
    sent: list[tuple[str, str, int]] = []
    ns.observers.append(lambda method, path, size, reply: sent.append((method, path, size)))
    for n in range(1, 21):
        store.commit({"head": str(n).encode(), f"c/{n}": b"p" * 4096}, expect={"head": str(n - 1).encode()})
    assert len(sent) == 20 and {(m, p.rsplit("/", 1)[-1]) for m, p, _ in sent} == {("POST", "commit")}, sent
    assert all(4096 < size < 4096 + 512 for _, _, size in sent), sent
    assert store.get(["head", "c/20"]) == {"head": b"20", "c/20": b"p" * 4096}
