"""``dolite check --repair --from URL``: corrupt chunk versions replaced by the identical
bytes from the backup (verified), and exactly what cannot be repaired named."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dolite import backup
from dolite.backup.manifest import chunk_key as backup_chunk_key
from dolite.backup.manifest import listing, resolve
from dolite.cli.main import app
from dolite.ops import admin
from dolite.ops.snapshot import iter_export
from dolite.pages import PageStore
from dolite.pages.format import CHUNK_PREFIX, chunk_prefix, in_place_key, parse_chunk_key
from dolite.sql.dbapi import connect
from dolite.storage import open_storage


def make_db(ns, name="db"):
    conn = connect(name, ns)
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60) "
                 "INSERT INTO t(v) SELECT randomblob(2500) FROM n")
    conn.commit()
    conn.close()


def update(ns, row, name="db"):
    conn = connect(name, ns)
    conn.execute("UPDATE t SET v = randomblob(2500) WHERE id = ?", (row,))
    conn.commit()
    conn.close()


def file_of(ns, name="db", version=None) -> bytes:
    return b"".join(iter_export(ns, name, version=version))


def newest_key(ns, chunk, name="db") -> tuple[str, bytes]:
    return next(reversed(PageStore(ns.object(name), name).storage.list(prefix=chunk_prefix(chunk)).items()))


def written_at(ns, version, name="db") -> list[str]:
    """Keys of the chunk versions that ``version`` wrote."""
    return [k for k in ns.object(name).list(prefix=CHUNK_PREFIX) if parse_chunk_key(k)[1] == version]


def damage(ns, key, where="data", name="db"):
    """Flip bytes of a stored chunk value: in its data, its header's CRC, or both."""
    obj = ns.object(name)
    raw = bytearray(obj.get([key])[key])
    if where in ("data", "both"):
        raw[-50] ^= 0xFF
    if where in ("header", "both"):
        raw[27] ^= 0xFF  # last byte of the CRC-32
    obj.put({key: bytes(raw)})


