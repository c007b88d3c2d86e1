"""What the ``sqlite:`` backend adds to the contract: one file per object, named
reversibly; a bounded number of open files; several processes sharing a store; space given
back on drop; an LMDB directory refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dolite.errors import InvalidURL
from dolite.storage import open_storage
from dolite.storage.sqlite_files import MAX_FILE_NAME, file_name

ROOT = Path(__file__).resolve().parents[2]
ODD_NAMES = ["shop", "Shop", "SHOP", ".", "..", "a/b", "../up", "é", "x" * 300, "a.db-wal", "~", "%41"]


def test_every_name_gets_its_own_file_and_lists_back(tmp_path):
    ns = open_storage(f"sqlite:{tmp_path}/s")
    for i, name in enumerate(ODD_NAMES):
        ns.object(name).put({"k": str(i).encode()})
    files = [f for f in os.listdir(tmp_path / "s") if f.endswith(".db")]
    assert len(files) == len(ODD_NAMES)  # distinct even where case is folded
    assert all("/" not in f and not f.startswith(".") and len(f) <= MAX_FILE_NAME for f in files)
    assert ns.names() == sorted(ODD_NAMES)
    assert [ns.object(n).get(["k"])["k"] for n in ODD_NAMES] == [str(i).encode() for i in range(len(ODD_NAMES))]
    assert file_name("shop") == "shop.db" and file_name("Shop") == "%53hop.db"


def test_reading_an_absent_object_creates_no_file(tmp_path):
    ns = open_storage(f"sqlite:{tmp_path}/s")
    store = ns.object("ghost")
    assert store.get(["k"]) == {} and store.list() == {} and store.delete(["k"]) == 0
    ns.drop("ghost")
    assert os.listdir(tmp_path / "s") == ["reserve.dolite"] and ns.names() == []  # the ballast only


def test_open_files_are_bounded_and_reopened_on_use(tmp_path):
    ns = open_storage(f"sqlite:{tmp_path}/s?max_open=2")
    for i in range(6):
        ns.object(f"o{i}").put({"k": bytes([i])})
        assert ns.open_connections() <= 2
    assert [ns.object(f"o{i}").get(["k"]) for i in range(6)] == [{"k": bytes([i])} for i in range(6)]
    assert ns.open_connections() <= 2


def test_drop_gives_the_space_back(tmp_path):
    ns = open_storage(f"sqlite:{tmp_path}/s?autocheckpoint=1")
    big = ns.object("big")
    for i in range(8):
        big.put({f"k{i}/{j}": os.urandom(100_000) for j in range(8)})
    path = tmp_path / "s" / "big.db"
    full = path.stat().st_size
    ns.drop("big")
    big.put({"small": b"1"})  # a commit: the auto-checkpoint copies the truncation in
    assert path.stat().st_size < full / 10, (full, path.stat().st_size)
    assert big.list() == {"small": b"1"}


_INCREMENT = """
import sys
from dolite.errors import Conflict
from dolite.storage import open_storage
store = open_storage(sys.argv[1]).object("counter")
for _ in range(int(sys.argv[2])):
    while True:
        n = store.get(["n"])["n"]
        try:
            store.commit({"n": str(int(n) + 1).encode()}, expect={"n": n})
            break
        except Conflict:
            pass
"""


def test_processes_share_a_store_with_compare_and_set(tmp_path):
    url = f"sqlite:{tmp_path}/s"
    open_storage(url).object("counter").put({"n": b"0"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _INCREMENT, url, "100"], env=env) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert open_storage(url).object("counter").get(["n"]) == {"n": b"300"}


def test_an_lmdb_directory_is_refused_with_the_url_to_use(tmp_path):
    open_storage(f"lmdb:{tmp_path}/d").object("x").put({"k": b"v"})
    with pytest.raises(InvalidURL, match="lmdb:"):
        open_storage(f"sqlite:{tmp_path}/d")


@pytest.mark.parametrize("url", ["sqlite:", "sqlite:/tmp/x?bogus=1", "sqlite:/tmp/x?max_open=0",
                                 "sqlite:/tmp/x?autocheckpoint=-1", "sqlite:/tmp/x?max_open=many"])
def test_bad_sqlite_urls_are_refused(url):
    with pytest.raises(InvalidURL):
        open_storage(url)


@pytest.mark.parametrize("scheme, first, second", [
    ("sqlite", "", "?max_open=2"),
    ("sqlite", "?autocheckpoint=10", "?autocheckpoint=20"),
    ("lmdb", "", "?sync=off"),
])
def test_a_store_open_with_other_options_is_refused_not_silently_given_the_first(tmp_path, scheme, first, second):
    from dolite.errors import InvalidURL
    from dolite.storage import open_storage

    url = f"{scheme}:{tmp_path}/store"
    ns = open_storage(url + first)
    try:
        assert open_storage(url + first) is ns  # the same options: the same namespace
        with pytest.raises(InvalidURL, match="already open in this process"):
            open_storage(url + second)
    finally:
        ns.close()
    open_storage(url + second).close()  # once closed, other options are fine


def test_memory_urls_take_no_options():
    from dolite.errors import InvalidURL
    from dolite.storage import open_storage

    with pytest.raises(InvalidURL, match="takes no options"):
        open_storage("memory:x?cache=lmdb:/tmp/c")
