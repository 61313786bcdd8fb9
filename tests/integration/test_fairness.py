"""Admission under a burst, and fairness between a flooding client and a real-time one."""

from __future__ import annotations

import asyncio
import contextlib
import json

import numpy as np
import websockets

from tests.fakes import Slowed
from tests.helpers import MS, StreamRun, collect, load, running_server, stream_audio
from voxlive.inference.pitch import PitchClassifier


async def test_a_burst_of_connects_admits_exactly_max_streams() -> None:
    async with running_server(max_streams=5) as srv:

        async def attempt() -> StreamRun:
            run = StreamRun()
            async with websockets.connect(srv.ws_url) as ws:
                reader = asyncio.create_task(collect(ws, run))
                with contextlib.suppress(websockets.ConnectionClosed):  # refused: closed at once
                    await ws.send(json.dumps({"type": "start"}))
                    await asyncio.sleep(500 * MS)  # hold the slot while the others try
                    await ws.close()
                await reader
            return run

        runs = await asyncio.gather(*(attempt() for _ in range(20)))
    admitted = [r for r in runs if r.of("ready")]
    refused = [r for r in runs if r.close_code == 1013]
    assert len(admitted) == 5 and len(refused) == 15
    assert all(r.of("error")[0]["code"] == "too_many_streams" for r in refused)


async def test_a_client_flooding_at_8x_does_not_starve_a_real_time_one() -> None:
    """The reference let an 8x client take over 85 % of the classifier. Here the batcher takes
    windows round-robin, so the real-time stream keeps up; only the flooder's own ring drops.
    (At defaults the flooder is not even read faster than real time past 5 s,
    ``live_ahead_ms``; pacing is off here to show the batcher's own fairness, and so is graded
    degradation: the flooder's demand would widen every live stream's hop.)"""
    female, rate = load("female_speech.wav")
    male, _ = load("male_speech.wav")
    looped = np.tile(male, 6)  # 34 s of audio sent in about 4 s
    async with running_server(
        classifier=Slowed(PitchClassifier(), per_window_s=100 * MS),
        max_batch=1,
        max_wait_ms=0,
        live_ahead_ms=0,
        degrade_max_hop_ms=0,
    ) as srv:
        calm, flood = await asyncio.gather(
            stream_audio(srv.ws_url, female, rate, speed=1.0),
            stream_audio(srv.ws_url, looped, rate, speed=8.0),
        )
    [calm_end], [flood_end] = calm.of("end"), flood.of("end")
    assert calm_end["dropped_windows"] == 0 and not calm.of("error")
    assert flood_end["dropped_windows"] > 0  # the flooder pays for its own excess
    # The real-time stream got its fair share: its results stayed live.
    assert np.median([r["latency_ms"] for r in calm.results]) < 1000
