"""The overload policy (pipeline/overload.py) on a fake clock: when a window is stale, how big
a call may be, how far calls stray, the rate meter and the capacity gauge, and a stream under it
(stale live windows shed and reported; lossless streams never shed, their ring grown instead)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from tests.fakes import Clock
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.overload import (
    CALL_SAFETY,
    SEND_MARGIN_S,
    Capacity,
    RateMeter,
    capacity,
    is_stale,
    plan_batch,
    planned_call_s,
    shed_cap,
    shed_cutoff,
)
from voxlive.pipeline.stream import Stream

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


# ---- a stream under the policy: stale live windows shed, lossless ones kept ----------------------
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


# ---- the rate meter and the capacity gauge -------------------------------------------------------
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


def _steady(meter: RateMeter, per_s: float, start: float, until: float) -> None:
    """Events every 1/per_s seconds from ``start`` up to (not including) ``until``."""
    n = 0
    while (t := start + n / per_s) < until:
        meter.add(1, t)
        n += 1


@pytest.mark.parametrize("start", [0.0, 100.0])
def test_a_steady_rate_shows_from_the_start(start: float) -> None:
    """Ten events a second: about 10/s half a second in (the weights have not summed to tau_s
    yet, and the meter divides by what they sum to), a second in, and a minute in."""
    meter = RateMeter()  # tau 5 s
    _steady(meter, 10, start, start + 0.55)
    assert meter.rate(start + 0.55) == pytest.approx(10, rel=0.15)
    _steady(meter, 10, start + 0.6, start + 1.05)
    assert meter.rate(start + 1.05) == pytest.approx(10, rel=0.1)
    _steady(meter, 10, start + 1.1, start + 60.05)
    assert meter.rate(start + 60.05) == pytest.approx(10, rel=0.05)


def test_a_burst_fades_over_tau() -> None:
    meter = RateMeter()
    assert meter.rate(3.0) == 0.0  # nothing yet
    meter.add(50, 0.0)
    first = meter.rate(10.0)
    assert meter.rate(15.0) == pytest.approx(first * math.exp(-1) * (1 - math.exp(-2)) /
                                             (1 - math.exp(-3)))  # fmt: skip


@pytest.mark.parametrize("tau_s", [0.0, -1.0])
def test_the_meter_needs_a_positive_time_constant(tau_s: float) -> None:
    with pytest.raises(ValueError, match=f"^tau_s: expected > 0 seconds, got {tau_s}$"):
        RateMeter(tau_s)
    assert RateMeter(0.5).rate(1.0) == 0.0  # under a second is fine


def test_the_gauge_in_streams() -> None:
    gauge = capacity(40.0, 12.0, 0.25)  # 40 windows/s, one window per stream every 250 ms
    assert gauge == Capacity(streams=10.0, load_streams=3.0, utilization=0.3, windows_per_s=40.0)
    assert capacity(None, 12.0, 0.25) == Capacity(None, 3.0, None, None)


def test_the_gauge_as_readyz_reports_it_rounded_to_three_decimals() -> None:
    gauge = Capacity(streams=12.34567, load_streams=1.00049, utilization=0.081049,
                     windows_per_s=49.38268)  # fmt: skip
    assert gauge.as_dict() == {
        "streams": 12.346, "load_streams": 1.0, "utilization": 0.081, "windows_per_s": 49.383,
    }  # fmt: skip
    assert Capacity(None, 0.5, None, None).as_dict() == {
        "streams": None, "load_streams": 0.5, "utilization": None, "windows_per_s": None,
    }  # fmt: skip


def test_nothing_pending_sets_no_limit_on_shedding() -> None:
    assert shed_cap([], now=5.0, call_s=0.1) == math.inf
