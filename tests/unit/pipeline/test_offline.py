"""Classifying a whole recording through a stream and the batcher (``classify_samples``): a file
loses nothing, goes after live streams in small calls, is read only a block ahead of the model,
and its own tail is classified too."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from tests.fakes import FakeClassifier
from tests.helpers import MS
from voxlive.metrics import Metrics
from voxlive.pipeline.batcher import Batcher
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.hooks import StreamHooks
from voxlive.pipeline.offline import classify_samples
from voxlive.pipeline.stream import Stream
from voxlive.protocol.messages import StreamMessage

# 1000 Hz: one sample per ms; a 100 ms window every 100 ms
CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=1000,
                   labels=("a", "b"), gate="none", smoothing=1)  # fmt: skip


def _ramp(windows: int, hop: int = 100) -> np.ndarray:
    """Window i (of ``hop`` samples) is the constant i / windows: its mean tells which it is."""
    levels = np.arange(windows, dtype=np.float32) / windows
    return np.repeat(levels, hop)


def _results(out: list[StreamMessage]) -> list[StreamMessage]:
    return [m for m in out if m["type"] != "segment"]


async def _classify(
    model: FakeClassifier,
    samples: np.ndarray,
    config: StreamConfig = CFG,
    *,
    live: bool = False,
    **options: object,
) -> tuple[list[StreamMessage], Batcher]:
    """Classify with a started batcher (and, when ``live``, one idle live stream open next to
    the file); the batcher is closed afterwards."""
    batcher = Batcher(model, **{"max_batch": 9, "max_wait_ms": 0, **options})  # type: ignore[arg-type]
    if live:
        batcher.add(Stream("live", CFG, listener=StreamHooks(batcher)))
    batcher.start()
    try:
        async with asyncio.timeout(10_000 * MS):
            return (await classify_samples(batcher, samples, config)).messages, batcher
    finally:
        await batcher.close()


async def test_every_window_of_a_file_is_classified_in_order() -> None:
    out, _ = await _classify(FakeClassifier(), _ramp(40))
    results = _results(out)
    assert [m["seq"] for m in results] == list(range(40))
    assert [m["scores"]["b"] for m in results] == pytest.approx(np.arange(40) / 40, abs=1e-6)


async def test_a_file_is_served_in_full_calls_when_no_live_stream_is_open() -> None:
    model = FakeClassifier()
    await _classify(model, _ramp(36))
    assert model.batches == [9, 9, 9, 9]


async def test_next_to_an_open_live_stream_a_file_goes_in_small_calls() -> None:
    """A live window that arrives meanwhile waits for at most a small call: a quarter of
    max_batch (rounded down, at least one)."""
    for max_batch, calls_of in ((9, 2), (2, 1)):
        model = FakeClassifier()
        out, _ = await _classify(model, _ramp(20), live=True, max_batch=max_batch)
        assert len(_results(out)) == 20
        assert max(model.batches) == calls_of, (max_batch, model.batches)


async def test_a_file_is_never_shed_however_slow_the_model() -> None:
    """Calls take 100 ms and max_lag_ms is 100: after the first call, a live stream would shed
    its windows. A file loses nothing, and is still served in full calls."""
    model = FakeClassifier(latency_s=100 * MS)
    out, _ = await _classify(model, _ramp(36), dataclasses.replace(CFG, max_lag_ms=100))
    results = _results(out)
    assert len(results) == 36 and all(m["dropped_ms"] == 0 for m in results)
    assert model.batches == [9, 9, 9, 9]


async def test_the_audio_after_the_last_full_window_is_classified_too() -> None:
    """200 ms windows every 200 ms: 1150 ms leaves 150 ms after the fifth window, enough for a
    tail window ending at the last sample."""
    config = dataclasses.replace(CFG, window_ms=200, hop_ms=200)
    out, _ = await _classify(FakeClassifier(), np.full(1150, 0.5, np.float32), config)
    results = _results(out)
    assert [(m["start_ms"], m["end_ms"]) for m in results] == [
        (0.0, 200.0), (200.0, 400.0), (400.0, 600.0), (600.0, 800.0), (800.0, 1000.0),
        (950.0, 1150.0),
    ]  # fmt: skip
    assert out[-1]["type"] == "segment" and out[-1]["end_ms"] == 1150.0


async def test_the_file_s_stream_ends_with_its_own_end_message() -> None:
    """The stream says at its end what a live stream says: the audio's length, and every window
    it cut accounted for (classified, gated, failed or dropped: here all classified)."""
    batcher = Batcher(FakeClassifier(), max_batch=4, max_wait_ms=0)
    batcher.start()
    try:
        async with asyncio.timeout(10):
            done = await classify_samples(batcher, np.full(1150, 0.5, np.float32), CFG)
            empty = await classify_samples(batcher, np.zeros(0, np.float32), CFG)
    finally:
        await batcher.close()
    assert done.end == {
        "type": "end", "stream_id": done.end["stream_id"], "duration_ms": 1150.0,
        "windows": 11, "results": 11, "gated": 0, "failed": 0, "dropped_windows": 0,
        "dropped_ms": 0.0, "dropped_results": 0, "dropped_errors": 0,
    }  # fmt: skip
    assert done.end["stream_id"].startswith("file-")
    assert len(_results(done.messages)) == done.end["windows"]
    assert empty.messages == [] and empty.end["windows"] == 0 and empty.end["duration_ms"] == 0


async def test_results_are_not_lost_with_a_small_max_unsent() -> None:
    """max_unsent bounds what a client that does not read may leave behind; the file reads all
    of its results, so even max_unsent 1 loses none of them (it used to lose the results
    settled just before each new block)."""
    model = FakeClassifier(latency_s=1 * MS)
    config = dataclasses.replace(CFG, window_ms=200, max_unsent=1, buffer_ms=100)
    out, _ = await _classify(model, _ramp(50), config, max_batch=8)
    results = _results(out)
    assert [m["seq"] for m in results] == list(range(49))
    assert all(m["type"] == "result" for m in results)


async def test_quiet_windows_settled_as_a_block_cuts_them_are_not_dropped_unsent() -> None:
    """The gate settles quiet windows the moment a block cuts them, before any is popped, so
    the file's buffer must count a whole block of them beyond max_unsent. Blocks of 16 windows
    of 400 ms every 100 ms, max_unsent 1, and a buffer of window + hop (the least allowed)."""
    config = dataclasses.replace(CFG, window_ms=400, buffer_ms=500, max_unsent=1, gate="rms")
    out, _ = await _classify(FakeClassifier(), np.zeros(6400, np.float32), config, max_batch=16)
    results = _results(out)
    assert [m["seq"] for m in results] == list(range(61)) and all(m["gated"] for m in results)


async def test_two_recordings_at_once_each_get_their_own_results() -> None:
    model = FakeClassifier(latency_s=1 * MS)
    batcher = Batcher(model, max_batch=4, max_wait_ms=0)
    batcher.start()
    try:
        async with asyncio.timeout(10_000 * MS):
            low, high = await asyncio.gather(
                classify_samples(batcher, np.full(2000, 0.25, np.float32), CFG),
                classify_samples(batcher, np.full(3000, 0.75, np.float32), CFG),
            )
    finally:
        await batcher.close()
    assert [m["scores"]["b"] for m in _results(low.messages)] == [0.25] * 20
    assert [m["scores"]["b"] for m in _results(high.messages)] == [0.75] * 30
    assert low.end["stream_id"] != high.end["stream_id"]


async def test_the_files_windows_are_counted_in_the_metrics() -> None:
    metrics = Metrics()
    batcher = Batcher(FakeClassifier(), max_batch=4, max_wait_ms=0, metrics=metrics)
    batcher.start()
    try:
        await classify_samples(batcher, _ramp(12), CFG, metrics)
    finally:
        await batcher.close()
    count = metrics.registry.get_sample_value
    assert count("voxlive_windows_total", {"outcome": "classified"}) == 12
    assert count("voxlive_result_latency_seconds_count") == 12


class _Watching(Batcher):
    """A batcher that remembers the streams added to it."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.added: list[Stream] = []

    def add(self, stream: Stream) -> None:
        super().add(stream)
        self.added.append(stream)


