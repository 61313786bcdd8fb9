"""The running batcher's model calls: what clients are told when a call fails or hangs, what is
logged, the metrics and the cost model it feeds, waiting for company on a live stream, and
back-pressure for a lossless stream."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from typing import Any

import numpy as np
import pytest

from fakes import FakeClassifier
from unit.test_batcher import CFG
from unit.test_batcher import batching as started
from voxlive.metrics import Metrics
from voxlive.pipeline.batcher import Batcher, Wiring
from voxlive.pipeline.stream import Stream


def batching(
    model: FakeClassifier, *names: str, **options: Any
) -> contextlib.AbstractAsyncContextManager[tuple[Batcher, list[Stream]]]:
    """test_batcher's started batcher, with batches of up to 8 and no waiting by default."""
    return started(model, *names, **{"max_batch": 8, "max_wait_ms": 0, **options})


def feed(stream: Stream, windows: int = 1, level: float = 0.5) -> None:
    stream.push(np.full(stream.config.hop * windows, level, np.float32))


async def drain(stream: Stream, n: int, within_s: float = 5.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(within_s):
        while len(out) < n:
            out.extend(stream.pop_messages())
            await asyncio.sleep(0.002)
    return out


async def test_a_model_answering_the_wrong_number_of_rows_fails_its_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class OneRow(FakeClassifier):
        def predict(self, batch: np.ndarray) -> np.ndarray:
            return super().predict(batch)[:1]

    async with batching(OneRow(), "s") as (_, (s,)):
        s.push(np.full(300, 0.5, np.float32))  # three windows, one call
        out = await drain(s, 3)
    assert [(m["type"], m["message"]) for m in out] == [("error", "inference failed")] * 3
    [record] = [r for r in caplog.records if r.name == "voxlive.pipeline.batcher"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "model call failed; failing 3 windows"
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "model output: expected 3 rows (one per window), got 1"


async def test_a_model_answering_the_wrong_number_of_columns_fails_that_call_only() -> None:
    class ThreeColumns(FakeClassifier):
        calls = 0

        def predict(self, batch: np.ndarray) -> np.ndarray:
            self.calls += 1
            probs = super().predict(batch)
            if self.calls == 1:  # this call only: one column too many
                return np.hstack([probs, np.zeros((len(batch), 1), np.float32)])
            return probs

    async with batching(ThreeColumns(), "s") as (_, (s,)):
        s.push(np.full(300, 0.5, np.float32))  # three windows, one call: fails
        out = await drain(s, 3)
        s.push(np.full(100, 0.5, np.float32))  # one more window, a later call: answered
        out += await drain(s, 1)
    assert [m["type"] for m in out] == ["error", "error", "error", "result"]
    assert {m["code"] for m in out[:3]} == {"inference_failed"}


async def test_a_hung_call_fails_its_windows_at_the_time_out_while_it_still_hangs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The event loop is not held up by the hung call's thread: the windows fail at the time-out
    and the next call goes to a fresh thread."""
    release = threading.Event()
    returned = threading.Event()

    calls = []

    class Hangs(FakeClassifier):
        def predict(self, batch: np.ndarray) -> np.ndarray:
            calls.append(threading.current_thread())
            if len(calls) == 1:  # the first call hangs (for at most 3 s)
                release.wait(3.0)
                returned.set()
            return super().predict(batch)

    model = Hangs()
    try:
        async with batching(model, "s", max_batch=1, timeout_s=0.1) as (_, (s,)):
            feed(s)
            [first] = await drain(s, 1)
            assert not returned.is_set()  # delivered while the call still hangs
            assert first["type"] == "error"
            assert first["message"] == "inference timed out after 0.1 s"
            feed(s)
            [second] = await drain(s, 1)
            assert second["type"] == "result"
            assert calls[1] is not calls[0]  # the hung thread is left to itself
    finally:
        release.set()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert messages == ["model call exceeded 0.1 s; failing 1 windows"]


async def test_a_call_queued_behind_a_hung_one_is_cancelled_at_the_time_out() -> None:
    """Nothing runs later on the hung call's thread: a call queued there is cancelled."""
    started, release = threading.Event(), threading.Event()

    class Hangs(FakeClassifier):
        def predict(self, batch: np.ndarray) -> np.ndarray:
            if batch[0, 0] == 0.5:  # the stream's window hangs (for at most 3 s)
                started.set()
                release.wait(3.0)
            return super().predict(batch)

    model = Hangs()
    try:
        async with batching(model, "s", max_batch=1, timeout_s=0.2) as (batcher, (s,)):
            feed(s)
            assert await asyncio.to_thread(started.wait, 3.0)
            await asyncio.sleep(0.1)  # the window's call hangs, half way to its time-out
            queued = asyncio.ensure_future(batcher.predict(np.full((1, 100), 0.25, np.float32)))
            [error] = await drain(s, 1)
            assert error["type"] == "error"
            with pytest.raises(asyncio.CancelledError):
                await queued
            release.set()
            await asyncio.sleep(0.05)  # the hung thread finishes its call
    finally:
        release.set()
    assert model.means == [[0.5]]  # the queued call never ran


async def test_a_window_with_non_finite_scores_is_told_so() -> None:
    class Nan(FakeClassifier):
        def predict(self, batch: np.ndarray) -> np.ndarray:
            return super().predict(batch) * np.nan

    async with batching(Nan(), "s") as (_, (s,)):
        feed(s)
        [out] = await drain(s, 1)
    assert out["message"] == "inference failed: the model returned NaN or Inf"


async def test_calls_are_measured_for_metrics_and_the_cost_model() -> None:
    metrics = Metrics()
    model = FakeClassifier(latency_s=0.02)
    async with batching(model, "s", metrics=metrics) as (batcher, (s,)):
        feed(s, 3)
        await drain(s, 3)
        estimate = batcher.cost.estimate(3, 100)
        capacity = batcher.capacity(100, 0.1)
    assert model.batches == [3]
    value = metrics.registry.get_sample_value
    assert value("voxlive_batch_size_count") == 1 and value("voxlive_batch_size_sum") == 3
    assert value("voxlive_queue_wait_seconds_count") == 3
    assert 0 <= value("voxlive_queue_wait_seconds_sum") < 0.5  # three windows, ready at once
    assert value("voxlive_inference_seconds_count") == 1
    assert 0.02 <= value("voxlive_inference_seconds_sum") < 1.0
    assert 0.02 <= estimate < 1.0  # the call took 20 ms and a little more
    assert capacity.windows_per_s is not None and 3 < capacity.windows_per_s <= 150


# ---- waiting for company (real time: hop 500 ms) ----------------------------------------------
SLOW_HOP = dataclasses.replace(CFG, hop_ms=500, buffer_ms=2000)


async def test_a_lone_window_waits_for_a_live_stream_due_soon_and_rides_with_it() -> None:
    model = FakeClassifier()
    async with batching(model, "live", "s", config=SLOW_HOP, max_wait_ms=1000,
                        latency_budget_ms=1000) as (_, (live, s)):  # fmt: skip
        live.push(np.full(100, 0.5, np.float32))  # a window now, the next due in 500 ms
        await drain(live, 1)
        await asyncio.sleep(0.01)  # the batcher is idle
        s.push(np.full(100, 0.5, np.float32))
        await asyncio.sleep(0.02)
        live.push(np.full(500, 0.5, np.float32))  # its next window, early
        await drain(s, 1)
        await drain(live, 1)
    assert model.batches == [1, 2]


async def test_a_lone_window_waits_no_longer_than_max_wait() -> None:
    model = FakeClassifier()
    async with batching(model, "live", "s", config=SLOW_HOP, max_wait_ms=600,
                        latency_budget_ms=1000) as (_, (live, s)):  # fmt: skip
        live.push(np.full(100, 0.5, np.float32))
        await drain(live, 1)
        started = time.monotonic()
        s.push(np.full(100, 0.5, np.float32))  # "live" is due in 500 ms but stays silent
        await drain(s, 1, within_s=3.0)
        waited = time.monotonic() - started
    assert model.batches == [1, 1]
    assert 0.5 <= waited < 2.5


# ---- back-pressure for a lossless stream -----------------------------------------------------
async def test_a_backlogged_lossless_stream_is_told_when_there_is_room_again() -> None:
    model = FakeClassifier(latency_s=0.005)
    batcher = Batcher(model, max_batch=2, max_wait_ms=0)
    wiring = Wiring(batcher)
    s = Stream("file", CFG, listener=wiring)
    s.lossless = True
    batcher.add(s)
    s.push(np.full(1500, 0.5, np.float32))  # 1.5 s of windows: more than the 1 s buffer
    assert s.backlogged
    batcher.start()
    try:
        async with asyncio.timeout(5):
            await wiring.wait_for_room(s)
            assert not s.backlogged
            s.push(np.full(500, 0.5, np.float32))  # and the stream goes on
            out = await drain(s, 20)
    finally:
        await batcher.close()
    assert [m["seq"] for m in out] == list(range(20))
    assert all(m["type"] == "result" for m in out)
