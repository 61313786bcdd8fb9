"""Cross-stream batching (pipeline/batcher.py): windows of many streams share a call, model
calls that fail, hang or answer NaN fail only their windows, the wait for company and what the
next call sheds planned on a fake clock, the cost model, and mixed window lengths."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import Clock, FakeClassifier, Overlap
from tests.helpers import MS
from voxlive.metrics import Metrics
from voxlive.pipeline.batcher import Batcher, CostModel
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.degrade import Degrade, hop_steps
from voxlive.pipeline.hooks import StreamHooks
from voxlive.pipeline.overload import SEND_MARGIN_S, RateMeter, planned_call_s, shed_cap
from voxlive.pipeline.pace import Pace
from voxlive.pipeline.stream import Stream

# 1000 Hz: one sample per ms; a 100 ms window every 100 ms
CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=1000,
                   labels=("a", "b"), gate_rms=0.0, smoothing=1)  # fmt: skip
# the same, shedding past one second
SHEDDING = dataclasses.replace(CFG, buffer_ms=4000, max_lag_ms=1000)


@contextlib.asynccontextmanager
async def batching(
    model: FakeClassifier,
    *names: str,
    start: bool = True,
    config: StreamConfig = CFG,
    **options: Any,
) -> AsyncIterator[tuple[Batcher, list[Stream]]]:
    """A started batcher (batches of up to 8 and no waiting, unless told) with one registered
    stream per name; closed afterwards."""
    batcher = Batcher(model, **{"max_batch": 8, "max_wait_ms": 0, **options})
    streams = [Stream(name, config, listener=StreamHooks(batcher)) for name in names]
    for s in streams:
        batcher.add(s)
    if start:
        batcher.start()
    try:
        yield batcher, streams
    finally:
        await batcher.close()


@contextlib.contextmanager
def planning(
    *names: str, config: StreamConfig = SHEDDING, **options: Any
) -> Iterator[tuple[Batcher, list[Stream], Clock]]:
    """A batcher that is never started, its streams on its own fake clock: for its plan (how long
    to wait, what to shed, how big the next call is)."""
    clock = Clock()
    batcher = Batcher(
        FakeClassifier(), clock=clock, **{"max_batch": 8, "max_wait_ms": 2000, **options}
    )
    streams = [Stream(name, config, clock=clock) for name in names]
    for stream in streams:
        batcher.add(stream)
    yield batcher, streams, clock


def feed(stream: Stream, *levels: float) -> None:
    """Push one 100-sample window per level (a constant signal, so its mean is the level). The
    stream wakes its batcher itself."""
    stream.push(np.concatenate([np.full(100, v, np.float32) for v in levels]))


async def drain(stream: Stream, n: int, within_s: float = 5_000 * MS) -> list[dict[str, Any]]:
    """The stream's next ``n`` messages, as the batcher settles its windows."""
    out: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(within_s):
            while len(out) < n:
                out.extend(stream.pop_messages())
                await asyncio.sleep(2 * MS)
    except TimeoutError:
        raise AssertionError(f"got {len(out)} of {n} messages within {within_s:g} s") from None
    return out


def answered(live: Stream) -> None:
    """``live`` cuts a window now and the model answers it: its next window is due a hop on."""
    feed(live, 0.5)
    window = live.take()
    assert window is not None
    live.complete(window.index, np.array([0.5, 0.5]))


def _live_then_lone(s: Stream, live: Stream, clock: Clock, at: float = 0.05) -> None:
    """ "live" cuts a window at t=0 that the model answers (its next is due at t=0.1); then "s"
    has a lone window ready at t=``at``."""
    answered(live)
    clock.t = at
    feed(s, 0.5)


# ---- batching across streams, in real time -------------------------------------------------------
async def test_windows_from_many_streams_share_a_batch() -> None:
    model = FakeClassifier(latency_s=50 * MS)
    async with batching(model, "s0", "s1", "s2", "s3", max_batch=8, max_wait_ms=50) as (_, streams):
        for i, s in enumerate(streams):
            s.push(np.full(100, 0.1 * (i + 1), np.float32))
        results = [await drain(s, 1) for s in streams]
    assert model.batches == [4]
    assert model.threads == {"voxlive-model_0"}  # never the event loop's thread
    for i, [r] in enumerate(results):  # each stream gets its own window's scores
        assert r["scores"]["b"] == pytest.approx(0.1 * (i + 1), abs=1e-5)


