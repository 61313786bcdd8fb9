"""How fast streams are read, against a real server: a live stream is held to real time once
its catch-up is spent, a lossless one is not; and a lossless stream the server itself holds back
is not closed by the server's own keepalive."""

from __future__ import annotations

import time

import numpy as np

from tests.fakes import Slowed
from tests.helpers import load, running_server, stream_audio
from voxlive.inference.pitch import PitchClassifier


async def test_a_live_stream_is_read_at_real_time_once_its_catch_up_is_spent() -> None:
    female, rate = load("female_speech.wav")
    audio = female[: 3 * rate]
    async with running_server(live_ahead_ms=1000, gate="none") as srv:
        t0 = time.monotonic()
        live = await stream_audio(srv.ws_url, audio, rate, speed=0, chunk_ms=50)
        live_s = time.monotonic() - t0
        t0 = time.monotonic()
        lossless = await stream_audio(srv.ws_url, audio, rate, speed=0, chunk_ms=50,
                                      start={"type": "start", "sample_rate": rate,
                                             "lossless": True})  # fmt: skip
        lossless_s = time.monotonic() - t0
    print(f"\n3 s of audio sent flat out: live {live_s:.2f} s, lossless {lossless_s:.2f} s")
    assert live_s >= 3.0 - 1.0 - 0.1  # everything past the 1 s catch-up at real time
    assert lossless_s < 1.5  # held to max_speed (20x) only
    for run in (live, lossless):
        assert run.close_code == 1000 and len(run.results) == 5


async def test_a_lossless_stream_held_back_by_the_server_outlives_the_keepalive() -> None:
    female, rate = load("female_speech.wav")
    audio = np.concatenate([female] * 3)  # about 14 s, sent flat out to a slowed model
    slow = Slowed(PitchClassifier(), per_window_s=0.1)  # 10 windows/s: ~2x real time, no more
    async with running_server(
        classifier=slow, gate="none", buffer_ms=2000, max_speed=0,
        uvicorn_changes={"ws_ping_interval": 0.2, "ws_ping_timeout": 0.3},
    ) as srv:  # fmt: skip
        run = await stream_audio(srv.ws_url, audio, rate, speed=0,
                                 start={"type": "start", "sample_rate": rate,
                                        "lossless": True})  # fmt: skip
    # The reader spent seconds holding the socket (its pongs unread): no 1011, every window.
    [end] = run.of("end")
    assert run.close_code == 1000, (run.close_code, run.close_reason)
    assert end["dropped_windows"] == end["dropped_results"] == 0
    assert len(run.results) == end["windows"] >= (len(audio) / rate - 1) // 0.5 + 1
