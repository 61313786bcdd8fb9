"""Leaks, idle CPU and the HTTP API, against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import threading
import time

import httpx
import pytest
import websockets

from tests.helpers import DATA, MS, eventually, load, majority, pcm16, running_server, stream_audio


async def test_no_thread_or_task_is_left_behind_after_50_cycles() -> None:
    """The reference started a thread per connection and never stopped it."""
    female, rate = load("female_speech.wav")
    chunk = pcm16(female[: rate * 3 // 2])
    # Vanished clients' streams wait resume_grace_ms for a resume; keep that short here.
    async with running_server(resume_grace_ms=200) as srv:

        async def cycle(i: int) -> None:
            async with websockets.connect(srv.ws_url) as ws:
                await ws.send(chunk)
                if i % 2:  # half stop politely and read to the end, half just vanish
                    await ws.send(json.dumps({"type": "stop"}))
                    async for _ in ws:
                        pass

        await cycle(1)  # warm up lazily created threads (the model worker)
        await asyncio.sleep(200 * MS)
        threads, tasks = threading.active_count(), len(asyncio.all_tasks())
        for i in range(50):
            await cycle(i)
        # Vanished clients are noticed asynchronously, and their streams wait out the grace.
        await eventually(lambda: not srv.service.connections, "every connection closed")
        await eventually(lambda: not srv.service.batcher._streams, "every stream released")
        gc.collect()
        assert threading.active_count() == threads
        assert len(asyncio.all_tasks()) == tasks
        metrics = srv.service.metrics
        assert metrics.streams_open._value.get() == 0
        assert metrics.streams_total._value.get() == 51


async def test_idle_server_with_open_streams_uses_no_cpu() -> None:
    """The reference busy-waited one core per connection, forever."""
    async with running_server() as srv:
        sockets = [await websockets.connect(srv.ws_url) for _ in range(4)]
        for ws in sockets:
            await ws.send(json.dumps({"type": "start"}))
            await ws.recv()
        await asyncio.sleep(200 * MS)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(1_500 * MS)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        for ws in sockets:
            await ws.close()
    assert cpu / wall < 0.05, f"idle server used {100 * cpu / wall:.1f}% CPU"


async def test_health_ready_metrics_and_classify() -> None:
    async with (
        running_server(max_upload_bytes=400_000) as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=30_000 * MS) as client,
    ):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["model"] == "pitch"
        assert ready["labels"] == ["male", "female"] and ready["window_ms"] == 1000

        mp3 = (DATA / "female_speech.mp3").read_bytes()
        body = (await client.post("/classify", content=mp3)).json()
        assert body["duration_ms"] > 4000 and body["model"] == "pitch"
        labels = [r["label"] for r in body["results"] if r["label"] != "ambient"]
        assert majority(labels) == "female"
        segments = body["segments"]
        assert segments and segments[-1]["end_ms"] == body["results"][-1]["end_ms"]
        assert all(a["end_ms"] == b["start_ms"] for a, b in itertools.pairwise(segments))
        assert body["labels"] == ["male", "female"]

        bad = await client.post("/classify", content=b"definitely not audio" * 10)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_audio_file"
        assert (await client.post("/classify", content=b"")).status_code == 400
        big = await client.post("/classify", content=b"\x00" * 500_000)
        assert big.status_code == 413

        text = (await client.get("/metrics")).text
        assert 'voxlive_windows_total{outcome="classified"}' in text
        assert "voxlive_batch_size_bucket" in text and "voxlive_streams_open 0.0" in text


async def test_readyz_is_503_while_the_model_loads() -> None:
    from voxlive.inference.pitch import PitchClassifier
    from voxlive.server.app import create_app
    from voxlive.settings import Settings

    gate = threading.Event()

    def slow_loader(settings: Settings) -> PitchClassifier:
        gate.wait(10_000 * MS)
        return PitchClassifier()

    app = create_app(Settings(model="pitch", web_dir="/nonexistent"), loader=slow_loader)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
    ):
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        assert (await client.get("/healthz")).status_code == 200
        gate.set()
        await eventually(lambda: app.state.service.ready, "ready once the model is loaded")
        assert (await client.get("/readyz")).status_code == 200


async def test_shutdown_flushes_open_streams_then_closes_1001() -> None:
    """SIGTERM order: unready and no new streams; open streams get their pending results and
    ``end``, then close 1001 (uvicorn alone would close them with 1012 at once)."""
    female, rate = load("female_speech.wav")
    async with running_server() as srv:
        ws = await websockets.connect(srv.ws_url)
        await ws.send(pcm16(female[: 3 * rate]))  # 5 windows buffered at once, no stop
        await ws.recv()  # ready
        srv.server.should_exit = True
        received = []
        with contextlib.suppress(websockets.ConnectionClosed):
            async for m in ws:
                received.append(json.loads(m))
        assert srv.service.status == "stopping"
    assert ws.close_code == 1001
    kinds = [m["type"] for m in received]
    assert kinds[-1] == "end" and kinds.count("result") == 5
    end = received[-1]
    assert end["windows"] == 5 and end["dropped_windows"] == 0  # 0–3 s, hop 0.5 s: 5 windows


async def test_a_bug_while_sending_is_logged_and_closes_the_stream_with_1011(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream whose results cannot be built must not go quiet: the client hears 1011 and the
    log has the traceback."""
    from voxlive.pipeline.outbox import Outbox

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("injected into message building")

    monkeypatch.setattr(Outbox, "_message", broken)
    female, rate = load("female_speech.wav")
    async with running_server() as srv:
        run = await stream_audio(srv.ws_url, female[: 2 * rate], rate, speed=0)
    assert run.close_code == 1011
    assert run.of("ready") and not run.of("end")
    [record] = [r for r in caplog.records if r.exc_info and r.levelname == "ERROR"]
    assert "sending failed" in record.getMessage() and "1011" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
