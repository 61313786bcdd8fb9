"""`voxlive serve --engine ray --ray-address` joining a cluster made with `ray start --head`, and
a front with a local Ray instance of its own stopped by SIGTERM mid-stream.

Its own module: `ray stop` at the end stops every Ray process on the machine, so no other Ray
test may be running (pytest runs modules one after another).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.helpers import MS, free_port, load, pcm16, stream_audio, wait_ready

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
    """A front joining ``address`` (empty: starting a local Ray instance of its own)."""
    port = free_port()
    join = ["--ray-address", address] if address else []
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voxlive", "serve", "--engine", "ray", *join,
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


async def _stream_until_closed(url: str, proc: subprocess.Popen[bytes]) -> list[dict[str, object]]:
    """Stream in real time; after the first result, SIGTERM the front; read until it closes."""
    female, rate = load("female_speech.wav")
    messages: list[dict[str, object]] = []
    async with websockets.connect(url.replace("http", "ws") + "/audio") as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": rate, "acks": True}))
        chunk = rate // 10
        for begin in range(0, 2 * rate, chunk):
            await ws.send(pcm16(female[begin : begin + chunk]))
            await asyncio.sleep(100 * MS)
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                messages.append(json.loads(raw))
                if messages[-1]["type"] == "result" and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        messages.append({"type": "closed", "code": ws.close_code})
    return messages


def test_a_front_with_its_own_ray_instance_drains_on_sigterm_without_aborting(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Ray's failure signal handler arms a 3 s abort timer on SIGTERM, shorter than a drain that
    also stops the local Ray instance: the front must end its drain, not dump core."""
    pytest.importorskip("ray")
    log = tmp_path / "front.log"
    proc, url = _front("", tiny_model_dir, log)
    try:
        messages = asyncio.run(_stream_until_closed(url, proc))
        code = proc.wait(120_000 * MS)
    finally:
        proc.kill()
    text = log.read_text()
    assert code in (0, -signal.SIGTERM), f"exit {code}, expected 0 or -15:\n{text[-3000:]}"
    assert "Application shutdown complete" in text
    kinds = [m["type"] for m in messages]
    assert "moving" in kinds and messages[-1] == {"type": "closed", "code": 1012}, kinds
