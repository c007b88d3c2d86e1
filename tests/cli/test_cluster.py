"""``dolite cluster create|ls|info|query`` on a local storage URL."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dolite.cli.main import app


def run(*args: str):
    return CliRunner().invoke(app, ["cluster", *args])


def test_create_ls_query_info(tmp_path):
    s = ["-s", f"lmdb:{tmp_path}/data"]
    assert run("create", "bank", "--shards", "3", *s).exit_code == 0
    assert json.loads(run("ls", *s, "--json").output) == ["bank"]
    assert run("query", "bank", "CREATE TABLE acct(id TEXT PRIMARY KEY, bal INTEGER)", "--all", *s).exit_code == 0
    for key in ("alice", "bob", "carol"):
        out = run("query", "bank", "INSERT INTO acct VALUES (?, 1)", "--key", key, "-p", json.dumps([key]), *s)
        assert out.exit_code == 0, out.output
    out = run("query", "bank", "SELECT id FROM acct ORDER BY id", "--all", "--json", *s)
    assert sorted(r[0] for r in json.loads(out.output)["rows"]) == ["alice", "bob", "carol"]
    out = run("query", "bank", "SELECT bal FROM acct WHERE id = 'bob'", "-k", "bob", *s)
    assert out.exit_code == 0 and "bal" in out.output
    info = json.loads(run("info", "bank", "--json", *s).output)
    assert [x["name"] for x in info["shards"]] == ["bank.s0", "bank.s1", "bank.s2"]
    assert "bank.s0" in run("info", "bank", *s).output


def test_refusals(tmp_path):
    s = ["-s", f"lmdb:{tmp_path}/data"]
    out = run("info", "nope", *s)
    assert out.exit_code == 1 and "does not exist" in out.output
    assert run("create", "bank", "--shards", "2", *s).exit_code == 0
    out = run("create", "bank", "--shards", "3", *s)
    assert out.exit_code == 1 and "2 shards" in out.output
    assert run("query", "bank", "SELECT 1", *s).exit_code == 2  # neither --key nor --all
    assert run("query", "bank", "SELECT 1", "-k", "a", "--all", *s).exit_code == 2
    assert run("query", "bank", "SELECT ?", "-k", "a", "-p", "{", *s).exit_code == 2
