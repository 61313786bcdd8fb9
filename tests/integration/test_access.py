"""Token, origin allowlist and idle timeout against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import numpy as np
import websockets

from tests.helpers import DATA, MS, StreamRun, collect, load, pcm16, running_server, stream_audio


async def _run(url: str, *frames: str | bytes, origin: str | None = None) -> StreamRun:
    run = StreamRun()
    async with websockets.connect(url, origin=origin) as ws:  # type: ignore[arg-type]
        reader = asyncio.create_task(collect(ws, run))
        with contextlib.suppress(websockets.ConnectionClosed):  # refused streams close early
            for frame in frames:
                await ws.send(frame)
        await asyncio.wait_for(reader, 10_000 * MS)
    return run


async def _refused(url: str, origin: str) -> websockets.http11.Response:
    try:
        async with websockets.connect(url, origin=origin):  # type: ignore[arg-type]
            pass
    except websockets.InvalidStatus as exc:
        return exc.response
    raise AssertionError("expected the upgrade to be refused")


async def test_token_is_required_when_configured() -> None:
    female, rate = load("female_speech.wav")
    audio = pcm16(female[:rate])
    stop = json.dumps({"type": "stop"})
    async with running_server(token="s3cret") as srv:
        no_token = await _run(srv.ws_url, audio)
        wrong = await _run(srv.ws_url, json.dumps({"type": "start", "token": "guess"}), audio)
        right = await _run(
            srv.ws_url, json.dumps({"type": "start", "token": "s3cret"}), audio, stop
        )
        by_query = await _run(srv.ws_url + "?token=s3cret", audio, stop)
        async with httpx.AsyncClient(base_url=srv.url) as client:
            body = (DATA / "female_speech.wav").read_bytes()
            denied = await client.post("/classify", content=body)
            allowed = await client.post(
                "/classify", content=body, headers={"Authorization": "Bearer s3cret"}
            )
    for run in (no_token, wrong):
        assert run.close_code == 1008
        [err] = run.of("error")
        assert err["code"] == "unauthorized" and "s3cret" not in err["message"]
        assert not run.results
    assert "token before any audio" in no_token.of("error")[0]["message"]
    assert "got a wrong token" in wrong.of("error")[0]["message"]
    for run in (right, by_query):
        assert run.close_code == 1000 and run.results and run.of("end")
    assert denied.status_code == 401 and allowed.status_code == 200


async def test_origin_allowlist() -> None:
    stop = json.dumps({"type": "stop"})
    async with running_server() as srv:
        host = srv.url.removeprefix("http://")
        evil = await _refused(srv.ws_url, origin="https://evil.example")
        same = await _run(srv.ws_url, stop, origin=f"http://{host}")
        local = await _run(srv.ws_url, stop, origin="http://localhost:5173")
        no_origin = await _run(srv.ws_url, stop)
    # refused before the WebSocket is accepted: an HTTP 403 whose body says why
    assert evil.status_code == 403
    assert json.loads(evil.body)["code"] == "origin_not_allowed"
    for run in (same, local, no_origin):
        assert run.close_code == 1000 and run.of("end")
    async with running_server(allowed_origins=("https://app.example",)) as srv:
        listed = await _run(srv.ws_url, stop, origin="https://app.example")
        other = await _refused(srv.ws_url, origin="http://localhost:5173")
    assert listed.close_code == 1000 and other.status_code == 403


async def test_idle_stream_is_closed() -> None:
    async with running_server(idle_timeout_ms=300) as srv:
        run = await _run(srv.ws_url, json.dumps({"type": "start"}))
    assert run.close_code == 1001
    assert [m["type"] for m in run.messages] == ["ready", "error", "end"]
    assert run.of("error")[0]["code"] == "idle_timeout"


async def test_a_client_faster_than_max_speed_is_slowed_not_dropped() -> None:
    female, rate = load("female_speech.wav")
    audio = np.tile(female, 2)[: 6 * rate]  # 6 s of audio, sent as fast as the socket allows
    async with running_server(max_speed=5.0, buffer_ms=10_000) as srv:
        t0 = time.monotonic()
        run = await stream_audio(srv.ws_url, audio, rate, speed=0)
        elapsed = time.monotonic() - t0
    # (6 s - 1 s burst) / 5x = 1 s at least; unthrottled it takes a few tens of ms.
    assert elapsed >= 0.8
    [end] = run.of("end")
    assert end["dropped_windows"] == 0 and end["duration_ms"] == 6000


async def test_max_stream_duration_flushes_and_closes() -> None:
    async with running_server(max_stream_ms=300) as srv:
        run = await _run(srv.ws_url, json.dumps({"type": "start"}))
    assert run.close_code == 1001
    assert [m["type"] for m in run.messages] == ["ready", "error", "end"]
    assert run.of("error")[0]["code"] == "max_duration"
