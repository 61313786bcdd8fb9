"""A stream's windows (pipeline/windows.py), driven through the stream: windows cut every hop
with stream timestamps, the tail classified from 100 ms (in whole samples at any rate), windows
dropped once the ring overwrote their audio, settled windows released in window order, the
counters of pending and in-flight windows, shed windows counted once, and what a client that
does not read is left with."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.fakes import Clock
from voxlive.metrics import Metrics
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.slots import MIN_TAIL_MS
from voxlive.pipeline.stream import Stream

RATE = 1000  # 1 sample per ms keeps the arithmetic readable
# 100 ms windows every 50 ms in a 300 ms ring
CFG = StreamConfig(sample_rate=RATE, window_ms=100, hop_ms=50, buffer_ms=300,
                   labels=("a", "b"), gate_rms=0.01, smoothing=1)  # fmt: skip
# 200 ms windows every 200 ms, none gated: where a tail starts, the ring's edge
EDGES = StreamConfig(sample_rate=RATE, window_ms=200, hop_ms=200, buffer_ms=1000,
                     labels=("a", "b"), gate_rms=0.0, smoothing=1)  # fmt: skip
# one 100 ms window per hop, shed once a second late
HOPS = StreamConfig(sample_rate=RATE, window_ms=100, hop_ms=100, buffer_ms=1000,
                    labels=("a", "b"), smoothing=1, max_lag_ms=1000)  # fmt: skip
LOUD, QUIET = 0.5, 0.0  # the rms gate (0.01) sends LOUD windows to the model, gates QUIET ones


def _stream(config: StreamConfig = CFG, **changes: object) -> tuple[Stream, Clock]:
    clock = Clock()
    return Stream("s", dataclasses.replace(config, **changes), clock=clock), clock  # type: ignore[arg-type]


def loud(n: int) -> np.ndarray:
    return np.full(n, 0.5, dtype=np.float32)


def test_windows_overlap_with_stream_timestamps() -> None:
    s, _ = _stream()
    s.push(loud(250))
    starts = []
    while (w := s.take()) is not None:
        starts.append(w.index)
        assert len(w.audio) == 100
        s.complete(w.index, np.array([0.2, 0.8]))
    msgs = s.pop_messages()
    assert [(m["start_ms"], m["end_ms"]) for m in msgs] == [
        (0, 100),
        (50, 150),
        (100, 200),
        (150, 250),
    ]
    assert [m["seq"] for m in msgs] == [0, 1, 2, 3]
    assert all(m["label"] == "b" and m["class"] == "b" for m in msgs)


def test_results_come_out_in_window_order() -> None:
    s, _ = _stream()
    s.push(loud(100))  # window 0: loud, goes to the model
    s.push(np.zeros(100, np.float32))  # windows 1 (mixed) and 2 (quiet, gated at once)
    w0, w1 = s.take(), s.take()
    assert w0 is not None and w1 is not None
    assert s.pop_messages() == []  # window 2 is done but waits behind 0 and 1
    s.complete(w1.index, np.array([1.0, 0.0]))
    assert s.pop_messages() == []
    s.complete(w0.index, np.array([0.0, 1.0]))
    assert [m["label"] for m in s.pop_messages()] == ["b", "a", "ambient"]


def test_backlog_beyond_buffer_is_dropped_and_counted() -> None:
    s, _ = _stream()
    s.push(loud(1000))  # 19 windows, the ring holds 300 ms
    assert s.stats.dropped_windows > 0
    kept = []
    while (w := s.take()) is not None:
        kept.append(w)
        s.complete(w.index, np.array([0.5, 0.5]))
    msgs = s.pop_messages()
    assert len(msgs) + s.stats.dropped_windows == s.stats.windows == 19
    assert msgs[0]["start_ms"] == 700  # only windows still in the ring
    assert msgs[-1]["dropped_ms"] == 700  # the client is told how much audio it lost


def test_pending_windows_overwritten_later_are_dropped() -> None:
    s, _ = _stream()
    s.push(loud(100))
    assert s.pending == 1
    s.push(loud(400))  # window 0's audio is overwritten before the batcher took it
    assert s.stats.dropped_windows >= 1
    assert all(w.index != 0 for w in iter(s.take, None))


def test_finish_classifies_the_tail() -> None:
    s, _ = _stream(window_ms=200, hop_ms=200, buffer_ms=400)
    s.push(loud(350))  # one window [0, 200); 150 ms are uncovered
    s.finish()
    windows = list(iter(s.take, None))
    assert [len(w.audio) for w in windows] == [200, 200]
    for w in windows:
        s.complete(w.index, np.array([0.5, 0.5]))
    assert [m["start_ms"] for m in s.pop_messages()] == [0, 150]  # the tail is [150, 350)


def test_a_tail_under_100_ms_is_not_classified() -> None:
    s, _ = _stream()
    s.push(loud(230))  # windows end at 100, 150, 200; 30 ms are uncovered
    s.finish()
    assert len(list(iter(s.take, None))) == 3


def test_short_stream_gets_one_short_window() -> None:
    s, _ = _stream(window_ms=200, hop_ms=100, buffer_ms=400)
    s.push(loud(150))
    s.finish()
    [w] = list(iter(s.take, None))
    assert len(w.audio) == 150
    s.complete(w.index, np.array([0.1, 0.9]))
    assert not s.drained
    [m] = s.pop_messages()
    assert m["end_ms"] == 150
    assert s.drained


def test_unsent_results_are_bounded() -> None:
    s, _ = _stream(max_unsent=5, buffer_ms=200)
    for _ in range(100):
        s.push(np.zeros(50, np.float32))  # each push gates one window; nobody pops
    assert s.stats.unsent_dropped > 0
    msgs = s.pop_messages()
    # max_unsent are kept, plus the windows the ring (200 ms = 4 hops) may still hold: not all 99
    assert 5 <= len(msgs) <= 10
    assert msgs[-1]["end_ms"] == 5000  # the newest survive, the oldest were dropped
    assert len(msgs) + s.stats.unsent_dropped == s.stats.windows  # every window accounted for


def test_late_results_after_close_are_ignored() -> None:
    s, _ = _stream()
    s.push(loud(100))
    w = s.take()
    assert w is not None
    s.close()
    s.complete(w.index, np.array([0.5, 0.5]))
    assert s.pop_messages() == []


# ---- a tail of 100 ms or more is classified (MIN_TAIL_MS) ----------------------------------------
@pytest.mark.parametrize(("uncovered", "tail"), [(MIN_TAIL_MS - 1, False), (MIN_TAIL_MS, True)])
def test_a_tail_of_exactly_100_ms_is_classified_and_99_ms_is_not(
    uncovered: int, tail: bool
) -> None:
    s, _ = _stream(EDGES)
    s.push(np.full(200 + uncovered, 0.5, np.float32))
    s.finish()
    spans = [(w.audio.size, w.index) for w in iter(s.take, None)]
    assert spans == ([(200, 0), (200, 1)] if tail else [(200, 0)])


@pytest.mark.parametrize(("length", "windows"), [(MIN_TAIL_MS - 1, 0), (MIN_TAIL_MS, 1)])
def test_a_stream_shorter_than_a_window_needs_100_ms(length: int, windows: int) -> None:
    s, _ = _stream(EDGES)
    s.push(np.full(length, 0.5, np.float32))
    s.finish()
    assert [w.audio.size for w in iter(s.take, None)] == [length] * windows


# ---- buffer_ms: a window whose audio is still in the ring is kept ---------------------------
@pytest.mark.parametrize(("more", "dropped"), [(0, 0), (1, 1)])
def test_a_pending_window_is_dropped_only_once_its_first_sample_is_gone(
    more: int, dropped: int
) -> None:
    s, _ = _stream(EDGES, buffer_ms=400)
    s.push(np.full(200, 0.5, np.float32))  # window 0 pending, [0, 200)
    s.push(np.full(200 + more, 0.5, np.float32))  # the ring holds exactly [0, 400), or [1, 401)
    assert s.stats.dropped_windows == dropped
    first = s.take()
    assert first is not None and first.index == dropped


def test_the_100_ms_tail_is_counted_in_whole_samples_at_any_rate() -> None:
    # 11025 Hz: 100 ms is 1102.5 samples; a tail of 1102 whole samples is long enough
    s = Stream("r", StreamConfig(sample_rate=11_025, window_ms=200, hop_ms=200, buffer_ms=1000,
                                 labels=("a", "b"), gate_rms=0.0), clock=Clock())  # fmt: skip
    s.push(np.full(2_205 + 1_102, 0.5, np.float32))
    s.finish()
    assert [w.audio.size for w in iter(s.take, None)] == [2_205, 2_205]


# ---- the counters: in flight, shed, kept for a client that does not read -------------------------
def windows(*levels: float) -> np.ndarray:
    return np.concatenate([np.full(100, v, np.float32) for v in levels])


def test_shed_windows_are_counted_once_as_shed_and_reported_as_dropped() -> None:
    clock, metrics = Clock(), Metrics()
    s = Stream("s", HOPS, metrics=metrics, clock=clock)
    s.push(windows(LOUD, LOUD))  # ready at t=0
    clock.t = 2.0
    assert s.shed_stale(2.0, 0.0) == 2  # answered at t=2 at best: past the 1 s bound
    s.push(windows(LOUD))
    assert s.shed_stale(4.0, 0.0) == 1
    assert s.pop_messages() == [] and s.stats.shed == 3 and s.stats.dropped_windows == 3
    value = metrics.registry.get_sample_value
    assert value("voxlive_windows_total", {"outcome": "shed"}) == 3
    assert value("voxlive_windows_total", {"outcome": "dropped"}) is None  # not twice
    assert value("voxlive_dropped_audio_seconds_total") == pytest.approx(0.3)
    end = s.end_message()
    assert (end["dropped_windows"], end["dropped_ms"]) == (3, 300.0)


def test_a_client_that_does_not_read_keeps_only_the_newest_results() -> None:
    # max_unsent 3, one window per hop the ring holds (10 of 10.5), and one more
    config, pushed, kept = dataclasses.replace(HOPS, buffer_ms=1050, max_unsent=3), 20, 14
    s = Stream("s", config)
    for _ in range(pushed):
        s.push(np.zeros(config.hop, np.float32))  # a window at a time, each gated at once
    out = s.pop_messages()
    assert len(out) == kept
    assert out[0]["start_ms"] == (pushed - kept) * config.hop_ms  # the oldest went first
    assert s.end_message()["dropped_results"] == pushed - kept


def test_results_wait_behind_a_window_still_in_the_model() -> None:
    s = Stream("s", dataclasses.replace(HOPS, max_unsent=1))
    s.push(windows(LOUD))
    window = s.take()  # in the model…
    assert window is not None and window.index == 0
    for _ in range(20):
        s.push(windows(QUIET))  # …while 20 windows behind it are gated
    s.complete(window.index, np.array([0.2, 0.8]))
    out = s.pop_messages()
    assert out[0]["label"] == "b" and len(out) == 21  # nothing was dropped behind it


def test_counters_after_close_and_a_late_answer() -> None:
    s = Stream("s", HOPS)
    s.push(windows(LOUD, LOUD, LOUD))
    window = s.take()
    assert window is not None
    assert (s.pending, s.inflight) == (2, 1)
    s.close()
    assert (s.pending, s.gating, s.inflight) == (0, 0, 1)  # still in the model
    s.complete(window.index, np.array([0.5, 0.5]))  # the late answer is ignored
    assert (s.pending, s.gating, s.inflight) == (0, 0, 0)
    assert s.pop_messages() == []

    vad = Stream("v", dataclasses.replace(HOPS, sample_rate=16_000, gate="vad"))
    vad.push(np.zeros(16_000, np.float32))
    assert vad.gating > 0
    vad.close()
    assert (vad.pending, vad.gating, vad.inflight) == (0, 0, 0)


def test_a_window_in_the_model_is_counted_until_it_is_answered() -> None:
    s = Stream("s", HOPS)
    s.push(windows(LOUD, LOUD))
    first, second = s.take(), s.take()
    assert first is not None and second is not None
    assert (s.pending, s.inflight) == (0, 2)
    s.fail(first.index, "boom")
    assert s.inflight == 1
    s.complete(second.index, np.array([0.5, 0.5]))
    assert s.inflight == 0


def test_a_new_hop_counts_from_the_latest_window_and_covers_the_tail() -> None:
    s, _ = _stream(EDGES, buffer_ms=5000)
    s.push(loud(450))  # windows at 0, 200 (hop 200)
    s.pace(600)
    s.push(loud(750))  # 1200: the next at 200 + 600 = 800 (ends 1000), then 1400 (not yet)
    s.pace(200)  # the latest is at 800: the next at 1000, complete already
    s.finish()  # cut at once, then the tail: 1000-1200 covered, nothing left
    while (w := s.take()) is not None:
        s.complete(w.index, np.array([0.2, 0.8]))
    told: list[object] = []
    while got := [*s.pop_messages(), *s.pop_pace()]:
        told += [f"pace {m['hop_ms']}" if m["type"] == "pace" else m["start_ms"] for m in got]
    assert told == [0, 200, "pace 600", 800, "pace 200", 1000]


def test_a_hop_under_one_sample_is_refused() -> None:
    s, _ = _stream(EDGES)
    with pytest.raises(ValueError, match=r"hop_ms: expected at least one sample, got 0 ms"):
        s.pace(0)
