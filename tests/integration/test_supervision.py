"""A batcher or VAD runner task that stops on its own is heard, against a real server: the
traceback is logged, /readyz says ``failed`` (503), the crash is counted, every open stream gets
``internal_error`` and close 1011, and the worker is restarted after a backoff (then streams
work again), or, with ``--worker-restarts 0``, the server stays failed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

from tests.helpers import MS, StreamRun, collect, eventually, load, pcm16, running_server
from voxlive.pipeline.stream import Stream
from voxlive.server import service as service_module


def once(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original``, except that its first call raises (a bug outside the model call)."""
    fired = False

    def faulty(*args: Any, **kwargs: Any) -> Any:
        nonlocal fired
        if not fired:
            fired = True
            raise RuntimeError("injected fault")
        return original(*args, **kwargs)

    return faulty


# Where a fault may strike: (what it breaks, the worker it stops, the gate the server runs).
FAULTS: dict[str, tuple[Callable[[Any, pytest.MonkeyPatch], None], str, str]] = {
    "planning": (lambda b, mp: mp.setattr(b, "wait_s", once(b.wait_s)), "voxlive-model", "rms"),
    "shedding": (lambda b, mp: mp.setattr(b, "_shed", once(b._shed)), "voxlive-model", "rms"),
    "collecting": (
        lambda b, mp: mp.setattr(Stream, "take", once(Stream.take)),
        "voxlive-model",
        "rms",
    ),
    "the gate's decision": (
        lambda b, mp: mp.setattr(Stream, "vad_done", once(Stream.vad_done)),
        "voxlive-vad",
        "vad",
    ),
}


async def _readyz(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url + "/readyz")


async def _stream_until_closed(url: str, chunk: bytes) -> StreamRun:
    run = StreamRun()
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 16_000}))
        reader = asyncio.create_task(collect(ws, run))
        for _ in range(20):  # enough audio for windows; the stream closes on the fault
            if reader.done():
                break
            await ws.send(chunk)
            await asyncio.sleep(100 * MS)
        await asyncio.wait_for(reader, 10_000 * MS)
    return run


@pytest.mark.parametrize("where", list(FAULTS))
async def test_a_worker_fault_is_logged_fails_the_service_closes_streams_and_restarts(
    where: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    inject, worker, gate = FAULTS[where]
    monkeypatch.setattr(service_module, "WORKER_RESTART_BACKOFF_S", 0.5)
    female, rate = load("female_speech.wav")
    chunk = pcm16(female[rate : rate + rate // 2])  # 0.5 s of speech
    async with running_server(gate=gate, hop_ms=250, window_ms=500) as srv:
        inject(srv.service.batcher, monkeypatch)
        with caplog.at_level(logging.ERROR):
            run = await _stream_until_closed(srv.ws_url, chunk)
            status = await _readyz(srv.url)  # within the backoff: failed
        assert run.close_code == 1011
        [error] = run.of("error")
        assert error["code"] == "internal_error"
        assert "injected fault" not in error["message"]  # no internals reach a client
        assert status.status_code == 503 and status.json()["status"] == "failed"
        assert "injected fault" in status.json()["error"]
        [record] = [r for r in caplog.records if r.name == "voxlive.pipeline.worker"]
        assert record.exc_info is not None and str(record.exc_info[1]) == "injected fault"
        assert f"the {worker} worker stopped" in record.getMessage()
        crashes = srv.service.metrics.worker_crashes.labels(worker)._value.get()
        assert crashes == 1
        # Restarted after the backoff: ready again, and a new stream is served.
        await eventually(lambda: srv.service.ready, "the service ready again", within_s=5_000 * MS)
        assert (await _readyz(srv.url)).status_code == 200
        again = await _stream_then_stop(srv.ws_url, chunk)
        assert again.close_code == 1000 and again.results and not again.of("error")


async def _stream_then_stop(url: str, chunk: bytes) -> StreamRun:
    run = StreamRun()
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": 16_000}))
        reader = asyncio.create_task(collect(ws, run))
        for _ in range(4):
            await ws.send(chunk)
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 10_000 * MS)
    return run


async def test_with_no_restarts_left_the_service_stays_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service_module, "WORKER_RESTART_BACKOFF_S", 10 * MS)
    female, rate = load("female_speech.wav")
    chunk = pcm16(female[rate : rate + rate // 2])
    async with running_server(gate="rms", worker_restarts=0) as srv:
        batcher = srv.service.batcher
        monkeypatch.setattr(batcher, "wait_s", once(batcher.wait_s))
        run = await _stream_until_closed(srv.ws_url, chunk)
        assert run.close_code == 1011
        await asyncio.sleep(300 * MS)  # far past the backoff: still failed
        assert srv.service.status == "failed" and not batcher.running
        assert (await _readyz(srv.url)).status_code == 503
        async with websockets.connect(srv.ws_url) as ws:  # new streams are refused
            refused = json.loads(await ws.recv())
        assert refused["code"] == "not_ready"
