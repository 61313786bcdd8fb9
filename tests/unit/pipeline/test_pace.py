"""The pace of live streams (pipeline/pace.py) on a fake clock: what live streams ask of the
model, counted at the normal hop; every live stream paced when the step changes and none of the
lossless ones; a stream that opens gets the hop in force; with no live stream left the hop is
normal at once; and what /metrics says."""

from __future__ import annotations

import numpy as np

from voxlive.metrics import Metrics
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.degrade import HOLD_S, RISE_S
from voxlive.pipeline.pace import WARM_S, Pace
from voxlive.pipeline.stream import Stream, Window

CFG = StreamConfig(sample_rate=1000, window_ms=1000, hop_ms=500, buffer_ms=4000,
                   labels=("a", "b"), gate_rms=0.0)  # fmt: skip
BEST_RATE = 10.0  # windows per second the model takes flat out: 5 live streams at 500 ms
TICK = 0.1


def window(stream: Stream, now: float = 0.0) -> Window:
    return Window(stream, 0, np.zeros(CFG.window, np.float32), now)


def streams(live: int, lossless: int = 0) -> list[Stream]:
    out = [Stream(f"l{i}", CFG) for i in range(live)]
    for i in range(lossless):
        s = Stream(f"f{i}", CFG)
        s.lossless = True
        out.append(s)
    return out


def drive(pace: Pace, served: list[Stream], start: float, until: float) -> float:
    """Each live stream offers the model one window per hop it is cut at, from ``start`` to
    ``until``; the pace is updated every TICK. Returns ``until``."""
    due = {s.id: start for s in served}
    for t in np.arange(start, until, TICK):
        now = float(t)
        for s in served:
            while not s.lossless and due[s.id] <= now:
                pace.offered([window(s, now)], now)
                due[s.id] += s.hop_ms / 1000
        pace.update(now, served, BEST_RATE)
    return until


def test_sustained_overload_widens_every_live_stream_and_no_lossless_one() -> None:
    metrics = Metrics()
    pace = Pace(500, 2000, CFG.window, metrics=metrics)
    served = streams(live=6, lossless=1)  # 12 windows/s asked of a model that takes 10
    for s in served:
        pace.join(s)
    t = drive(pace, served, 0.0, WARM_S + 2 * RISE_S + 1.0)
    assert pace.hop_ms == 1000  # demand 1.2: 0.6 at 1000 ms, so no further
    assert [s.hop_ms for s in served] == [1000] * 6 + [500]
    assert sum(s.paced for s in served) == 6
    assert metrics.hop_changes.labels("wider")._value.get() == 1
    assert metrics.live_hop._value.get() == 1000
    # Half as many windows now, each standing for two: the demand is the same, so it holds.
    drive(pace, served, t, t + 3 * HOLD_S)
    assert pace.hop_ms == 1000 and metrics.hop_changes.labels("narrower")._value.get() == 0


def test_it_narrows_after_the_hold_once_streams_leave() -> None:
    metrics = Metrics()
    pace = Pace(500, 2000, CFG.window, metrics=metrics)
    served = streams(live=6)
    for s in served:
        pace.join(s)
    t = drive(pace, served, 0.0, WARM_S + 3.0)
    assert pace.hop_ms == 1000
    served = served[:2]  # 4 windows/s at 500 ms: 0.4 < FALL_AT once the meter has caught up
    t = drive(pace, served, t, t + 2 * HOLD_S)
    assert pace.hop_ms == 500 and [s.hop_ms for s in served] == [500, 500]
    assert metrics.hop_changes.labels("narrower")._value.get() == 1
    assert metrics.live_hop._value.get() == 500


def test_a_stream_that_opens_gets_the_hop_in_force_and_no_live_stream_means_normal() -> None:
    pace = Pace(500, 2000, CFG.window)
    served = streams(live=6)
    for s in served:
        pace.join(s)
    t = drive(pace, served, 0.0, WARM_S + 3.0)
    newcomer = Stream("new", CFG)
    pace.join(newcomer)
    assert newcomer.hop_ms == 1000
    files = streams(live=0, lossless=1)
    pace.update(t + 0.1, files, BEST_RATE)  # only a file left: nobody to degrade
    assert pace.hop_ms == 500 and not pace.paced
    # and the demand of those gone is forgotten: 4 newcomers (0.8) are not paced by it
    newcomers = streams(live=4)
    drive(pace, newcomers, t + 0.2, t + 0.2 + 2 * HOLD_S)
    assert pace.hop_ms == 500


def test_the_first_seconds_of_demand_are_not_trusted() -> None:
    """Right after the server's first window the meter reads one window over a few ms as
    hundreds a second: 4 streams (0.8 of the model) would be paced by that spike, and stay
    paced (0.8 never falls below FALL_AT). Only sheds count until WARM_S has been metered."""
    pace = Pace(500, 2000, CFG.window)
    served = streams(live=4)
    pace.offered([window(served[0], 0.0)], 0.0)
    pace.update(0.001, served, BEST_RATE)  # the meter: 1 window in 1 ms
    t = drive(pace, served, 0.01, WARM_S - TICK)
    assert pace.hop_ms == 500
    drive(pace, served, t, t + 2 * HOLD_S)
    assert pace.hop_ms == 500  # 0.8 < RISE_AT once warm
    overloaded = streams(live=6)  # a true overload in the first seconds is paced once warm
    fresh = Pace(500, 2000, CFG.window)
    t = drive(fresh, overloaded, 0.0, WARM_S - TICK)
    assert fresh.hop_ms == 500
    drive(fresh, overloaded, t, WARM_S + RISE_S + 2 * TICK)
    assert fresh.hop_ms == 1000


def test_windows_are_counted_at_the_normal_hop_and_files_are_not_live_demand() -> None:
    pace = Pace(500, 2000, CFG.window)
    live, file = streams(live=1, lossless=1)
    live.pace(2000)
    # The capacity gauge counts what every window stands for; live demand only the live ones.
    assert pace.offered([window(live), window(file)], 0.0) == 4 + 1
    assert pace.shed([(live, 2)], 0.0) == 8
    # Files flat out never degrade live streams: only 1 live stream (2 windows/s) is demand.
    pace = Pace(500, 2000, CFG.window)
    only = streams(live=1)
    flood = streams(live=0, lossless=1)[0]
    for t in np.arange(0.0, 10.0, TICK):
        pace.offered([window(flood)] * 20, float(t))  # 200 file windows/s
        pace.update(float(t), [*only, flood], BEST_RATE)
    assert pace.hop_ms == 500


def test_with_no_capacity_measured_nothing_moves() -> None:
    pace = Pace(500, 2000, CFG.window)
    served = streams(live=20)
    for t in np.arange(0.0, 5.0, TICK):
        pace.offered([window(s) for s in served], float(t))
        pace.update(float(t), served, None)
    assert pace.hop_ms == 500
