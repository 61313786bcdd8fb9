"""A real server on a free loopback port, real WebSocket clients, real recordings."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import websockets

from tests.helpers import (
    MS,
    StreamRun,
    collect,
    eventually,
    load,
    majority,
    pcm16,
    running_server,
    stream_audio,
)
from voxlive.protocol.frames import encode_wav_s16


def speech_labels(run: StreamRun) -> list[str]:
    return [r["label"] for r in run.results if r["label"] != "ambient"]


def assert_well_ordered(run: StreamRun, duration_ms: float, tail_ms: float = 1) -> None:
    seqs = [m["seq"] for m in run.messages if "seq" in m]
    assert seqs == list(range(len(seqs)))
    starts = [r["start_ms"] for r in run.results]
    assert starts == sorted(starts)
    # The last window ends at the stream's end (a tail under 100 ms is not classified).
    assert run.results[-1]["end_ms"] == pytest.approx(duration_ms, abs=tail_ms)


async def test_two_concurrent_streams_each_get_only_their_own_results() -> None:
    """Real-time pace; the reference mixed every client's audio in one shared queue."""
    female, rate = load("female_speech.wav")
    male, _ = load("male_speech.wav")
    async with running_server() as srv:
        runs = await asyncio.gather(
            stream_audio(srv.ws_url, female, rate, speed=1.0),
            stream_audio(srv.ws_url, male, rate, speed=1.0),
        )
    f_run, m_run = runs
    assert majority(speech_labels(f_run)) == "female"
    assert majority(speech_labels(m_run)) == "male"
    assert all(r["smoothed"] in ("female", "ambient") for r in f_run.results)
    assert sum(r["smoothed"] == "male" for r in m_run.results) >= 0.8 * len(m_run.results)
    # Each stream's timeline covers its own recording and nothing else.
    assert_well_ordered(f_run, 1000 * len(female) / rate)
    assert_well_ordered(m_run, 1000 * len(male) / rate)
    for run in runs:
        [end] = run.of("end")
        assert end["dropped_windows"] == 0 and end["failed"] == 0
        assert run.close_code == 1000
        assert all(r["latency_ms"] < 1000 for r in run.results)
    assert f_run.of("ready")[0]["stream_id"] != m_run.of("ready")[0]["stream_id"]


async def test_faster_than_real_time_at_44k_stereo_float() -> None:
    female, rate = load("female_speech.wav")
    import soxr

    hi = soxr.resample(female, rate, 44_100).astype(np.float32)
    stereo = np.stack([hi, hi], axis=1).astype("<f4")
    async with running_server() as srv:
        run = StreamRun()
        async with websockets.connect(srv.ws_url) as ws:
            reader = asyncio.create_task(collect(ws, run))
            await ws.send(json.dumps({"type": "start", "sample_rate": 44_100,
                                      "encoding": "pcm_f32le", "channels": 2}))  # fmt: skip
            for i in range(0, len(stereo), 4410):
                await ws.send(stereo[i : i + 4410].tobytes())
                await asyncio.sleep(25 * MS)  # 100 ms of audio every 25 ms: 4x real time
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(reader, 30_000 * MS)
    assert run.of("ready")[0]["sample_rate"] == 44_100
    assert majority(speech_labels(run)) == "female"
    assert run.of("end")[0]["dropped_windows"] == 0
    assert_well_ordered(run, 1000 * len(female) / rate)


async def test_tiny_wav2vec2_loaded_by_path_serves_results(tiny_model_dir: Path) -> None:
    female, rate = load("female_speech.wav")
    async with running_server(model=str(tiny_model_dir), labels=("low", "high")) as srv:
        async with __import__("httpx").AsyncClient() as client:
            ready = (await client.get(srv.url + "/readyz")).json()
        run = await stream_audio(srv.ws_url, female, rate, speed=4.0)
    # --backend auto (the default) on a CPU: exported to ONNX (into the test run's cache folder)
    assert ready["backend"] == "onnx" and ready["model"] == str(tiny_model_dir)
    assert ready["labels"] == ["low", "high"] and ready["fallback"] is None
    assert run.results and {r["label"] for r in run.results} <= {"low", "high", "ambient"}
    for r in run.results:
        if not r["gated"]:
            assert set(r["scores"]) == {"low", "high"}
            assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-4)