async def test_a_full_batch_does_not_wait() -> None:
    model = FakeClassifier()
    async with batching(model, "s", "quiet", max_batch=2, max_wait_ms=5000) as (_, (s, _)):
        feed(s, 0.5, 0.5)
        await drain(s, 2, within_s=2_000 * MS)
    assert model.batches == [2]


async def test_round_robin_keeps_a_flooding_stream_from_taking_over() -> None:
    model = FakeClassifier(latency_s=10 * MS)
    async with batching(model, "flood", "calm", start=False, max_batch=2, max_wait_ms=0) as (
        b,
        (flood, calm),
    ):
        flood.push(np.full(800, 0.5, np.float32))  # 8 windows at once
        calm.push(np.full(100, 0.7, np.float32))  # 1 window
        b.start()
        await drain(calm, 1)
    # the calm stream's window rode in the first batch, not after the flood
    assert sorted(model.means[0]) == [0.5, 0.7]


async def test_idle_batcher_sleeps() -> None:
    async with batching(FakeClassifier(), max_batch=8, max_wait_ms=10):
        cpu0 = time.process_time()
        await asyncio.sleep(300 * MS)
        cpu = time.process_time() - cpu0
    assert cpu < 0.05


# ---- model calls that fail, hang or answer NaN; what they are measured at ------------------------
async def test_an_exception_fails_only_its_batch() -> None:
    model = FakeClassifier(fail_when=0.9)
    async with batching(model, "s", max_batch=1, max_wait_ms=0) as (_, (s,)):
        feed(s, 0.2, 0.9, 0.3)
        out = await drain(s, 3)
    assert [m["type"] for m in out] == ["result", "error", "result"]
    assert out[1]["code"] == "inference_failed"


async def test_a_hung_model_times_out_and_the_batcher_recovers() -> None:
    model = FakeClassifier(latency_s=500 * MS)
    async with batching(model, "s", max_batch=1, max_wait_ms=0, timeout_s=0.1) as (_, (s,)):
        feed(s, 0.5)
        [first] = await drain(s, 1)
        assert first["type"] == "error" and "timed out" in first["message"]
        model.latency_s = 0.0
        feed(s, 0.5)
        [second] = await drain(s, 1)
    assert second["type"] == "result"


async def test_non_finite_scores_fail_only_their_window() -> None:
    class NanForLoud(FakeClassifier):
        def predict(self, batch: np.ndarray) -> np.ndarray:
            out = super().predict(batch)
            out[batch.mean(axis=1) > 0.8] = np.nan  # a huge input made the model overflow
            return out

    async with batching(NanForLoud(), "s", max_batch=4, max_wait_ms=50) as (_, (s,)):
        feed(s, 0.2, 0.9, 0.3)
        out = await drain(s, 3)
    assert [m["type"] for m in out] == ["result", "error", "result"]
    assert out[1]["code"] == "inference_failed" and "NaN or Inf" in out[1]["message"]
    assert s.stats.failed == 1 and s.stats.classified == 2


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
                release.wait(3_000 * MS)
                returned.set()
            return super().predict(batch)

    model = Hangs()
    try:
        async with batching(model, "s", max_batch=1, timeout_s=0.1) as (_, (s,)):
            feed(s, 0.5)
            [first] = await drain(s, 1)
            assert not returned.is_set()  # delivered while the call still hangs
            assert first["type"] == "error"
            assert first["message"] == "inference timed out after 0.1 s"
            feed(s, 0.5)
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
                release.wait(3_000 * MS)
            return super().predict(batch)

    model = Hangs()
    try:
        async with batching(model, "s", max_batch=1, timeout_s=0.2) as (batcher, (s,)):
            feed(s, 0.5)
            assert await asyncio.to_thread(started.wait, 3_000 * MS)
            await asyncio.sleep(100 * MS)  # the window's call hangs, half way to its time-out
            queued = asyncio.ensure_future(batcher.predict(np.full((1, 100), 0.25, np.float32)))
            [error] = await drain(s, 1)
            assert error["type"] == "error"
            with pytest.raises(asyncio.CancelledError):
                await queued
            release.set()
            await asyncio.sleep(50 * MS)  # the hung thread finishes its call
    finally:
        release.set()
    assert model.means == [[0.5]]  # the queued call never ran


