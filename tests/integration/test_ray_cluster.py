"""`voxlive serve --engine ray --ray-address` joining a cluster made with `ray start --head`.

Its own module: `ray stop` at the end stops every Ray process on the machine, so no other Ray
test may be running (pytest runs modules one after another).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import MS, free_port, load, stream_audio, wait_ready

pytestmark = pytest.mark.ray
BIN = Path(sys.executable).parent


@pytest.fixture
def head() -> Iterator[str]:
    pytest.importorskip("ray")
    port = free_port()
    subprocess.run(
        [str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        check=True, capture_output=True, timeout=180_000 * MS,
    )  # fmt: skip
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(
            [str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=120_000 * MS
        )


def _front(address: str, model: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voxlive", "serve", "--engine", "ray", "--ray-address", address,
             "--model", str(model), "--backend", "torch", "--gate", "none", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_ready(url, timeout_s=180, alive=lambda: proc.poll() is None))
    except RuntimeError:
        proc.kill()
        raise AssertionError(f"front did not become ready:\n{log.read_text()[-3000:]}") from None
    return proc, url


def test_fronts_join_a_cluster_and_the_deployment_outlives_them(
    head: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    female, rate = load("female_speech.wav")
    first, url = _front(head, tiny_model_dir, tmp_path / "first.log")
    try:
        ready = httpx.get(url + "/readyz").json()
        assert ready["backend"] == "ray:transformers"
        run = asyncio.run(stream_audio(url.replace("http", "ws") + "/audio", female, rate, speed=0))
        assert len(run.results) >= 8 and run.of("end")[0]["failed"] == 0
    finally:
        first.terminate()
        # uvicorn re-raises the SIGTERM it handled once shut down, so -15 is a clean exit too
        assert first.wait(60_000 * MS) in (0, -15)
    assert "Application shutdown complete" in (tmp_path / "first.log").read_text()
    # The cluster and its deployment stay for other fronts: the next one attaches at once.
    second, url = _front(head, tiny_model_dir, tmp_path / "second.log")
    try:
        run = asyncio.run(stream_audio(url.replace("http", "ws") + "/audio", female, rate, speed=0))
        assert len(run.results) >= 8
    finally:
        second.terminate()
        second.wait(60_000 * MS)
    assert "attaching to the running Ray Serve application" in (tmp_path / "second.log").read_text()
