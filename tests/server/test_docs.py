"""The curl example of docs/SERVICE.md works as written (against a server on a free port)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.server.conftest import ROOT, Server


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_service_doc_curl_example(tmp_path):
    doc = (ROOT / "docs" / "SERVICE.md").read_text()
    script = re.search(r"```sh\n(curl .*?)```", doc, re.DOTALL).group(1)
    srv = Server(f"lmdb:{tmp_path}/data", token=None).start()  # like `make run`: no token, loopback
    try:
        run = subprocess.run(["bash", "-e", "-c", script.replace("8787", str(srv.port))],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        assert '"rows":[[1,"apple",0.5]]' in run.stdout, run.stdout
    finally:
        srv.stop()