async def test_a_window_with_non_finite_scores_is_told_so() -> None:
    class Nan(FakeClassifier):
        def predict(self, batch: np.ndarray) -> np.ndarray:
            return super().predict(batch) * np.nan

    async with batching(Nan(), "s") as (_, (s,)):
        feed(s, 0.5)
        [out] = await drain(s, 1)
    assert out["message"] == "inference failed: the model returned NaN or Inf"


async def test_calls_are_measured_for_metrics_and_the_cost_model() -> None:
    metrics = Metrics()
    model = FakeClassifier(latency_s=20 * MS)
    async with batching(model, "s", metrics=metrics) as (batcher, (s,)):
        feed(s, 0.5, 0.5, 0.5)
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


# ---- several calls in flight (the Ray engine with several replicas) -----------------------------
@pytest.mark.parametrize("in_flight", [1, 2])
async def test_a_window_arriving_during_a_call_waits_for_a_free_call_slot(in_flight: int) -> None:
    model = Overlap(latency_s=200 * MS)
    async with batching(model, "s", in_flight=in_flight) as (_, (s,)):
        feed(s, 0.2)
        await asyncio.sleep(50 * MS)  # the first call is running
        feed(s, 0.4)
        out = await drain(s, 2)
    assert model.batches == [1, 1]
    assert model.most == in_flight  # 1: the in-process engine's one call at a time
    assert [r["scores"]["b"] for r in out] == pytest.approx([0.2, 0.4], abs=1e-5)  # in order
    assert len(model.threads) == in_flight  # a worker thread per call, never the loop's


async def test_in_flight_calls_never_exceed_the_limit_and_failures_stay_in_their_call() -> None:
    model = Overlap(latency_s=60 * MS, fail_when=0.3)
    async with batching(model, "a", "b", "c", "d", in_flight=2, max_batch=1) as (_, streams):
        for level, s in zip((0.1, 0.3, 0.5, 0.7), streams, strict=True):
            feed(s, level, level)
        outs = [await drain(s, 2) for s in streams]
    assert model.most == 2 and sum(model.batches) == 8
    failed = [[r["type"] for r in out] for out in outs]
    assert failed[1] == ["error", "error"]  # the level the model fails on
    assert all(kinds == ["result", "result"] for i, kinds in enumerate(failed) if i != 1)


def test_in_flight_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="in_flight: expected >= 1 model calls, got 0"):
        Batcher(FakeClassifier(), max_batch=8, max_wait_ms=0, in_flight=0)


# ---- waiting for company, planned on a fake clock ------------------------------------------------
def test_nothing_pending_means_sleep_until_notified() -> None:
    with planning("s") as (b, _, _):
        assert b.wait_s(0.0) is None


def test_no_waiting_for_streams_that_are_not_due() -> None:
    # "silent" has never sent audio: nothing says a window will come, so waiting is waste.
    with planning("s", "silent") as (b, (s, _), _):
        feed(s, 0.5)
        assert b.wait_s(0.0) == 0.0


def test_no_waiting_when_every_stream_already_has_a_window() -> None:
    with planning("a", "b") as (b, (s1, s2), _):
        feed(s1, 0.5)
        feed(s2, 0.5)
        assert b.wait_s(0.0) == 0.0  # max_wait is 2 s, but nobody else could join


def test_a_window_waits_for_company_that_is_due_but_at_most_max_wait() -> None:
    with planning("s", "live", max_wait_ms=60) as (b, (s, live), clock):
        _live_then_lone(s, live, clock)
        assert b.wait_s(0.05) == pytest.approx(0.06)  # until t=0.11: "live" is due at t=0.1
    with planning("s", "live", max_wait_ms=40) as (b, (s, live), clock):
        _live_then_lone(s, live, clock)
        assert b.wait_s(0.05) == 0.0  # by t=0.09 nobody is due: do not wait at all


