"""The capacity gauge's parts: the rate meter (a steady rate shows from the start and stays
true), the gauge itself and how /readyz reports it, and the shedding limit with nothing pending."""

from __future__ import annotations

import math

import pytest

from voxlive.pipeline.overload import Capacity, RateMeter, capacity, shed_cap


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
