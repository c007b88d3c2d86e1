"""Backup targets for the suite: a folder, and a real S3-compatible server (moto's
standalone server on a loopback port, started once per session). Every test gets a fresh,
empty target URL of each kind."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from dolite.storage import open_storage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """``(endpoint_url, bucket)`` of a running moto server, with dummy credentials in the
    environment (boto3 reads them from there)."""
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="backups")
    yield endpoint, "backups"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(params=["file", "s3"])
def target_url(request, tmp_path):
    """A fresh, empty backup target URL of each kind."""
    if request.param == "file":
        folder = tmp_path / "backups"
        folder.mkdir()
        return f"file://{folder}"
    endpoint, bucket = request.getfixturevalue("s3_endpoint")
    return f"s3://{bucket}/t-{uuid.uuid4().hex[:12]}?endpoint_url={endpoint}"


@pytest.fixture
def ns():
    """A private in-memory namespace holding the databases to back up."""
    return open_storage("memory:")