def test_no_waiting_for_a_stream_that_stalled() -> None:
    """A stream whose last window was cut ten seconds ago is not streaming in real time any
    more: a lone window goes to the model at once instead of waiting for it."""
    with planning("s", "live", max_wait_ms=30) as (b, (s, live), clock):
        _live_then_lone(s, live, clock, at=10.0)
        assert b.wait_s(10.0) == 0.0


@pytest.mark.parametrize(("call_s", "wait_s"), [(0.1, 0.2), (0.3, 0.0)])
def test_the_latency_budget_cuts_the_wait(call_s: float, wait_s: float) -> None:
    """max_wait is 2 s, but every window must have its result within 300 ms. Once a call of two
    windows has been seen to take ``call_s``, a lone window waits for company only as long as
    such a call still fits: 200 ms for a 100 ms model, not at all for a 300 ms one."""
    with planning("s", "live", latency_budget_ms=300) as (b, (s, live), clock):
        b.cost.observe(2, 100, call_s)
        _live_then_lone(s, live, clock)
        assert b.wait_s(0.05) == pytest.approx(wait_s)


def test_by_default_a_window_waits_at_most_250_ms_for_company_and_a_call_30_s() -> None:
    with planning("s", "live") as (b, (s, live), clock):
        answered(live)  # due at t=0.1
        clock.t = 0.05
        feed(s, 0.5)
        assert b.wait_s(0.05) == pytest.approx(0.25)  # the latency budget, not max_wait (2 s)
        assert b.timeout_s == 30.0


def test_windows_of_every_stream_count_towards_a_full_batch() -> None:
    for max_batch, waits in ((4, False), (5, True)):
        with planning("a", "b", "live", max_batch=max_batch) as (b, (s1, s2, live), clock):
            answered(live)
            clock.t = 0.05
            feed(s1, 0.5, 0.5)
            feed(s2, 0.5, 0.5)  # four windows pending in all
            assert (b.wait_s(0.05) > 0) is waits, max_batch


def test_the_wait_is_measured_from_the_oldest_pending_window() -> None:
    with planning("old", "new", "live", max_wait_ms=100) as (b, (old, new, live), clock):
        answered(live)  # due at t=0.1
        clock.t = 0.02
        feed(old, 0.5)
        clock.t = 0.05
        feed(new, 0.5)
        assert b.wait_s(0.05) == pytest.approx(0.07)  # until t=0.12: 100 ms after "old"


def test_company_due_exactly_when_the_wait_would_end_is_waited_for() -> None:
    with planning("s", "live", max_wait_ms=50) as (b, (s, live), clock):
        answered(live)  # due at t=0.1
        clock.t = 0.05
        feed(s, 0.5)
        assert b.wait_s(0.05) == pytest.approx(0.05)  # until t=0.1, when "live" is due


# ---- waiting for company (real time: hop 500 ms) ----------------------------------------------
SLOW_HOP = dataclasses.replace(CFG, hop_ms=500, buffer_ms=2000)


async def test_a_lone_window_waits_for_a_live_stream_due_soon_and_rides_with_it() -> None:
    model = FakeClassifier()
    async with batching(model, "live", "s", config=SLOW_HOP, max_wait_ms=1000,
                        latency_budget_ms=1000) as (_, (live, s)):  # fmt: skip
        live.push(np.full(100, 0.5, np.float32))  # a window now, the next due in 500 ms
        await drain(live, 1)
        await asyncio.sleep(10 * MS)  # the batcher is idle
        s.push(np.full(100, 0.5, np.float32))
        await asyncio.sleep(20 * MS)
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
        await drain(s, 1, within_s=3_000 * MS)
        waited = time.monotonic() - started
    assert model.batches == [1, 1]
    assert 0.5 <= waited < 2.5


# ---- what the next call sheds and how big it is (fake clock) -------------------------------------
def test_a_window_exactly_within_its_lag_is_served_with_its_company() -> None:
    """Bound 1 s; an untrained cost model plans a call of 20 ms (the send margin). At t=0.9795
    the window ready at t=0 would be answered at 0.9995: in time, so neither shed nor left out
    of the call."""
    with planning("s", max_batch=2) as (b, (s,), clock):
        feed(s, 0.5)
        clock.t = 0.5
        feed(s, 0.5)
        clock.t = 0.9795
        batch = b._collect()
    assert [w.index for w in batch] == [0, 1]
    assert s.stats.shed == 0


