import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from voxlive.inference.base import ModelInfo
from voxlive.pipeline.batcher import Batcher
from voxlive.pipeline.stream import Stream, StreamConfig

CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=1000,
                   labels=("a", "b"), gate_rms=0.0, smoothing=1)  # fmt: skip


class FakeModel:
    """Scores = (1 - mean, mean) of each window; configurable latency and failures."""

    def __init__(self, latency_s: float = 0.0, fail_when: float | None = None) -> None:
        self.latency_s = latency_s
        self.fail_when = fail_when
        self.batches: list[int] = []
        self.means: list[list[float]] = []
        self.threads: set[str] = set()

    @property
    def info(self) -> ModelInfo:
        return ModelInfo("fake", "fake", ("a", "b"), 1000)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.batches.append(len(batch))
        time.sleep(self.latency_s)
        means = batch.mean(axis=1)
        self.means.append([round(float(m), 3) for m in means])
        if self.fail_when is not None and np.any(np.isclose(means, self.fail_when)):
            raise RuntimeError("boom")
        return np.stack([1 - means, means], axis=1)

    def warmup(self, window_samples: int) -> None:
        pass


@contextlib.asynccontextmanager
async def batching(
    model: FakeModel, *names: str, start: bool = True, **options: Any
) -> AsyncIterator[tuple[Batcher, list[Stream]]]:
    """A started batcher with one registered stream per name; closed afterwards."""
    batcher = Batcher(model, **options)
    streams = [Stream(name, CFG) for name in names]
    for s in streams:
        batcher.add(s)
    if start:
        batcher.start()
    try:
        yield batcher, streams
    finally:
        await batcher.close()


def feed(batcher: Batcher, stream: Stream, *levels: float) -> None:
    """Push one 100-sample window per level (a constant signal, so its mean is the level)."""
    stream.push(np.concatenate([np.full(100, v, np.float32) for v in levels]))
    batcher.notify()


async def drain(stream: Stream, n: int, within_s: float = 5.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + within_s
    while len(out) < n:
        out.extend(stream.pop_messages())
        assert time.monotonic() < deadline, f"got {len(out)} of {n} results"
        await asyncio.sleep(0.005)
    return out


async def test_windows_from_many_streams_share_a_batch() -> None:
    model = FakeModel(latency_s=0.05)
    async with batching(model, "s0", "s1", "s2", "s3", max_batch=8, max_wait_ms=50) as (b, streams):
        for i, s in enumerate(streams):
            s.push(np.full(100, 0.1 * (i + 1), np.float32))
        b.notify()
        results = [await drain(s, 1) for s in streams]
    assert model.batches == [4]
    assert model.threads == {"voxlive-model_0"}  # never the event loop's thread
    for i, [r] in enumerate(results):  # each stream gets its own window's scores
        assert r["scores"]["b"] == pytest.approx(0.1 * (i + 1), abs=1e-5)


async def test_a_lone_window_waits_at_most_max_wait() -> None:
    model = FakeModel()
    # "quiet" is registered but silent: it might add a window, so waiting is worth it.
    async with batching(model, "s", "quiet", max_batch=8, max_wait_ms=40) as (b, (s, _)):
        feed(b, s, 0.5)
        t0 = time.monotonic()
        await drain(s, 1)
        waited = time.monotonic() - t0
    assert model.batches == [1]
    assert waited >= 0.03  # it did wait for company...
    assert waited < 2.0  # ...but not indefinitely


async def test_no_waiting_when_every_stream_already_has_a_window() -> None:
    model = FakeModel()
    async with batching(model, "a", "b", max_batch=8, max_wait_ms=2000) as (b, (s1, s2)):
        s1.push(np.full(100, 0.5, np.float32))
        feed(b, s2, 0.5)
        t0 = time.monotonic()
        await drain(s1, 1)
        assert time.monotonic() - t0 < 1.0  # far less than max_wait: nobody else could join
    assert model.batches == [2]


async def test_a_full_batch_does_not_wait() -> None:
    model = FakeModel()
    async with batching(model, "s", "quiet", max_batch=2, max_wait_ms=5000) as (b, (s, _)):
        feed(b, s, 0.5, 0.5)
        await drain(s, 2, within_s=2.0)
    assert model.batches == [2]


async def test_an_exception_fails_only_its_batch() -> None:
    model = FakeModel(fail_when=0.9)
    async with batching(model, "s", max_batch=1, max_wait_ms=0) as (b, (s,)):
        feed(b, s, 0.2, 0.9, 0.3)
        out = await drain(s, 3)
    assert [m["type"] for m in out] == ["result", "error", "result"]
    assert out[1]["code"] == "inference_failed"


async def test_a_hung_model_times_out_and_the_batcher_recovers() -> None:
    model = FakeModel(latency_s=0.5)
    async with batching(model, "s", max_batch=1, max_wait_ms=0, timeout_s=0.1) as (b, (s,)):
        feed(b, s, 0.5)
        [first] = await drain(s, 1)
        assert first["type"] == "error" and "timed out" in first["message"]
        model.latency_s = 0.0
        feed(b, s, 0.5)
        [second] = await drain(s, 1)
    assert second["type"] == "result"


async def test_round_robin_keeps_a_flooding_stream_from_taking_over() -> None:
    model = FakeModel(latency_s=0.01)
    async with batching(model, "flood", "calm", start=False, max_batch=2, max_wait_ms=0) as (
        b,
        (flood, calm),
    ):
        flood.push(np.full(800, 0.5, np.float32))  # 8 windows at once
        calm.push(np.full(100, 0.7, np.float32))  # 1 window
        b.start()
        b.notify()
        await drain(calm, 1)
    # the calm stream's window rode in the first batch, not after the flood
    assert sorted(model.means[0]) == [0.5, 0.7]


async def test_idle_batcher_sleeps() -> None:
    async with batching(FakeModel(), max_batch=8, max_wait_ms=10):
        cpu0 = time.process_time()
        await asyncio.sleep(0.3)
        cpu = time.process_time() - cpu0
    assert cpu < 0.05
