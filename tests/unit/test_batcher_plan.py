"""The batcher's plan on a fake clock (never started): how long it waits for company, how big
the next call is, what it sheds, and the load it reports."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.fakes import Clock, FakeClassifier
from voxlive.pipeline.batcher import Batcher, CostModel
from voxlive.pipeline.overload import RateMeter
from voxlive.pipeline.stream import Stream, StreamConfig

# 1000 Hz: one sample per ms; a 100 ms window every 100 ms; shedding past one second
CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=4000,
                   labels=("a", "b"), gate_rms=0.0, smoothing=1, max_lag_ms=1000)  # fmt: skip


@contextlib.contextmanager
def planning(*names: str, **options: Any) -> Iterator[tuple[Batcher, list[Stream], Clock]]:
    clock = Clock()
    batcher = Batcher(
        FakeClassifier(), clock=clock, **{"max_batch": 8, "max_wait_ms": 2000, **options}
    )
    streams = [Stream(name, CFG, clock=clock) for name in names]
    for stream in streams:
        batcher.add(stream)
    yield batcher, streams, clock


def feed(stream: Stream, windows: int = 1) -> None:
    stream.push(np.full(100 * windows, 0.5, np.float32))


def answered(live: Stream) -> None:
    """``live`` cuts a window now and the model answers it: its next window is due a hop on."""
    feed(live)
    window = live.take()
    assert window is not None
    live.complete(window.index, np.array([0.5, 0.5]))


def test_by_default_a_window_waits_at_most_250_ms_for_company_and_a_call_30_s() -> None:
    with planning("s", "live") as (b, (s, live), clock):
        answered(live)  # due at t=0.1
        clock.t = 0.05
        feed(s)
        assert b.wait_s(0.05) == pytest.approx(0.25)  # the latency budget, not max_wait (2 s)
        assert b.timeout_s == 30.0


def test_windows_of_every_stream_count_towards_a_full_batch() -> None:
    for max_batch, waits in ((4, False), (5, True)):
        with planning("a", "b", "live", max_batch=max_batch) as (b, (s1, s2, live), clock):
            answered(live)
            clock.t = 0.05
            feed(s1, 2)
            feed(s2, 2)  # four windows pending in all
            assert (b.wait_s(0.05) > 0) is waits, max_batch


def test_the_wait_is_measured_from_the_oldest_pending_window() -> None:
    with planning("old", "new", "live", max_wait_ms=100) as (b, (old, new, live), clock):
        answered(live)  # due at t=0.1
        clock.t = 0.02
        feed(old)
        clock.t = 0.05
        feed(new)
        assert b.wait_s(0.05) == pytest.approx(0.07)  # until t=0.12: 100 ms after "old"


def test_company_due_exactly_when_the_wait_would_end_is_waited_for() -> None:
    with planning("s", "live", max_wait_ms=50) as (b, (s, live), clock):
        answered(live)  # due at t=0.1
        clock.t = 0.05
        feed(s)
        assert b.wait_s(0.05) == pytest.approx(0.05)  # until t=0.1, when "live" is due


def test_a_window_exactly_within_its_lag_is_served_with_its_company() -> None:
    """Bound 1 s; an untrained cost model plans a call of 20 ms (the send margin). At t=0.9795
    the window ready at t=0 would be answered at 0.9995: in time, so neither shed nor left out
    of the call."""
    with planning("s", max_batch=2) as (b, (s,), clock):
        feed(s)
        clock.t = 0.5
        feed(s)
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
        feed(s)
        clock.t = 0.5
        feed(s)
        clock.t = 0.7
        batch = b._collect()
    assert [w.index for w in batch] == [0]
    assert s.stats.shed == 0


def test_shed_windows_count_as_offered_load() -> None:
    with planning("s", max_batch=4) as (b, (s,), clock):
        feed(s)
        assert len(b._collect()) == 1  # one window offered at t=0
        clock.t = 0.1
        feed(s, 2)  # ready at t=0.1: stale by t=2
        clock.t = 1.5
        feed(s)
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
        feed(file, 6)
        clock.t = 100.0
        assert len(b._collect()) == 4
        assert file.stats.shed == 0


def test_equally_urgent_streams_take_turns() -> None:
    """Two streams with windows ready at the same moment, calls of one window: they alternate."""
    with planning("a", "b", max_batch=1) as (b, (s1, s2), _):
        feed(s1, 3)
        feed(s2, 3)
        served = [b._collect()[0].stream.id for _ in range(4)]
    assert sorted(served[:2]) == ["a", "b"] and sorted(served[2:]) == ["a", "b"]
    assert served[0] != served[1] and served[1] != served[2]


def test_a_lossless_stream_with_shedding_on_keeps_every_window() -> None:
    config = dataclasses.replace(CFG, max_lag_ms=10)
    clock = Clock()
    b = Batcher(FakeClassifier(), max_batch=2, max_wait_ms=0, clock=clock)
    s = Stream("file", config, clock=clock)
    s.lossless = True
    b.add(s)
    feed(s, 3)
    clock.t = 10.0
    assert [w.index for w in b._collect()] == [0, 1]
    assert s.stats.shed == 0 and s.pending == 1


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