def test_the_plan_allows_for_calls_that_overrun() -> None:
    """Calls have overrun their estimate (by 200 %: the plan doubles it). A call of both windows
    would answer the older one late, so the older goes alone, in time; ignoring the overruns
    would take both and answer it late."""
    with planning("s", max_batch=2) as (b, (s,), clock):
        b.cost.observe(2, 100, 0.1)
        b.cost.observe(2, 100, 0.3)
        assert b.cost.spread == pytest.approx(0.4)
        feed(s, 0.5)
        clock.t = 0.5
        feed(s, 0.5)
        clock.t = 0.7
        batch = b._collect()
    assert [w.index for w in batch] == [0]
    assert s.stats.shed == 0


def test_shed_windows_count_as_offered_load() -> None:
    with planning("s", max_batch=4) as (b, (s,), clock):
        feed(s, 0.5)
        assert len(b._collect()) == 1  # one window offered at t=0
        clock.t = 0.1
        feed(s, 0.5, 0.5)  # ready at t=0.1: stale by t=2
        clock.t = 1.5
        feed(s, 0.5)
        clock.t = 2.0
        [window] = b._collect()
        assert window.ready_at == 1.5 and s.stats.shed == 2
        expected = RateMeter()
        expected.add(1, 0.0)
        expected.add(2, 2.0)
        expected.add(1, 2.0)
        clock.t = 2.5
        capacity = b.capacity(100, 0.1)
    assert capacity.load_streams == pytest.approx(expected.rate(2.5) * 0.1)
    assert capacity.streams is None  # no call measured yet


def test_a_lossless_stream_is_planned_in_full_calls() -> None:
    """A lossless stream's windows are never stale, however old: they do not shrink the call."""
    with planning("file", max_batch=4) as (b, (file,), clock):
        file.lossless = True
        b.cost.observe(4, 100, 5.0)  # calls are slow
        feed(file, *[0.5] * 6)
        clock.t = 100.0
        assert len(b._collect()) == 4
        assert file.stats.shed == 0


def test_a_lossless_stream_with_shedding_on_keeps_every_window() -> None:
    config = dataclasses.replace(SHEDDING, max_lag_ms=10)
    clock = Clock()
    b = Batcher(FakeClassifier(), max_batch=2, max_wait_ms=0, clock=clock)
    s = Stream("file", config, clock=clock)
    s.lossless = True
    b.add(s)
    feed(s, 0.5, 0.5, 0.5)
    clock.t = 10.0
    assert [w.index for w in b._collect()] == [0, 1]
    assert s.stats.shed == 0 and s.pending == 1


def test_equally_urgent_streams_take_turns() -> None:
    """Two streams with windows ready at the same moment, calls of one window: they alternate."""
    with planning("a", "b", max_batch=1) as (b, (s1, s2), _):
        feed(s1, 0.5, 0.5, 0.5)
        feed(s2, 0.5, 0.5, 0.5)
        served = [b._collect()[0].stream.id for _ in range(4)]
    assert sorted(served[:2]) == ["a", "b"] and sorted(served[2:]) == ["a", "b"]
    assert served[0] != served[1] and served[1] != served[2]


async def test_when_every_window_is_stale_the_newest_is_served_anyway() -> None:
    """Shedding everything would stop the calls whose times say when windows are fresh again
    (a slow spell would otherwise shed every window from then on)."""
    clock = Clock()
    batcher = Batcher(FakeClassifier(), max_batch=8, max_wait_ms=0, clock=clock)
    a, b = Stream("a", SHEDDING, clock=clock), Stream("b", SHEDDING, clock=clock)
    for s in (a, b):
        batcher.add(s)
    batcher.cost.observe(1, 100, 5.0)  # a call now looks like it takes 5 s: all stale
    for t, s in ((0.0, a), (0.1, b), (0.2, a)):
        clock.t = t
        feed(s, 0.5)
    clock.t = 0.3
    [served] = batcher._collect()
    assert (served.stream.id, served.index) == ("a", 1)  # the newest
    assert a.stats.shed == 1 and b.stats.shed == 1
    assert shed_cap([(0.0, 1.0), (0.2, 1.0)], 0.3, 5.0) == 0.2
    assert shed_cap([(0.0, 1.0), (0.2, 0.0)], 0.3, 5.0) == math.inf  # lossless: served anyway
    await batcher.close()


