"""The HTTP client's cluster calls, ``dolite.cluster("http://...")`` and ``dolite cluster``
against a server URL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import dolite
from dolite.remote.client import Client
from dolite.remote.cluster import connect
from tests.server.conftest import ROOT, TOKEN, Server


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote-cluster")
    server = Server(f"lmdb:{path}/data", log=path / "server.log").start()
    yield server
    server.stop()


def test_client_calls_and_remote_cluster(srv):
    with Client(srv.url, token=TOKEN) as client:
        client.create_cluster("bank", 3)
        assert client.clusters() == ["bank"]
        client.cluster_all("bank", "CREATE TABLE acct(id TEXT PRIMARY KEY, bal INTEGER NOT NULL)")
        assert client.cluster_query("bank", "INSERT INTO acct VALUES (?, ?)", ("a", b"\x00"), key="a").shard
    with connect(srv.url + "/bank", TOKEN, shards=3) as c:
        c.execute("INSERT INTO acct VALUES (?, 5)", ("b",), key="b")
        assert c.execute("SELECT bal FROM acct WHERE id = ?", ("a",), key="a").fetchone() == (b"\x00",)
        with c.transaction() as tx:
            tx.execute("UPDATE acct SET bal = 1 WHERE id = 'a'", key="a")
            tx.execute("UPDATE acct SET bal = 4 WHERE id = 'b'", key="b")
        assert [r.rowcount for r in tx.results] == [1, 1]
        with pytest.raises(dolite.IntegrityError):
            c.batch([("a", "UPDATE acct SET bal = 0 WHERE id = 'a'", ()),
                     ("b", "UPDATE acct SET bal = NULL WHERE id = 'b'", ())])
        assert sorted(c.query_all("SELECT id, bal FROM acct")) == [("a", 1), ("b", 4)]
        with pytest.raises(dolite.NotSupportedError):
            c.transaction().query_all("SELECT 1")
        assert len(c.info()["shards"]) == 3
    with pytest.raises(dolite.ProgrammingError):
        connect(srv.url + "/bank", TOKEN, shards=2)
    with pytest.raises(dolite.DatabaseNotFound):
        connect(srv.url + "/nope", TOKEN)


def test_dolite_cluster_dispatches_on_a_url(srv):
    """In a fresh interpreter (dolite.cluster not imported yet), as a user starts."""
    code = ("import dolite; c = dolite.cluster(%r, token=%r, shards=2); "
            "print(type(c).__name__, c.execute('SELECT 1', key='k').fetchone())" % (srv.url + "/pair", TOKEN))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "RemoteCluster (1,)"


def test_dolite_cluster_dispatches_after_the_package_is_imported(srv):
    import dolite.cluster  # noqa: F401

    assert type(dolite.cluster(srv.url + "/pair", token=TOKEN)).__name__ == "RemoteCluster"


def test_cli_against_a_server_url(srv):
    from dolite.cli.main import app

    env = {"DOLITE_TOKEN": TOKEN}
    out = CliRunner().invoke(app, ["cluster", "create", "cli", "-n", "2", "-s", srv.url, "--json"], env=env)
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(app, ["cluster", "query", "cli", "SELECT 7", "--all", "-s", srv.url, "--json"], env=env)
    assert out.exit_code == 0, out.output
    assert '"rows": [[7], [7]]' in out.output
    out = CliRunner().invoke(app, ["cluster", "ls", "-s", srv.url, "--json"], env=env)
    assert "cli" in out.output