async def test_stop_flushes_every_buffered_window() -> None:
    female, rate = load("female_speech.wav")
    async with running_server(buffer_ms=10_000) as srv:
        run = await stream_audio(srv.ws_url, female, rate, speed=0)  # all at once, then stop
    [end] = run.of("end")
    assert end["windows"] == (
        end["results"]
        + end["gated"]
        + end["failed"]
        + end["dropped_windows"]
        + end["dropped_results"]
    )
    assert end["dropped_windows"] == 0 and len(run.results) == end["windows"]
    assert end["duration_ms"] == pytest.approx(1000 * len(female) / rate, abs=0.1)
    assert_well_ordered(run, end["duration_ms"])
    assert run.messages[-1]["type"] == "end" and run.close_code == 1000
    # Segments of the smoothed label tile the stream; the last one comes just before `end`.
    segments = run.of("segment")
    assert segments and run.messages[-2] == segments[-1]
    assert segments[0]["start_ms"] == 0 and segments[-1]["end_ms"] == run.results[-1]["end_ms"]
    assert all(a["end_ms"] == b["start_ms"] for a, b in itertools.pairwise(segments))
    assert all(a["label"] != b["label"] for a, b in itertools.pairwise(segments))
    assert sum(s["windows"] for s in segments) == len(run.results)


async def test_reference_client_wav_frames_get_results_with_class() -> None:
    """The reference React page: no start message, one 1024-sample 16 kHz WAV per frame."""
    female, rate = load("female_speech.wav")
    async with running_server() as srv:
        run = StreamRun()
        async with websockets.connect(srv.ws_url) as ws:
            reader = asyncio.create_task(collect(ws, run))
            for i in range(0, len(female) - 1024, 1024):
                await ws.send(encode_wav_s16(female[i : i + 1024], rate))
                await asyncio.sleep(16 * MS)  # 64 ms of audio every 16 ms
            await eventually(lambda: len(run.results) >= 6, "six results", within_s=10_000 * MS)
        await asyncio.wait_for(reader, 10_000 * MS)
    assert all("class" in r and r["class"] == r["label"] for r in run.results)
    assert majority(speech_labels(run)) == "female"


async def test_bad_input_gets_errors_while_another_stream_is_unaffected() -> None:
    female, rate = load("female_speech.wav")
    async with running_server() as srv:
        good = asyncio.create_task(stream_audio(srv.ws_url, female, rate, speed=2.0))
        bad = StreamRun()
        async with websockets.connect(srv.ws_url) as ws:
            reader = asyncio.create_task(collect(ws, bad))
            await ws.send(
                json.dumps({"type": "start", "sample_rate": 16_000, "encoding": "pcm_f32le"})
            )
            await ws.send(b"\x01\x02\x03")  # not a multiple of 4 bytes
            await ws.send("this is not json")
            await ws.send(json.dumps({"type": "dance"}))
            await ws.send(json.dumps({"type": "start"}))  # a second start
            await ws.send(np.array([np.nan] * 4, "<f4").tobytes())
            await ws.send(b"")
            await ws.send(b"RIFF\xff\xff\xff\xffWAVEfmt ")  # truncated WAV
            for i in range(0, len(female), 1600):  # then good audio: the stream goes on
                await ws.send(female[i : i + 1600].astype("<f4").tobytes())
                await asyncio.sleep(50 * MS)
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(reader, 30_000 * MS)
        good_run = await good
    codes = [e["code"] for e in bad.of("error")]
    assert codes == ["bad_frame", "bad_json", "unknown_type", "unexpected_message", "bad_frame",
                     "bad_frame", "bad_frame"]  # fmt: skip
    assert all("Traceback" not in e["message"] and "/" not in e["message"] for e in bad.of("error"))
    assert majority(speech_labels(bad)) == "female" and bad.close_code == 1000
    assert not good_run.of("error") and good_run.close_code == 1000
    assert majority(speech_labels(good_run)) == "female"