class _ReadAhead(FakeClassifier):
    """Records, as each call ends, how far the file has been read past the first window of the
    call (in samples): how much audio waits in memory."""

    def __init__(self) -> None:
        super().__init__(latency_s=20 * MS)
        self.batcher: _Watching | None = None
        self.ahead: list[int] = []

    def predict(self, batch: np.ndarray) -> np.ndarray:
        out = super().predict(batch)
        assert self.batcher is not None
        [stream] = self.batcher.added
        first = round(float(batch.mean(axis=1).min()) * 40)  # _ramp(40): window i is i / 40
        self.ahead.append(stream.samples_received - first * 100)
        return out


async def test_a_file_is_read_at_most_one_block_ahead_of_the_model() -> None:
    """Back-pressure: the next block of max(max_batch, 4) hops is read only once every window
    of the last one is answered, so memory stays bounded whatever the file's length."""
    model = _ReadAhead()
    batcher = model.batcher = _Watching(model, max_batch=2, max_wait_ms=0)
    batcher.start()
    try:
        async with asyncio.timeout(10_000 * MS):
            out = (await classify_samples(batcher, _ramp(40), CFG)).messages
    finally:
        await batcher.close()
    assert len(_results(out)) == 40
    assert model.batches == [2] * 20
    assert max(model.ahead) == 4 * 100  # a block of 4 hops, its first two windows in the call


async def test_a_long_file_is_held_in_a_bounded_buffer() -> None:
    """A minute at 16 kHz (3.8 MB of float32) in one-second windows, calls of up to 8: the
    stream holds about a block of audio (8 windows and a little more), not the whole file."""
    import tracemalloc

    config = StreamConfig(sample_rate=16_000, window_ms=1000, hop_ms=1000, buffer_ms=2000,
                          labels=("a", "b"), gate="none", smoothing=1)  # fmt: skip
    samples = np.full(60 * 16_000, 0.5, np.float32)
    tracemalloc.start()
    try:
        out, _ = await _classify(FakeClassifier(sample_rate=16_000), samples, config, max_batch=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(_results(out)) == 60
    assert peak < 3_000_000  # bytes: a block is 0.5 MB; the whole file would be 3.8
