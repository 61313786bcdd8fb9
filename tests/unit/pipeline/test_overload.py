"""The overload policy on a fake clock: shedding stale live windows, lossless streams, the
capacity gauge."""

import dataclasses
import math

import numpy as np
import pytest

from tests.fakes import Clock, FakeClassifier
from voxlive.pipeline.batcher import Batcher, CostModel
from voxlive.pipeline.overload import (
    CALL_SAFETY,
    SEND_MARGIN_S,
    RateMeter,
    capacity,
    is_stale,
    plan_batch,
    planned_call_s,
    shed_cap,
    shed_cutoff,
)
from voxlive.pipeline.stream import Stream, StreamConfig

# 1 sample per ms: a 100 ms window every 100 ms, a bound of 1000 ms.
CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=4000,
                   labels=("a", "b"), gate_rms=0.0, smoothing=1, max_lag_ms=1000)  # fmt: skip


def window() -> np.ndarray:
    return np.full(100, 0.5, np.float32)


def test_a_window_is_stale_once_the_next_call_would_answer_it_past_the_bound() -> None:
    # Ready at t=0, bound 1 s: a 0.3 s call may start until t=0.7, not after.
    assert not is_stale(0.0, now=0.7, call_s=0.3, max_lag_s=1.0)
    assert is_stale(0.0, now=0.71, call_s=0.3, max_lag_s=1.0)
    assert shed_cutoff(5.0, 0.2, 0.0) == -math.inf  # 0: shedding off
    assert not is_stale(0.0, now=100.0, call_s=1.0, max_lag_s=0.0)


def test_the_plan_allows_for_drift_and_sending() -> None:
    assert planned_call_s(0.4) == pytest.approx(0.4 * CALL_SAFETY + SEND_MARGIN_S)
    assert planned_call_s(0.0) == SEND_MARGIN_S
    # Calls that miss by 20 % on average: plan for 1 + 3 x 0.2 = 1.6 times the estimate.
    assert planned_call_s(0.4, spread=0.2) == pytest.approx(0.4 * 1.6 + SEND_MARGIN_S)


def test_the_cost_model_learns_how_far_calls_stray() -> None:
    cost = CostModel(alpha=0.5)
    cost.observe(1, 100, 0.1)
    assert cost.spread == 0.0  # nothing was expected yet
    cost.observe(1, 100, 0.15)  # expected 0.1: overran by 50 %
    assert cost.spread == pytest.approx(0.25)
    cost.observe(1, 100, 0.05)  # faster than expected: no overrun
    assert cost.spread == pytest.approx(0.125)
    assert planned_call_s(1.0, spread=10.0) == 2.0 + SEND_MARGIN_S  # at most twice


async def test_when_every_window_is_stale_the_newest_is_served_anyway() -> None:
    """Shedding everything would stop the calls whose times say when windows are fresh again
    (a slow spell would otherwise shed every window from then on)."""
    clock = Clock()
    batcher = Batcher(FakeClassifier(), max_batch=8, max_wait_ms=0, clock=clock)
    a, b = Stream("a", CFG, clock=clock), Stream("b", CFG, clock=clock)
    for s in (a, b):
        batcher.add(s)
    batcher.cost.observe(1, 100, 5.0)  # a call now looks like it takes 5 s: all stale
    for t, s in ((0.0, a), (0.1, b), (0.2, a)):
        clock.t = t
        s.push(window())
    clock.t = 0.3
    [served] = batcher._collect()
    assert (served.stream.id, served.index) == ("a", 1)  # the newest
    assert a.stats.shed == 1 and b.stats.shed == 1
    assert shed_cap([(0.0, 1.0), (0.2, 1.0)], 0.3, 5.0) == 0.2
    assert shed_cap([(0.0, 1.0), (0.2, 0.0)], 0.3, 5.0) == math.inf  # lossless: served anyway
    await batcher.close()


def test_the_plan_is_the_largest_batch_its_windows_can_still_make() -> None:
    def call_s(n: int) -> float:
        return 0.25 * n

    # Four live windows (bound 1 s) ready at 0, 0.2, 0.4, 0.6; now 0.7. A call of 4 (1 s)
    # suits none of them; of 3 (0.75 s), two (due 1.4, 1.6 s: ready >= 0.45); of 2 (0.5 s),
    # three (ready >= 0.2): so 2.
    live = [(t, 1.0) for t in (0.0, 0.2, 0.4, 0.6)]
    assert plan_batch(live, 0.7, 8, call_s) == (2, 0.5)
    # Lossless windows (bound 0) always count: with two of them, 3 fit.
    assert plan_batch(live + [(0.0, 0.0)] * 2, 0.7, 8, call_s)[0] == 3
    assert plan_batch(live, 0.7, 1, call_s) == (1, 0.25)  # never above max_batch
    assert plan_batch([(0.0, 1.0)], 50.0, 8, call_s) == (1, 0.25)  # at least 1


