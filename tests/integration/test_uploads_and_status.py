"""POST /classify under pressure, and who may read the server's status: against a real server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import numpy as np
import pytest

from tests.fakes import FakeClassifier, Slowed
from tests.helpers import DATA, MS, eventually, load, running_server, stream_audio
from voxlive.inference.pitch import PitchClassifier
from voxlive.protocol.frames import encode_wav_s16


def _wav(seconds: float, rate: int = 16_000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return encode_wav_s16((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate)


async def test_uploads_past_the_limit_are_busy_and_the_next_one_gets_in() -> None:
    slow = Slowed(PitchClassifier(), per_window_s=50 * MS)
    async with (
        running_server(classifier=slow, max_uploads=1, gate="none") as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=60_000 * MS) as client,
    ):
        first = asyncio.create_task(client.post("/classify", content=_wav(8)))
        await eventually(lambda: srv.service.uploads.active == 1, "the first upload to run")
        busy = await client.post("/classify", content=_wav(1))
        assert (await first).status_code == 200
        after = await client.post("/classify", content=_wav(1))
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "busy"
    assert busy.headers["retry-after"] == "1"
    assert after.status_code == 200


async def test_an_upload_whose_client_leaves_is_cancelled() -> None:
    slow = Slowed(PitchClassifier(), per_window_s=200 * MS)
    async with (
        running_server(classifier=slow, gate="none") as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=500 * MS) as client,
    ):
        with contextlib.suppress(httpx.ReadTimeout):
            await client.post("/classify", content=_wav(30))  # ~60 windows × 0.2 s
        batcher = srv.service.batcher
        assert batcher is not None
        await eventually(lambda: srv.service.uploads.active == 0, "the upload to end", 5_000 * MS)
        await eventually(lambda: not batcher._streams, "its stream to be released", 5_000 * MS)


async def test_a_slow_body_times_out_and_frees_its_slot() -> None:
    async with running_server(upload_timeout_ms=1000, max_uploads=1) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nRIFF"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.read(200), 5_000 * MS)
        writer.close()
        assert head.startswith(b"HTTP/1.1 408")
        async with httpx.AsyncClient(base_url=srv.url) as client:
            ok = await client.post("/classify", content=(DATA / "female_speech.wav").read_bytes())
        assert ok.status_code == 200


async def test_shutdown_gives_uploads_the_drain_time_then_answers_503() -> None:
    slow = Slowed(PitchClassifier(), per_window_s=200 * MS)
    async with (
        running_server(classifier=slow, drain_timeout_ms=300, gate="none") as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=30_000 * MS) as client,
    ):
        upload = asyncio.create_task(client.post("/classify", content=_wav(30)))
        await eventually(lambda: srv.service.uploads.active == 1, "the upload to run")
        await srv.service.drain(0.3)
        cut = await upload
        late = await client.post("/classify", content=_wav(1))
    assert cut.status_code == 503 and cut.json()["error"]["code"] == "shutting_down"
    assert late.status_code == 503 and late.json()["error"]["code"] == "shutting_down"


async def test_live_windows_go_before_an_upload() -> None:
    """A live stream next to a long upload: its windows are served first, so its latency stays
    near one model call while the upload's windows wait."""
    female, rate = load("female_speech.wav")
    fake = FakeClassifier(per_window_s=50 * MS, sample_rate=16_000)
    async with (
        running_server(classifier=fake, gate="none", max_batch=8) as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=60_000 * MS) as client,
    ):
        upload = asyncio.create_task(client.post("/classify", content=_wav(60)))
        await eventually(lambda: srv.service.uploads.active == 1, "the upload to run")
        live = await stream_audio(srv.ws_url, female, rate, speed=1.0)
        assert (await upload).status_code == 200
    latencies = sorted(r["latency_ms"] for r in live.results)
    # sharing calls of 8 with the upload (0.4 s each), a live window would wait longer
    assert latencies[int(0.9 * (len(latencies) - 1))] < 300
    # and the upload ran in small calls while the live stream was open
    assert max(fake.batches) <= 8


async def test_an_upload_answers_what_the_same_file_streamed_losslessly_says() -> None:
    """The answer is the file's stream in the wire protocol's own messages: the same ready,
    windows, segments and end as the file streamed over /audio (lossless), ids and latencies
    aside (and scores within 1e-5: the stream's audio went through 16-bit PCM once more); one
    stream id from ready to end."""
    female, rate = load("female_speech.wav")
    async with (
        running_server(gate="none") as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=60_000 * MS) as client,
    ):
        upload = await client.post("/classify", content=(DATA / "female_speech.wav").read_bytes())
        live = await stream_audio(srv.ws_url, female, rate, speed=0,
                                  start={"type": "start", "sample_rate": rate, "lossless": True})  # fmt: skip
    answer = upload.json()

    def bare(message: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in message.items() if k not in ("stream_id", "latency_ms")}

    def near(message: dict[str, Any]) -> dict[str, Any]:
        close = ("confidence", "scores")
        return {
            k: pytest.approx(v, abs=1e-5) if k in close else v for k, v in bare(message).items()
        }

    windows = [m for m in live.messages if m["type"] in ("result", "error")]
    assert bare(answer["ready"]) == bare(live.of("ready")[0])
    assert [bare(m) for m in answer["results"]] == [near(m) for m in windows]
    assert answer["segments"] == [near(m) for m in live.of("segment")]
    assert bare(answer["end"]) == bare(live.of("end")[0])
    assert answer["end"]["windows"] == len(answer["results"]) > 5
    assert answer["ready"]["stream_id"] == answer["end"]["stream_id"]
    assert answer["end"]["duration_ms"] == answer["duration_ms"]


async def test_readyz_says_degraded_while_a_fallback_serves() -> None:
    fallback = PitchClassifier(
        fallback="the default model is not cached and the hub is unreachable"
    )
    async with running_server(classifier=fallback) as srv, httpx.AsyncClient() as client:
        lenient = await client.get(srv.url + "/readyz")
        strict = await client.get(srv.url + "/readyz?strict=1")
    assert lenient.status_code == 200 and lenient.json()["status"] == "degraded"
    assert strict.status_code == 503 and strict.json()["status"] == "degraded"
    assert "hub is unreachable" in lenient.json()["fallback"]


async def test_status_behind_the_token_when_asked() -> None:
    async with (
        running_server(token="s3cret", status_access="token") as srv,
        httpx.AsyncClient(base_url=srv.url) as client,
    ):
        auth = {"Authorization": "Bearer s3cret"}
        anonymous = [await client.get(p) for p in ("/readyz", "/metrics")]
        with_token = [await client.get(p, headers=auth) for p in ("/readyz", "/metrics")]
        health = await client.get("/healthz")
    assert [r.status_code for r in anonymous] == [401, 401]
    assert [r.status_code for r in with_token] == [200, 200]
    assert health.status_code == 200