async def test_the_batcher_sheds_what_its_next_call_would_answer_too_late() -> None:
    clock = Clock()
    batcher = Batcher(FakeClassifier(), max_batch=8, max_wait_ms=0, clock=clock)
    live, file = Stream("live", SHEDDING, clock=clock), Stream("file", SHEDDING, clock=clock)
    file.lossless = True
    for s in (live, file):
        batcher.add(s)
    batcher.cost.observe(2, 100, 0.5)  # a call of two windows takes 0.5 s: 0.25 s per window
    for t in (0.0, 0.6):
        clock.t = t
        feed(live, 0.5)
        feed(file, 0.5)
    # At t=0.7, allowing a quarter more than measured plus 20 ms to send: a call of 3 would end
    # at 1.6575 s, too late for live's second window (due 1.6 s); a call of 2 ends at 1.345 s,
    # in time for it but not for its first (due 1.0 s). So: shed that one, call with 2.
    clock.t = 0.7
    batch = batcher._collect()
    assert sorted((w.stream.id, w.index) for w in batch) == [("file", 0), ("live", 1)]
    assert live.stats.shed == 1 and file.stats.shed == 0
    await batcher.close()


async def test_the_batcher_gauge_uses_its_best_batch_size() -> None:
    clock = Clock()
    batcher = Batcher(FakeClassifier(), max_batch=8, max_wait_ms=0, clock=clock)
    cost = batcher.cost
    cost.observe(1, 100, 0.1)  # about 10 windows/s
    cost.observe(4, 100, 0.2)  # about 20 windows/s: the best
    cost.observe(4, 200, 0.1)  # another window length: not counted
    best = 4 / cost.estimate(4, 100)  # windows/s at the current machine speed
    assert best > 1 / cost.estimate(1, 100) and best > 4 / cost.estimate(4, 200) / 2
    assert batcher.capacity(100, 0.5).streams == pytest.approx(best * 0.5)
    await batcher.close()


