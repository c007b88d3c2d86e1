"""The Durable Object backend's HTTP side in-process: framing, requests and the mapping of
the Worker's error answers, against ``httpx.MockTransport`` (no workerd needed)."""

from __future__ import annotations

import json

import httpx
import pytest

from dolite.errors import Conflict, LimitExceeded, PayloadTooLarge, StorageError
from dolite.storage.durable_object import (
    AuthError,
    DurableObjectNamespace,
    decode_records,
    encode_records,
)


def namespace(handler, prefix: str = "") -> DurableObjectNamespace:
    return DurableObjectNamespace("http://worker.test", "s3cret", prefix=prefix,
                                  transport=httpx.MockTransport(handler))


def answer(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


# -- framing ----------------------------------------------------------------------------------


def test_records_round_trip_and_none_is_all_ones():
    body = encode_records([("a", b""), ("é", b"\x00\xff"), ("gone", None)])
    assert body[:4] == (3).to_bytes(4, "big")
    assert body.endswith(len(b"gone").to_bytes(4, "big") + b"gone" + b"\xff\xff\xff\xff")
    assert decode_records(encode_records([("a", b""), ("é", b"\x00\xff")])) == {"a": b"", "é": b"\x00\xff"}


@pytest.mark.parametrize("body", [b"", b"\x00\x00\x00\x01", encode_records([("k", None)]),
                                  encode_records([("k", b"value")])[:-1]])
def test_malformed_replies_are_storage_errors(body):
    with pytest.raises(StorageError, match="malformed response"):
        decode_records(body)


# -- requests ---------------------------------------------------------------------------------


def test_calls_send_framed_bodies_with_the_secret():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/get"):
            return httpx.Response(200, content=encode_records([("k", b"v")]))
        if request.url.path.endswith("/delete"):
            return httpx.Response(200, json={"deleted": 1})
        return httpx.Response(204)

    obj = namespace(handler, prefix="p/").object("a b")
    assert obj.get(["k", "missing"]) == {"k": b"v"}
    obj.put({"k": b"v"})
    assert obj.delete(["k"]) == 1
    obj.commit({"x": b"1"}, ["y"], {"z": None})
    paths = [r.url.raw_path.decode() for r in seen]
    assert paths == [f"/v1/objects/p%2Fa%20b/{op}" for op in ("get", "put", "delete", "commit")]
    assert {r.headers["authorization"] for r in seen} == {"Bearer s3cret"}
    assert seen[0].content == encode_records([("k", None), ("missing", None)])
    assert seen[3].content == (encode_records([("x", b"1")]) + encode_records([("y", None)])
                               + encode_records([("z", None)]))


def test_empty_calls_send_nothing():
    def handler(request):
        raise AssertionError(f"unexpected request {request.url}")

    obj = namespace(handler).object("x")
    assert obj.get([]) == {} and obj.delete([]) == 0
    obj.put({})
    obj.commit({})


def test_list_follows_the_workers_pages():
    pages = {"": ({"a": b"1", "b": b"2"}, "1"), "b\x00": ({"c": b"3"}, "0")}

    def handler(request):
        entries, more = pages[request.url.params.get("start", "")]
        return httpx.Response(200, content=encode_records(entries.items()), headers={"x-dolite-more": more})

    assert namespace(handler).object("x").list() == {"a": b"1", "b": b"2", "c": b"3"}


def test_names_strip_the_prefix_and_follow_pages():
    def handler(request):
        if request.url.params["after"] == "":
            return httpx.Response(200, json={"names": ["p/b", "p/a"], "more": True, "last": "p/b"})
        return httpx.Response(200, json={"names": ["p/c"], "more": False, "last": "p/c"})

    assert namespace(handler, prefix="p/").names() == ["a", "b", "c"]


# -- the Worker's errors ------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "kind", "text"), [
    (answer(409, "conflict", "expected version 3"), Conflict, "expected version 3"),
    (answer(413, "limit_exceeded", "value over 131064 bytes"), LimitExceeded, "131064"),
    (answer(413, "payload_too_large", "body over the cap"), PayloadTooLarge, "over the cap"),
    (answer(401, "unauthorized", "missing or wrong dolite secret"), AuthError, "refused the secret"),
    (answer(500, "misconfigured", "no DOLITE_SECRET"), StorageError, "misconfigured: no DOLITE_SECRET"),
    (answer(500, "internal", "boom"), StorageError, r"500 internal: boom"),
    (answer(404, "not_found", "no route"), StorageError, "not_found: no route"),
    (answer(400, "bad_request", "bad framing"), StorageError, "bad_request: bad framing"),
    (answer(418, "from_the_future", "?"), StorageError, "from_the_future"),
    # the Worker's older shape, {error: code, message}
    (httpx.Response(409, json={"error": "conflict", "message": "old shape"}), Conflict, "old shape"),
    # not the Worker's JSON at all (a proxy's error page)
    (httpx.Response(502, text="<html>Bad Gateway</html>"), StorageError, "502 http_error: <html>"),
])
def test_error_answers_map_by_code(reply, kind, text):
    obj = namespace(lambda request: reply).object("x")
    with pytest.raises(kind, match=text) as caught:
        obj.put({"k": b"v"})
    assert type(caught.value) is kind


def test_a_conflict_is_not_a_storage_failure():
    obj = namespace(lambda request: answer(409, "conflict", "taken")).object("x")
    with pytest.raises(Conflict) as caught:
        obj.commit({"k": b"v"}, expect={"k": None})
    assert not isinstance(caught.value, StorageError)


def test_unreachable_and_timeouts_are_storage_errors():
    def refused(request):
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request):
        raise httpx.ReadTimeout("read timed out", request=request)

    with pytest.raises(StorageError, match="unreachable"):
        namespace(refused).object("x").get(["k"])
    with pytest.raises(StorageError, match="timed out"):
        namespace(slow).object("x").get(["k"])


def test_error_json_is_read_not_trusted():
    reply = httpx.Response(500, content=json.dumps({"error": {"code": 7}}).encode())
    with pytest.raises(StorageError, match="500 http_error"):
        namespace(lambda request: reply).object("x").get(["k"])
