"""scripts/gpu-bench.sh, the GPU capacity check of issue 25, in its CPU smoke mode: the same
steps as on a GPU (the interpreter checked, a random wav2vec2 built, `voxlive serve --backend
torch --dtype` on a free loopback port, the fleet's capacity search from two processes, the
JSON and logs written, the server stopped), with a tiny model and at most 4 streams."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.helpers import MS, ROOT


@pytest.mark.slow
def test_the_gpu_script_runs_end_to_end_on_cpu(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        [str(ROOT / "scripts" / "gpu-bench.sh"), "--cpu-smoke", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=240_000 * MS,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    doc = json.loads((tmp_path / "fleet.json").read_text())
    assert doc["tool"] == "fleet" and doc["p95_ms"] == 300 and doc["procs"] == 2
    assert doc["capacity_complete"] is True and 0 <= doc["capacity"]["cpu auto"] <= 4
    assert doc["runs"] and all(r["streams"] <= 4 and r["procs"] <= 2 for r in doc["runs"])
    served = doc["server"]  # the model as the GPU run serves it: PyTorch, in the dtype asked for
    assert (served["backend"], served["device"], served["dtype"]) == ("transformers", "cpu",
                                                                      "float32")  # fmt: skip
    assert "capacity[cpu auto]" in (tmp_path / "fleet.log").read_text()
    assert "ready: model=" in (tmp_path / "server.log").read_text()
    assert "python:" in (tmp_path / "env.txt").read_text()
    url = urlparse(doc["url"])  # and the server it started is gone
    with pytest.raises(OSError), socket.create_connection((url.hostname, url.port), timeout=2):
        pass