def test_stale_live_windows_are_shed_and_reported() -> None:
    clock = Clock()
    s = Stream("s", CFG, clock=clock)
    for t in (0.0, 0.5, 1.0):  # three windows, ready at 0, 0.5 and 1.0 s
        clock.t = t
        s.push(window())
    clock.t = 1.2
    assert s.shed_stale(clock.t, call_s=0.2) == 1  # only the one ready at 0 is past saving
    assert s.pending == 2 and s.stats.shed == 1 and s.stats.dropped_windows == 1
    while (w := s.take()) is not None:
        s.complete(w.index, np.array([0.5, 0.5]))
    msgs = s.pop_messages()
    assert [m["start_ms"] for m in msgs] == [100, 200]  # the newest windows, in order
    assert msgs[0]["dropped_ms"] == 100  # the client is told at once
    s.finish()
    assert s.end_message()["dropped_windows"] == 1


def test_lossless_streams_and_a_zero_bound_are_never_shed() -> None:
    clock = Clock()
    lossless = Stream("l", CFG, clock=clock)
    unbounded = Stream("u", dataclasses.replace(CFG, max_lag_ms=0), clock=clock)
    lossless.lossless = True
    for s in (lossless, unbounded):
        s.push(window())
    clock.t = 100.0
    assert lossless.shed_stale(clock.t, 1.0) == 0 and unbounded.shed_stale(clock.t, 1.0) == 0
    assert lossless.pending == unbounded.pending == 1


async def test_the_batcher_sheds_what_its_next_call_would_answer_too_late() -> None:
    clock = Clock()
    batcher = Batcher(FakeClassifier(), max_batch=8, max_wait_ms=0, clock=clock)
    live, file = Stream("live", CFG, clock=clock), Stream("file", CFG, clock=clock)
    file.lossless = True
    for s in (live, file):
        batcher.add(s)
    batcher.cost.observe(2, 100, 0.5)  # a call of two windows takes 0.5 s: 0.25 s per window
    for t in (0.0, 0.6):
        clock.t = t
        live.push(window())
        file.push(window())
    # At t=0.7, allowing a quarter more than measured plus 20 ms to send: a call of 3 would end
    # at 1.6575 s, too late for live's second window (due 1.6 s); a call of 2 ends at 1.345 s,
    # in time for it but not for its first (due 1.0 s). So: shed that one, call with 2.
    clock.t = 0.7
    batch = batcher._collect()
    assert sorted((w.stream.id, w.index) for w in batch) == [("file", 0), ("live", 1)]
    assert live.stats.shed == 1 and file.stats.shed == 0
    await batcher.close()


def test_a_lossless_stream_grows_its_ring_instead_of_dropping_and_reports_its_backlog() -> None:
    s = Stream("f", CFG)
    s.lossless = True
    s.push(np.full(10_000, 0.5, np.float32))  # 10 s at once into a 4 s buffer
    assert s.stats.dropped_windows == 0 and s.pending == 100
    assert s.backlogged  # the reader should stop reading now
    taken = 0
    while (w := s.take()) is not None:
        s.complete(w.index, np.array([0.5, 0.5]))
        taken += 1
    assert taken == 100 and not s.backlogged
    assert len(s.pop_messages()) == 100


def test_a_live_stream_is_never_backlogged() -> None:
    s = Stream("l", CFG)
    s.push(np.full(10_000, 0.5, np.float32))
    assert s.stats.dropped_windows > 0 and not s.backlogged


def test_the_rate_meter_follows_a_steady_rate_on_a_fake_clock() -> None:
    meter = RateMeter(tau_s=2.0)
    assert meter.rate(0.0) == 0.0
    for i in range(200):  # 4 events per second for 50 s
        meter.add(1, i * 0.25)
    assert meter.rate(50.0) == pytest.approx(4.0, rel=0.15)
    assert meter.rate(70.0) < 0.1  # and fades once they stop


def test_capacity_in_streams_from_the_best_measured_rate() -> None:
    # 20 windows/s flat out, one window per 0.5 s hop per stream: 10 streams; 6 offered = 3.
    gauge = capacity(20.0, 6.0, 0.5)
    assert gauge.streams == 10 and gauge.load_streams == 3 and gauge.utilization == 0.3
    assert capacity(None, 2.0, 0.5).as_dict() == {
        "streams": None,
        "load_streams": 1.0,
        "utilization": None,
        "windows_per_s": None,
    }


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
