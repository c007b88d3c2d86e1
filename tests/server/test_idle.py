"""Idle databases are cheap (issue #15): the object host closes the SQLite connection of
an idle object, gives the memory back and reopens the database on demand; never under an
open transaction, a session, or a request racing the close."""

from __future__ import annotations

import asyncio
import threading
import uuid

import apsw

from dolite.remote.wire import Statement
from dolite.server.objects import HostConfig, ObjectHost, host as host_module
from dolite.server.objects.actor import DatabaseObject

OWNER = b"owner"


def run(body, **config):
    """Run ``body(host)`` on a fresh object host over a fresh memory namespace; every
    object counts as idle at once unless ``config`` says otherwise."""
    async def main():
        host = ObjectHost(f"memory:{uuid.uuid4().hex}", HostConfig(**{"idle_timeout": 0.0, **config}))
        try:
            return await body(host)
        finally:
            await host.close()
    return asyncio.run(main())


async def sql(host: ObjectHost, name: str, text: str, params=()) -> list:
    (result,) = await host.call(name, "query", [Statement(text, params)], False, False)
    return result["rows"]


async def make(host: ObjectHost, name: str, rows: int = 3) -> None:
    await host.call(name, "create")
    await sql(host, name, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(rows):
        await sql(host, name, "INSERT INTO t(v) VALUES (?)", (f"v{i}",))


def test_an_idle_database_is_closed_and_reopened_with_its_data():
    async def body(host):
        names = [f"db{i}" for i in range(10)]
        for name in names:
            await make(host, name)
        heap_loaded = apsw.memory_used()
        await host.sweep()
        assert host.objects == {}  # closed, then forgotten: nothing of them stays
        assert apsw.memory_used() < heap_loaded - len(names) * 50_000  # their SQLite heap went
        for name in names:
            assert await sql(host, name, "SELECT v FROM t ORDER BY id") == [["v0"], ["v1"], ["v2"]]
        assert all(host.objects[name].conn is not None for name in names)
    run(body)


def test_an_open_transaction_is_never_closed_under_it():
    async def body(host):
        await make(host, "db")
        opened = await host.open_session("db", False, OWNER)
        sid = opened["session"]
        await host.session_query("db", sid, OWNER, [Statement("INSERT INTO t(v) VALUES ('mine')", ())], False)
        obj = host.objects["db"]
        conn = obj.conn
        await host.sweep()  # idle past the timeout and over capacity, but in a transaction
        assert host.objects["db"] is obj and obj.conn is conn
        assert obj.close_if_idle("idle") is False  # the actor itself refuses too
        assert obj.conn is conn
        (result,) = await host.session_query("db", sid, OWNER, [Statement("SELECT count(*) FROM t", ())], False)
        assert result["rows"] == [[4]]
        await host.end_session("db", sid, OWNER, commit=True)
        await host.sweep()
        assert "db" not in host.objects
        assert await sql(host, "db", "SELECT v FROM t WHERE id = 4") == [["mine"]]
    run(body, max_objects=0)


def test_a_read_session_keeps_its_database_open():
    """A read session's snapshot shares the database's page store with the object: the
    object stays open (its cache and counters intact) until the session ends."""
    async def body(host):
        await make(host, "db")
        sid = (await host.open_session("db", True, OWNER))["session"]
        obj = host.objects["db"]
        await host.sweep()
        assert obj.conn is not None
        await sql(host, "db", "INSERT INTO t(v) VALUES ('later')")
        (result,) = await host.session_query("db", sid, OWNER, [Statement("SELECT count(*) FROM t", ())], False)
        assert result["rows"] == [[3]]  # the snapshot it pinned
        await host.end_session("db", sid, OWNER, commit=False)
        await host.sweep()
        assert "db" not in host.objects
    run(body)


def test_a_request_racing_the_close_is_served(monkeypatch):
    closing, go_on = threading.Event(), threading.Event()
    evict = DatabaseObject.evict

    def slow_evict(self, reason):
        if reason == "idle":
            closing.set()
            assert go_on.wait(10)
        evict(self, reason)

    monkeypatch.setattr(DatabaseObject, "evict", slow_evict)

    async def body(host):
        await make(host, "db")
        obj = host.objects["db"]
        sweep = asyncio.create_task(host.sweep())
        assert await asyncio.to_thread(closing.wait, 10)  # the close is under way
        request = asyncio.create_task(sql(host, "db", "SELECT count(*) FROM t"))
        while obj.waiting == 0:
            await asyncio.sleep(0.001)
        go_on.set()
        await sweep
        assert await request == [[3]]
        assert host.objects["db"] is obj and obj.conn is not None  # reopened, not a second actor
    run(body)


def test_closing_idle_objects_gives_the_memory_back(monkeypatch):
    calls = []
    monkeypatch.setattr(host_module, "give_back_freed_memory", lambda: calls.append(1))

    async def body(host):
        await host.sweep()
        assert calls == []  # nothing closed, nothing to give back
        await make(host, "a")
        await make(host, "b")
        await host.sweep()
        assert calls == [1]  # once per sweep that closed something
    run(body)


def test_the_least_recently_used_beyond_capacity_are_closed():
    async def body(host):
        await make(host, "old")
        await make(host, "new")
        await host.sweep()
        assert sorted(host.objects) == ["new"]
        assert await sql(host, "old", "SELECT count(*) FROM t") == [[3]]
    run(body, idle_timeout=3600.0, max_objects=1)


def test_the_capacity_bound_holds_between_sweep_rounds():
    """A request that leaves more than max_objects loaded wakes the sweeper at once (its
    rounds are an hour apart here)."""
    async def body(host):
        await host.start()
        for name in ("a", "b", "c"):
            await make(host, name, rows=0)
        for _ in range(500):  # the woken sweeper closes the least recently used (bounded wait)
            if sum(1 for o in host.objects.values() if o.conn is not None) <= 1:
                break
            await asyncio.sleep(0.01)
        assert [name for name, o in host.objects.items() if o.conn is not None] == ["c"]
    run(body, idle_timeout=3600.0, max_objects=1, sweep_every=3600.0)
