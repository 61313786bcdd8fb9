import asyncio
import threading
import time

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


async def _drain(stream: Stream, n: int, within_s: float = 5.0) -> list[dict]:  # type: ignore[type-arg]
    out: list[dict] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + within_s
    while len(out) < n:
        out.extend(stream.pop_messages())
        assert time.monotonic() < deadline, f"got {len(out)} of {n} results"
        await asyncio.sleep(0.005)
    return out


async def test_windows_from_many_streams_share_a_batch() -> None:
    model = FakeModel(latency_s=0.05)
    batcher = Batcher(model, max_batch=8, max_wait_ms=50)
    streams = [Stream(f"s{i}", CFG) for i in range(4)]
    for s in streams:
        batcher.add(s)
    batcher.start()
    try:
        for i, s in enumerate(streams):
            s.push(np.full(100, 0.1 * (i + 1), np.float32))
        batcher.notify()
        results = [await _drain(s, 1) for s in streams]
    finally:
        await batcher.close()
    assert model.batches == [4]
    assert model.threads == {"voxlive-model_0"}  # never the event loop's thread
    for i, [r] in enumerate(results):  # each stream gets its own window's scores
        assert r["scores"]["b"] == pytest.approx(0.1 * (i + 1), abs=1e-5)


async def test_a_lone_window_waits_at_most_max_wait() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_batch=8, max_wait_ms=40)
    s = Stream("s", CFG)
    batcher.add(s)
    batcher.add(Stream("quiet", CFG))  # another stream that might add a window
    batcher.start()
    try:
        s.push(np.full(100, 0.5, np.float32))
        batcher.notify()
        t0 = time.monotonic()
        await _drain(s, 1)
        waited = time.monotonic() - t0
    finally:
        await batcher.close()
    assert model.batches == [1]
    assert waited >= 0.03  # it did wait for company...
    assert waited < 2.0  # ...but not indefinitely


async def test_a_full_batch_does_not_wait() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_batch=2, max_wait_ms=5000)
    s = Stream("s", CFG)
    batcher.add(s)
    batcher.start()
    try:
        s.push(np.full(200, 0.5, np.float32))
        batcher.notify()
        await _drain(s, 2, within_s=2.0)
    finally:
        await batcher.close()
    assert model.batches == [2]


async def test_an_exception_fails_only_its_batch() -> None:
    model = FakeModel(fail_when=0.9)
    batcher = Batcher(model, max_batch=1, max_wait_ms=0)
    s = Stream("s", CFG)
    batcher.add(s)
    batcher.start()
    try:
        s.push(np.concatenate([np.full(100, v, np.float32) for v in (0.2, 0.9, 0.3)]))
        batcher.notify()
        out = await _drain(s, 3)
    finally:
        await batcher.close()
    assert [m["type"] for m in out] == ["result", "error", "result"]
    assert out[1]["code"] == "inference_failed"


async def test_a_hung_model_times_out_and_the_batcher_recovers() -> None:
    model = FakeModel(latency_s=0.5)
    batcher = Batcher(model, max_batch=1, max_wait_ms=0, timeout_s=0.1)
    s = Stream("s", CFG)
    batcher.add(s)
    batcher.start()
    try:
        s.push(np.full(100, 0.5, np.float32))
        batcher.notify()
        [first] = await _drain(s, 1)
        assert first["type"] == "error" and "timed out" in first["message"]
        model.latency_s = 0.0
        s.push(np.full(100, 0.5, np.float32))
        batcher.notify()
        [second] = await _drain(s, 1)
    finally:
        await batcher.close()
    assert second["type"] == "result"


async def test_round_robin_keeps_a_flooding_stream_from_taking_over() -> None:
    model = FakeModel(latency_s=0.01)
    batcher = Batcher(model, max_batch=2, max_wait_ms=0)
    flood, calm = Stream("flood", CFG), Stream("calm", CFG)
    batcher.add(flood)
    batcher.add(calm)
    flood.push(np.full(800, 0.5, np.float32))  # 8 windows at once
    calm.push(np.full(100, 0.7, np.float32))  # 1 window
    batcher.start()
    try:
        batcher.notify()
        await _drain(calm, 1)
        # the calm stream's window rode in the first batch, not after the flood
        assert model.means[0] == [0.7, 0.5] or model.means[0] == [0.5, 0.7]
    finally:
        await batcher.close()


async def test_idle_batcher_sleeps() -> None:
    batcher = Batcher(FakeModel(), max_batch=8, max_wait_ms=10)
    batcher.start()
    cpu0 = time.process_time()
    await asyncio.sleep(0.3)
    cpu = time.process_time() - cpu0
    await batcher.close()
    assert cpu < 0.05


async def test_no_waiting_when_every_stream_already_has_a_window() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_batch=8, max_wait_ms=2000)
    a, b = Stream("a", CFG), Stream("b", CFG)
    batcher.add(a)
    batcher.add(b)
    batcher.start()
    try:
        a.push(np.full(100, 0.5, np.float32))
        b.push(np.full(100, 0.5, np.float32))
        batcher.notify()
        t0 = time.monotonic()
        await _drain(a, 1)
        assert time.monotonic() - t0 < 1.0  # far less than max_wait: nobody else could join
    finally:
        await batcher.close()
    assert model.batches == [2]
