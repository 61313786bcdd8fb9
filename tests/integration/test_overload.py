"""Overload against a real server: live streams shed stale windows and say so; lossless streams
(start ``lossless``, ``?lossless=true``, ``POST /classify``) get back-pressure and lose nothing;
the capacity gauge in /readyz and /metrics. The model is the pitch classifier made slow, so a few
streams overload it; no timing goal is asserted here (those are in the benchmarks)."""

from __future__ import annotations

import asyncio
import io
import json
import socket

import httpx
import numpy as np
import pytest
import soundfile as sf
import websockets

from tests.fakes import Slowed
from tests.helpers import MS, StreamRun, collect, load, pcm16, running_server, stream_audio
from voxlive.inference.pitch import PitchClassifier

# 0.15 s per window, one window per call: about 6.7 windows/s, i.e. 3.3 live streams (hop 0.5 s).
# Shedding alone: graded degradation, the step before it, is off here (tested in test_degrade.py).
SLOW = dict(max_batch=1, max_wait_ms=0, gate="none", max_lag_ms=1000, degrade_max_hop_ms=0)


def _accounted(run: StreamRun) -> dict[str, int]:
    [end] = run.of("end")
    assert end["windows"] == end["results"] + end["gated"] + end["failed"] + end["dropped_windows"]
    return end


def _metric(text: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels, if any) in a /metrics text."""
    for line in text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:  # the server runs in this event loop: never block it
        return await http.get(url)


async def test_live_streams_under_2x_overload_shed_stale_windows_and_report_them() -> None:
    female, rate = load("female_speech.wav")
    async with running_server(classifier=Slowed(PitchClassifier(), 0.15), **SLOW) as srv:
        runs = await asyncio.gather(*(stream_audio(srv.ws_url, female, rate) for _ in range(7)))
        metrics = (await _get(srv.url + "/metrics")).text
    ends = [_accounted(run) for run in runs]
    assert sum(e["dropped_windows"] for e in ends) > 0
    assert _metric(metrics, 'voxlive_windows_total{outcome="shed"}') == sum(
        e["dropped_windows"] for e in ends
    )  # the ring dropped nothing: every drop was a shed window
    for run, end in zip(runs, ends, strict=True):
        reported = [r["dropped_ms"] for r in run.results]
        assert reported == sorted(reported)  # each result says how much was skipped so far
        assert end["dropped_ms"] == end["dropped_windows"] * 500
        assert not run.of("error")


async def test_lossless_streams_and_files_lose_nothing_under_overload() -> None:
    female, rate = load("female_speech.wav")
    long = np.tile(female, 3)  # 14 s sent flat out: far past the 4 s buffer
    wav = io.BytesIO()
    sf.write(wav, female, rate, format="WAV", subtype="PCM_16")
    start = {"type": "start", "sample_rate": rate}
    server = running_server(classifier=Slowed(PitchClassifier(), 0.1), **SLOW)
    async with server as srv, httpx.AsyncClient(timeout=60_000 * MS) as http:
        *live, asked, by_query, control, posted = await asyncio.gather(
            *(stream_audio(srv.ws_url, female, rate) for _ in range(3)),
            stream_audio(srv.ws_url, long, rate, speed=0, start={**start, "lossless": True}),
            stream_audio(srv.ws_url + f"?lossless=true&sample_rate={rate}", long, rate,
                         speed=0, send_start=False),
            stream_audio(srv.ws_url, long, rate, speed=0),  # the same, not lossless
            http.post(srv.url + "/classify", content=wav.getvalue()),
        )  # fmt: skip
    for run in (asked, by_query):
        end = _accounted(run)
        assert end["dropped_windows"] == 0 and end["results"] == end["windows"] == 28
        assert [r["seq"] for r in run.results] == list(range(28)) and not run.of("error")
    assert _accounted(control)["dropped_windows"] > 0  # what the lossless ones were spared
    assert posted.status_code == 200 and len(posted.json()["results"]) == 9
    assert all(_accounted(run) for run in live)


async def test_the_capacity_gauge_in_readyz_and_metrics() -> None:
    female, rate = load("female_speech.wav")
    async with running_server(classifier=Slowed(PitchClassifier(), 0.05), **SLOW) as srv:
        before = (await _get(srv.url + "/readyz")).json()["capacity"]
        await stream_audio(srv.ws_url, female, rate, speed=2.0)
        after = (await _get(srv.url + "/readyz")).json()["capacity"]
        metrics = (await _get(srv.url + "/metrics")).text
    # Known from the warm-up calls before any stream: a balancer can route from the start. At
    # most 20 windows/s (0.05 s each, plus the pitch model's own time), a window per 0.5 s per
    # stream: at most 10 streams.
    assert 3 < before["streams"] <= 10
    assert before["load_streams"] == 0.0 and before["utilization"] == 0.0
    assert 3 < after["streams"] <= 10 and after["load_streams"] > 0
    # utilization is rounded once from the exact ratio, load_streams and streams each rounded
    # to 0.001 too: the ratio of the rounded fields may differ from it by their rounding.
    load_, streams = after["load_streams"], after["streams"]
    slack = 0.0005 + 0.0005 * (1 + load_ / streams) / streams + 1e-9
    assert abs(after["utilization"] - load_ / streams) <= slack
    assert 3 < _metric(metrics, "voxlive_capacity_streams") <= 10
    assert _metric(metrics, "voxlive_load_streams") > 0


# How long the lossless client below stops reading once back-pressure has reached it.
PAUSE_S = 30_000 * MS


@pytest.mark.slow
async def test_a_lossless_client_that_stops_reading_for_30_s_gets_every_result_once() -> None:
    """Results a lossless client has not read are never dropped: past ``max_unsent_results``
    the server stops reading its audio (TCP back-pressure to the client) instead."""
    female, rate = load("female_speech.wav")
    chunk = pcm16(female[: rate // 10])  # 100 ms
    settings = dict(gate="none", window_ms=100, hop_ms=10, buffer_ms=400, max_unsent_results=8,
                    max_speed=0)  # fmt: skip
    async with running_server(**settings) as srv:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills after a few results
        sock.connect(("127.0.0.1", int(srv.url.rsplit(":", 1)[1])))
        sock.setblocking(False)
        run, sent = StreamRun(), 0
        # max_queue=1: the client library stops reading the socket while a message waits.
        async with websockets.connect(srv.ws_url, sock=sock, max_queue=1) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": rate, "lossless": True}))
            run.messages.append(json.loads(await ws.recv()))  # ready
            # Send without reading until a send blocks for a second: the server stopped reading.
            for _ in range(3000):  # at most 300 s of audio
                send = asyncio.ensure_future(ws.send(chunk))
                done, _ = await asyncio.wait([send], timeout=1_000 * MS)
                if not done:
                    break
                sent += 1
            assert not send.done(), "expected back-pressure, but every send went through"
            await asyncio.sleep(PAUSE_S)
            reader = asyncio.create_task(collect(ws, run))
            await send
            sent += 1
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(reader, 120_000 * MS)
    [end] = run.of("end")
    seqs = [m["seq"] for m in run.messages if "seq" in m]
    assert seqs == list(range(len(seqs)))  # every window once, in order
    assert end["dropped_results"] == 0 and end["dropped_windows"] == 0
    assert len(run.results) == end["windows"] == end["results"]
    assert end["windows"] >= sent * 10 - 10  # 10 windows per 100 ms chunk (hop 10 ms)
    assert run.close_code == 1000
