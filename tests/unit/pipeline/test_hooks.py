"""A stream's hooks (pipeline/hooks.py): each wakes whom it says (the batcher, the VAD runner,
the stream's reader), and a backlogged lossless stream's reader is told when there is room."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.fakes import FakeClassifier
from tests.helpers import MS
from voxlive.pipeline.batcher import Batcher
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.hooks import StreamHooks
from voxlive.pipeline.stream import Stream

# 1000 Hz: one sample per ms; a 100 ms window every 100 ms in a 1 s ring
CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=1000,
                   labels=("a", "b"), gate_rms=0.0, smoothing=1)  # fmt: skip


class Woken:
    """Stands in for the batcher and its VAD runner: counts how often each was woken."""

    def __init__(self, vad: Woken | None = None) -> None:
        self.vad = vad
        self.times = 0

    def notify(self) -> None:
        self.times += 1


def test_each_hook_wakes_whom_it_says() -> None:
    vad = Woken()
    batcher = Woken(vad)
    read: list[str] = []
    hooks = StreamHooks(batcher, on_results=lambda: read.append("results"))  # type: ignore[arg-type]
    hooks.windows_pending()
    assert (batcher.times, vad.times, read) == (1, 0, [])
    hooks.audio_arrived()
    assert (batcher.times, vad.times, read) == (1, 1, [])
    hooks.results_ready()
    assert (batcher.times, vad.times, read) == (1, 1, ["results"])
    hooks.on_results = None  # nobody reads (a stream whose client is away)
    hooks.results_ready()
    assert read == ["results"]
    StreamHooks(Woken()).audio_arrived()  # type: ignore[arg-type]  # no VAD runner: no one to wake


async def test_a_stream_that_is_not_backlogged_has_room_at_once() -> None:
    hooks = StreamHooks(Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0))
    s = Stream("file", CFG, listener=hooks)
    s.lossless = True
    s.push(np.full(500, 0.5, np.float32))
    assert not s.backlogged
    await asyncio.wait_for(hooks.wait_for_room(s), 100 * MS)


async def test_a_backlogged_lossless_stream_is_told_when_there_is_room_again() -> None:
    model = FakeClassifier(latency_s=5 * MS)
    batcher = Batcher(model, max_batch=2, max_wait_ms=0)
    hooks = StreamHooks(batcher)
    s = Stream("file", CFG, listener=hooks)
    s.lossless = True
    batcher.add(s)
    s.push(np.full(1500, 0.5, np.float32))  # 1.5 s of windows: more than the 1 s buffer
    assert s.backlogged
    batcher.start()
    out: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(5_000 * MS):
            await hooks.wait_for_room(s)
            assert not s.backlogged
            s.push(np.full(500, 0.5, np.float32))  # and the stream goes on
            while len(out) < 20:
                out.extend(s.pop_messages())
                await asyncio.sleep(2 * MS)
    finally:
        await batcher.close()
    assert [m["seq"] for m in out] == list(range(20))
    assert all(m["type"] == "result" for m in out)