class _Replicas(FakeClassifier):
    """A classifier whose calls run on ``count`` replicas at once (the Ray engine)."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def parallel_calls(self) -> int:
        return self.count


@pytest.mark.parametrize(("replicas", "in_flight", "times"), [(1, 2, 1), (2, 2, 2), (3, 2, 2),
                                                              (2, 1, 1), (0, 2, 1)])  # fmt: skip
async def test_the_gauge_counts_calls_that_run_at_once(
    replicas: int, in_flight: int, times: int
) -> None:
    """With several replicas each runs its own call: capacity is that many times one call's
    rate, but never more calls than the batcher keeps in flight (and at least one)."""
    model = _Replicas(replicas)
    batcher = Batcher(model, max_batch=8, max_wait_ms=0, clock=Clock(), in_flight=in_flight)
    assert batcher.capacity(100, 0.5).streams is None  # no call measured yet
    batcher.cost.observe(2, 100, 0.1)
    one = 2 / batcher.cost.estimate(2, 100) * 0.5
    assert batcher.capacity(100, 0.5).streams == pytest.approx(one * times)
    await batcher.close()


async def test_the_most_urgent_stream_goes_first() -> None:
    """Whatever the rotation, the stream whose pending window is oldest leads the batch."""
    clock = Clock()
    late, early = (Stream(n, CFG, clock=clock) for n in ("late", "early"))
    batcher = Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0)
    batcher.add(late)
    batcher.add(early)
    clock.t = 1.0
    late.push(np.full(100, 0.7, np.float32))  # ready at t=1, stays pending throughout
    for rotation in range(2):
        clock.t = 0.5 * rotation  # each time "early" has the older window
        early.push(np.full(100, 0.2, np.float32))
        batcher._rr = rotation
        [window] = batcher._collect()
        assert window.stream is early
        early.fail(window.index, "done")
        early.pop_messages()
    [window] = batcher._collect()
    assert window.stream is late
    await batcher.close()


# ---- the cost model ------------------------------------------------------------------------------
def test_the_cost_model_learns_call_times() -> None:
    cost = CostModel(alpha=0.5)
    assert cost.estimate(4, 100) == 0.0  # nothing known: no reason to hurry
    cost.observe(1, 100, 0.10)
    assert cost.estimate(1, 100) == pytest.approx(0.10)
    assert cost.estimate(3, 100) == pytest.approx(0.30)  # unseen size: per-sample cost × size
    cost.observe(1, 100, 0.20)  # twice as slow as expected: the machine slowed down…
    assert cost.drift == pytest.approx(1.5)
    assert cost.estimate(1, 100) == pytest.approx(0.175)  # (0.1 + 0.5 × (0.2/1.5 - 0.1)) × 1.5
    assert cost.estimate(3, 100) == pytest.approx(0.525)  # …for every batch size


def test_the_cost_model_learns_how_far_calls_stray() -> None:
    cost = CostModel(alpha=0.5)
    cost.observe(1, 100, 0.1)
    assert cost.spread == 0.0  # nothing was expected yet
    cost.observe(1, 100, 0.15)  # expected 0.1: overran by 50 %
    assert cost.spread == pytest.approx(0.25)
    cost.observe(1, 100, 0.05)  # faster than expected: no overrun
    assert cost.spread == pytest.approx(0.125)
    assert planned_call_s(1.0, spread=10.0) == 2.0 + SEND_MARGIN_S  # at most twice


def test_the_machines_speed_drift_compounds_and_holds() -> None:
    cost = CostModel(alpha=0.5)
    cost.observe(1, 100, 0.1)
    cost.observe(1, 100, 0.3)  # three times the 0.1 s expected: the machine slowed down
    assert cost.drift == pytest.approx(2.0)  # 1 × (1 + 0.5 × (3 - 1))
    assert cost.estimate(1, 100) == pytest.approx(0.25)  # (0.1 + 0.5 × (0.3/2 - 0.1)) × 2
    cost.observe(1, 100, 0.25)  # as expected: the machine is still as slow
    assert cost.drift == pytest.approx(2.0)
    assert cost.estimate(1, 100) == pytest.approx(0.25)


def test_a_call_measured_at_zero_seconds_gives_no_rate() -> None:
    """A clock too coarse to see a call (0 s) says nothing about the model's rate; a window
    length never called has none either."""
    cost = CostModel()
    cost.observe(4, 100, 0.0)
    assert cost.best_rate(100) is None
    assert cost.best_rate(200) is None
    cost.observe(2, 100, 0.1)
    assert cost.best_rate(100) == pytest.approx(2 / cost.estimate(2, 100))


# ---- mixed window lengths: a stream's short tail next to other streams' full windows -------------
# A tail shorter than a window comes from a stream shorter than a window (100 ms or more).
MIXED = StreamConfig(sample_rate=1000, window_ms=300, hop_ms=200, buffer_ms=2000,
                     labels=("a", "b"), gate_rms=0.0, smoothing=1)  # fmt: skip


async def _serve(lengths: list[int], max_batch: int) -> tuple[FakeClassifier, list[list[dict]]]:  # type: ignore[type-arg]
    """One stream per length, each a constant level of its own (the fake model scores a window
    by its mean), all finished at once: full windows and short tails wait together."""
    model = FakeClassifier()
    batcher = Batcher(model, max_batch=max_batch, max_wait_ms=0)
    streams = [Stream(f"s{i}", MIXED, listener=StreamHooks(batcher)) for i in range(len(lengths))]
    for s in streams:
        batcher.add(s)
    for i, (s, n) in enumerate(zip(streams, lengths, strict=True)):
        s.push(np.full(n, 0.01 * (i + 1), np.float32))
        s.finish()
    batcher.start()
    out: list[list[dict]] = [[] for _ in streams]  # type: ignore[type-arg]
    try:
        async with asyncio.timeout(3_000 * MS):  # the fake model answers in microseconds
            while not all(s.drained for s in streams):
                for s, got in zip(streams, out, strict=True):
                    got.extend(s.pop_messages())
                await asyncio.sleep(1 * MS)
    finally:
        await batcher.close()
    for s, got in zip(streams, out, strict=True):
        got.extend(s.pop_messages())
    return model, out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(100, 760), min_size=2, max_size=5), st.integers(1, 8))
def test_mixed_window_lengths_each_stream_gets_its_own_results(
    lengths: list[int], max_batch: int
) -> None:
    model, out = asyncio.run(_serve(lengths, max_batch))
    for i, (n, got) in enumerate(zip(lengths, out, strict=True)):
        full = (n - MIXED.window) // MIXED.hop + 1 if n >= MIXED.window else 0
        covered = (full - 1) * MIXED.hop + MIXED.window if full else 0
        tail = [(n - min(n, MIXED.window), n)] if n - covered >= 100 else []
        spans = [(k * MIXED.hop, k * MIXED.hop + MIXED.window) for k in range(full)] + tail
        assert [(m["start_ms"], m["end_ms"]) for m in got] == spans
        assert [m["seq"] for m in got] == list(range(len(spans)))
        for m in got:  # its own level, never a neighbour's
            assert m["scores"]["b"] == pytest.approx(0.01 * (i + 1), abs=1e-5)
    assert all(b <= max_batch for b in model.batches)
    assert sum(model.batches) == sum(len(got) for got in out)


def test_a_short_tail_and_a_full_window_pending_together_are_not_mixed() -> None:
    model, [short, full] = asyncio.run(_serve([150, 300], max_batch=8))
    # stream 0: one short window [0, 150); stream 1: one full window [0, 300)
    assert [(m["start_ms"], m["end_ms"]) for m in short] == [(0, 150)]
    assert [(m["start_ms"], m["end_ms"]) for m in full] == [(0, 300)]
    assert short[0]["scores"]["b"] == pytest.approx(0.01)
    assert full[0]["scores"]["b"] == pytest.approx(0.02)
    assert model.batches == [1, 1]  # two lengths: two model calls


# ---- graded degradation: the batcher keeps the pace ---------------------------------------------
def test_a_stream_added_while_degraded_is_cut_at_the_wide_hop_and_counts_double() -> None:
    pace = Pace(100, 400, CFG.window)
    pace.policy.level = 1  # 200 ms: as if the server had been busy
    with planning("s", "file", pace=pace) as (b, (s, file), clock):
        file.lossless = True
        assert (s.hop_ms, file.hop_ms) == (200, 100)
        assert b.paced_streams() == 1
        feed(s, 0.5, 0.5)  # 200 ms of audio: one window at the wide hop (ends at 100)
        feed(file, 0.5, 0.5)  # two at the normal one
        assert len(b._collect()) == 3
        clock.t = 2.0
        capacity = b.capacity(100, 0.1)
    expected = RateMeter()
    expected.add(2 + 2, 0.0)  # the paced window stands for two
    assert capacity.load_streams == pytest.approx(expected.rate(2.0) * 0.1)


async def test_an_idle_batcher_lets_the_pace_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """While degraded, an idle batcher still updates the pace (every TICK_S), so the hop
    returns to normal although no window comes to wake it."""
    monkeypatch.setattr("voxlive.pipeline.batcher.TICK_S", 10 * MS)
    pace = Pace(100, 400, CFG.window)
    pace.policy = Degrade(hop_steps(100, 400), hold_s=50 * MS)
    pace.policy.level = 2
    async with batching(FakeClassifier(), "quiet", pace=pace) as (batcher, (quiet,)):
        assert quiet.hop_ms == 400
        await asyncio.sleep(300 * MS)  # two holds and then some, not a single window
        assert pace.hop_ms == 100 and quiet.hop_ms == 100 and batcher.paced_streams() == 0


async def test_with_no_live_stream_left_the_pace_is_normal_at_once() -> None:
    pace = Pace(100, 400, CFG.window)
    pace.policy.level = 2
    async with batching(FakeClassifier(), pace=pace):
        await asyncio.sleep(20 * MS)
        assert pace.hop_ms == 100