async def test_unsupported_start_closes_with_1003() -> None:
    async with running_server() as srv:
        run = StreamRun()
        async with websockets.connect(srv.ws_url) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": 4000}))
            await asyncio.wait_for(collect(ws, run), 10_000 * MS)
    assert run.close_code == 1003
    [err] = run.of("error")
    assert err["code"] == "unsupported_format" and "got 4000" in err["message"]


async def test_query_parameters_start_the_stream() -> None:
    female, rate = load("female_speech.wav")
    async with running_server() as srv:
        run = StreamRun()
        async with websockets.connect(srv.ws_url + "?sample_rate=16000&encoding=pcm_s16le") as ws:
            reader = asyncio.create_task(collect(ws, run))
            await ws.send(pcm16(female[: 2 * rate]))
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(reader, 10_000 * MS)
    assert run.messages[0]["type"] == "ready" and len(run.results) >= 3


async def test_stream_limit_refuses_with_1013() -> None:
    async with running_server(max_streams=1) as srv, websockets.connect(srv.ws_url) as first:
        await first.send(json.dumps({"type": "start"}))
        await first.recv()  # ready: the first stream is admitted
        run = StreamRun()
        async with websockets.connect(srv.ws_url) as second:
            await asyncio.wait_for(collect(second, run), 10_000 * MS)
    assert run.close_code == 1013 and run.of("error")[0]["code"] == "too_many_streams"


async def test_oversized_frame_closes_with_1009() -> None:
    async with running_server(max_frame_bytes=4096) as srv:
        run = StreamRun()
        async with websockets.connect(srv.ws_url) as ws:
            await ws.send(b"\x00" * 5000)
            await asyncio.wait_for(collect(ws, run), 10_000 * MS)
    # refused by the WebSocket layer before the frame is assembled; the close reason says why
    assert run.close_code == 1009
    assert "5000 bytes" in (run.close_reason or "") and "4096" in (run.close_reason or "")


async def test_reference_settings_200_ms_window_100_ms_hop() -> None:
    female, rate = load("female_speech.wav")
    async with running_server(window_ms=200, hop_ms=100, buffer_ms=2000) as srv:
        run = await stream_audio(srv.ws_url, female, rate, speed=2.0)
    assert run.of("ready")[0]["window_ms"] == 200
    [end] = run.of("end")
    assert end["dropped_windows"] == 0 and end["windows"] >= 40
    assert all(r["end_ms"] - r["start_ms"] == 200 for r in run.results)
    assert majority(speech_labels(run)) == "female"
    assert_well_ordered(run, 1000 * len(female) / rate, tail_ms=100)


@pytest.mark.parametrize(("gate", "gated_share"), [("vad", 0.6), ("none", 0.0)])
async def test_the_vad_gate_keeps_a_coffee_shop_from_the_model(
    gate: str, gated_share: float
) -> None:
    """A speech-free recording with clatter and distant chatter: the neural gate settles most
    windows as ambient without the model; without a gate every window goes to the model."""
    coffee, rate = load("ambient_coffee_shop.wav")
    female, _ = load("female_speech.wav")
    async with running_server(gate=gate) as srv:
        runs = await asyncio.gather(
            stream_audio(srv.ws_url, coffee, rate, speed=8.0),
            stream_audio(srv.ws_url, female, rate, speed=8.0),
        )
    coffee_run, female_run = runs
    [end] = coffee_run.of("end")
    assert end["windows"] == len(coffee_run.results) >= 20
    if gated_share:
        assert end["gated"] >= gated_share * end["windows"]
    else:
        assert end["gated"] == 0 and end["results"] == end["windows"]
    assert majority(speech_labels(female_run)) == "female"  # speech still gets through
