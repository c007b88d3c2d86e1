"""The storage contract: the definition of a backend. Runs on every backend."""

from __future__ import annotations

import threading

import pytest

from dolite.errors import Conflict, InvalidURL, LimitExceeded
from dolite.storage import open_storage


def test_get_put_delete_roundtrip(store):
    assert store.get(["a", "b"]) == {}
    store.put({"a": b"1", "b": b"\x00\xff" * 10})
    assert store.get(["a", "b", "c"]) == {"a": b"1", "b": b"\x00\xff" * 10}
    assert store.delete(["a", "c"]) == 1
    assert store.get(["a", "b"]) == {"b": b"\x00\xff" * 10}


def test_empty_value_is_stored(store):
    store.put({"empty": b""})
    assert store.get(["empty"]) == {"empty": b""}


def test_list_orders_and_bounds(store):
    keys = ["a", "b/1", "b/2", "b/3", "c", "é"]
    store.put({k: k.encode() for k in keys})
    assert list(store.list()) == keys
    assert list(store.list(prefix="b/")) == ["b/1", "b/2", "b/3"]
    assert list(store.list(start="b/2")) == ["b/2", "b/3", "c", "é"]
    assert list(store.list(start="b/1", end="b/3")) == ["b/1", "b/2"]
    assert list(store.list(prefix="b/", reverse=True)) == ["b/3", "b/2", "b/1"]
    assert list(store.list(prefix="b/", reverse=True, limit=1)) == ["b/3"]
    assert list(store.list(end="b/2", reverse=True, limit=2)) == ["b/1", "a"]
    assert list(store.list(limit=2)) == ["a", "b/1"]
    assert list(store.list(prefix="zz")) == []
    assert store.list(prefix="b/", start="b/2", end="b/3") == {"b/2": b"b/2"}


def test_list_reverse_past_last_key(store):
    store.put({"x/1": b"1", "x/2": b"2"})
    assert list(store.list(start="x/", end="x/9", reverse=True)) == ["x/2", "x/1"]
    assert list(store.list(start="y", reverse=True)) == []


def test_objects_are_isolated(namespace):
    a, b = namespace.object("iso-a"), namespace.object("iso-b")
    a.put({"k": b"a"})
    b.put({"k": b"b"})
    assert a.get(["k"]) == {"k": b"a"}
    assert list(b.list()) == ["k"] and b.list()["k"] == b"b"
    assert {"iso-a", "iso-b"} <= set(namespace.names())
    namespace.drop("iso-a")
    assert a.get(["k"]) == {} and b.get(["k"]) == {"k": b"b"}
    assert "iso-a" not in namespace.names()


def test_commit_applies_when_expectations_hold(store):
    store.put({"head": b"1", "old": b"x"})
    store.commit({"head": b"2", "new": b"y"}, deletes=["old"], expect={"head": b"1", "missing": None})
    assert store.get(["head", "new", "old"]) == {"head": b"2", "new": b"y"}


@pytest.mark.parametrize("expect", [{"head": b"0"}, {"head": None}, {"absent": b"x"}])
def test_commit_conflict_changes_nothing(store, expect):
    store.put({"head": b"1", "keep": b"k"})
    with pytest.raises(Conflict):
        store.commit({"head": b"2", "other": b"o"}, deletes=["keep"], expect=expect)
    assert store.get(["head", "other", "keep"]) == {"head": b"1", "keep": b"k"}


def test_commit_on_empty_object(store):
    store.commit({"head": b"1"}, expect={"head": None})
    with pytest.raises(Conflict):
        store.commit({"head": b"1"}, expect={"head": None})


def test_compare_and_set_is_atomic_under_contention(store):
    store.put({"n": b"0"})
    wins = []

    def worker():
        for _ in range(20):
            while True:
                current = store.get(["n"])["n"]
                try:
                    store.commit({"n": str(int(current) + 1).encode()}, expect={"n": current})
                    wins.append(1)
                    break
                except Conflict:
                    continue

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(["n"])["n"] == str(len(wins)).encode() == b"80"


def test_values_at_limit_roundtrip_and_over_limit_refused(store):
    limit = store.limits.max_value_bytes
    store.put({"big": b"v" * limit})
    assert store.get(["big"])["big"] == b"v" * limit
    with pytest.raises(LimitExceeded):
        store.put({"ok": b"1", "huge": b"v" * (limit + 1)})
    with pytest.raises(LimitExceeded):
        store.commit({"huge": b"v" * (limit + 1)})
    assert store.get(["ok", "huge"]) == {}


def test_keys_at_limit_and_over(store):
    limit = store.limits.max_key_bytes
    at = "k" * limit
    store.put({at: b"1"})
    assert store.get([at]) == {at: b"1"}
    over = "k" * (limit + 1)
    for call in (lambda: store.put({over: b"1"}), lambda: store.get([over]),
                 lambda: store.delete([over]), lambda: store.commit({"x": b"1"}, expect={over: None})):
        with pytest.raises(LimitExceeded):
            call()
    assert store.get(["x"]) == {}


def test_keys_per_call_limit(store):
    limit = store.limits.max_keys_per_call
    store.put({f"k{i:04d}": b"." for i in range(limit)})
    assert len(store.get([f"k{i:04d}" for i in range(limit)])) == limit
    too_many = {f"m{i:04d}": b"." for i in range(limit + 1)}
    with pytest.raises(LimitExceeded):
        store.put(too_many)
    with pytest.raises(LimitExceeded):
        store.commit(too_many)
    with pytest.raises(LimitExceeded):
        store.commit({"a": b"1"}, deletes=[f"k{i:04d}" for i in range(limit)])
    assert store.list(prefix="m") == {}


def test_durable_across_reopen(storage_url):
    if storage_url.startswith("memory:"):
        pytest.skip("memory: is not durable by design")
    ns = open_storage(storage_url)
    ns.object("durable").commit({"head": b"v1"}, expect={"head": None})
    ns.close()
    again = open_storage(storage_url)
    assert again.object("durable").get(["head"]) == {"head": b"v1"}


@pytest.mark.parametrize("url", ["", "nope:", "redis://x", "lmdb:", "lmdb:/tmp/x?bogus=1"])
def test_bad_urls_are_refused_clearly(url):
    with pytest.raises(InvalidURL) as info:
        open_storage(url)
    assert url in str(info.value) or "unknown" in str(info.value)
