"""Target URLs and the primitives every target implements."""

from __future__ import annotations

import pytest

from dolite import backup
from dolite.backup.errors import TargetUnavailable
from dolite.errors import InvalidURL


@pytest.mark.parametrize("url", ["ftp://x/y", "file://host/dir", "file:///dir?x=1", "s3:///nobucket",
                                 "s3://b/p?secret=1", "relative/dir"])
def test_bad_target_urls_are_refused(url):
    with pytest.raises(InvalidURL):
        backup.open_target(url)


def test_redact_drops_credentials_and_options():
    assert backup.redact("s3://key:secret@bucket/p?endpoint_url=http://h:1") == "s3://bucket/p"


def test_a_missing_folder_is_unavailable_not_created(tmp_path):
    target = backup.open_target(f"file://{tmp_path}/absent")
    with pytest.raises(TargetUnavailable, match="no such folder"):
        target.put_object("db/chunks/x", b"1")
    assert not (tmp_path / "absent").exists()


def test_an_unreachable_s3_endpoint_is_unavailable(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    pytest.importorskip("boto3")
    target = backup.open_target("s3://b/p?endpoint_url=http://127.0.0.1:9&region=us-east-1")
    target._client.meta.config.retries = {"max_attempts": 0}
    with pytest.raises(TargetUnavailable):
        target.list("db/")


def test_primitives(target_url):
    target = backup.open_target(target_url)
    assert target.list("db/") == [] and target.get_object("db/a") is None and not target.exists("db/a")
    target.put_object("db/chunks/b", b"2")
    target.put_object("db/chunks/a", b"1")
    target.put_object("db/chunks/a", b"1")
    target.put_object("dbx/chunks/c", b"3")
    assert target.list("db/") == ["db/chunks/a", "db/chunks/b"]
    assert target.list("db/chunks/") == ["db/chunks/a", "db/chunks/b"]
    assert target.get_object("db/chunks/a") == b"1" and target.exists("db/chunks/b")