def test_corrupt_versions_are_repaired_from_the_backup(ns, target_url):
    make_db(ns)
    backup.push(ns, "db", to=target_url)
    for row in (5, 30):
        update(ns, row)
    backup.push(ns, "db", to=target_url)
    head = PageStore(ns.object("db"), "db").read_head()
    before = {v: file_of(ns, version=v) for v in range(head.version - 2, head.version + 1)}
    count = head.chunk_count
    victims = [newest_key(ns, count // 2)[0], newest_key(ns, count - 1)[0]]  # current versions
    row5 = parse_chunk_key(written_at(ns, head.version - 1)[0])[0]  # the chunk the update of row 5 wrote
    old = [k for k in ns.object("db").list(prefix=chunk_prefix(row5))
           if parse_chunk_key(k)[1] < head.version - 1]  # an older version of it, backed up
    for key, where in zip(victims + old[:1], ["data", "header", "data"]):
        damage(ns, key, where)
    assert not admin.check(ns, "db").ok
    result = backup.repair(ns, "db", from_=target_url)
    assert result.ok and len(result.repaired) == 3, result
    assert admin.check(ns, "db").ok
    assert {v: file_of(ns, version=v) for v in before} == before
    assert backup.repair(ns, "db", from_=target_url).repaired == []


def test_what_cannot_be_repaired_is_named_and_left_alone(ns, target_url):
    make_db(ns)
    backup.push(ns, "db", to=target_url)
    update(ns, 40)  # committed after the last push: not in any manifest
    unbacked = written_at(ns, PageStore(ns.object("db"), "db").read_head().version)[0]
    both, _ = newest_key(ns, 2)
    damage(ns, unbacked)
    damage(ns, both, "both")  # neither its checksum nor its data can vouch for the backup's bytes
    values = {k: ns.object("db").get([k])[k] for k in (unbacked, both)}
    result = backup.repair(ns, "db", from_=target_url)
    assert not result.ok and not result.repaired
    problems = "\n".join(result.unrepairable)
    assert "no backed-up version holds it" in problems and "differ from what the damaged value records" in problems
    assert {k: ns.object("db").get([k])[k] for k in values} == values


def test_a_damaged_backup_chunk_is_not_used(ns, target_url):
    make_db(ns)
    backup.push(ns, "db", to=target_url)
    key, _ = newest_key(ns, 3)
    damage(ns, key)
    target = backup.open_target(target_url)
    manifest, pages = resolve(target, "db", max(listing(target, "db")), listing(target, "db"))
    target.put_object(backup_chunk_key("db", pages[3]), b"rot")
    result = backup.repair(ns, "db", from_=target_url)
    assert result.unrepairable and "fails its hash" in result.unrepairable[0]
    assert not admin.check(ns, "db").ok


def test_cli_check_repair_on_lmdb(tmp_path):
    storage, folder = f"lmdb:{tmp_path / 'store'}", tmp_path / "backups"
    folder.mkdir()
    ns = open_storage(storage)
    make_db(ns, "shop")
    rows = connect("shop", ns).execute("SELECT sum(length(v)), count(*) FROM t").fetchall()
    backup.push(ns, "shop", to=f"file://{folder}")
    damage(ns, newest_key(ns, 4, "shop")[0], name="shop")
    ns.close()
    runner = CliRunner()
    broken = runner.invoke(app, ["check", "shop", "-s", storage])
    assert broken.exit_code == 2
    no_backup = runner.invoke(app, ["check", "shop", "-s", storage, "--repair"])
    assert no_backup.exit_code == 2 and "dolite check shop --repair --from URL" in " ".join(no_backup.output.split())
    repaired = runner.invoke(app, ["check", "shop", "-s", storage, "--repair", "--from", f"file://{folder}"])
    assert repaired.exit_code == 0, repaired.output
    assert "repaired: chunk 4" in repaired.output and "0 corrupt" in repaired.output
    assert runner.invoke(app, ["check", "shop", "-s", storage]).exit_code == 0
    assert connect("shop", storage, create=False).execute("SELECT sum(length(v)), count(*) FROM t").fetchall() == rows
    alone = runner.invoke(app, ["check", "shop", "-s", storage, "--repair"])  # lease and GC cursor only
    assert alone.exit_code == 0 and "reset:" not in alone.output, alone.output


@pytest.mark.parametrize("flag", [["--from", "file:///nowhere"]])
def test_from_without_repair_is_refused(flag):
    result = CliRunner().invoke(app, ["check", "x", "-s", "memory:", *flag])
    assert result.exit_code == 1 and "--from goes with --repair" in result.output


def test_a_damaged_in_place_value_is_repaired_under_its_in_place_key(ns, target_url):
    make_db(ns)
    key, raw = newest_key(ns, 3)
    obj = ns.object("db")
    obj.commit({in_place_key(3): raw}, deletes=[key])  # as a commit written in place leaves it
    backup.push(ns, "db", to=target_url)
    before = file_of(ns)
    damage(ns, in_place_key(3))
    assert not admin.check(ns, "db").ok
    result = backup.repair(ns, "db", from_=target_url)
    assert result.ok and result.repaired == [f"chunk 3 v{parse_chunk_key(key)[1]} (from backup v{parse_chunk_key(key)[1]})"], result
    assert obj.get([in_place_key(3)])[in_place_key(3)] == raw and key not in obj.get([key])
    assert admin.check(ns, "db").ok and file_of(ns) == before


def test_an_in_place_value_whose_header_is_unreadable_is_named_unrepairable(ns, target_url):
    make_db(ns)
    key, raw = newest_key(ns, 3)
    ns.object("db").commit({in_place_key(3): b"XXXX" + raw[4:]}, deletes=[key])
    result = backup.repair(ns, "db", from_=target_url)
    assert not result.ok and "the in-place value of chunk 3 has a bad header" in result.unrepairable[0]
