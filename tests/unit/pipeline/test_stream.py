"""A stream as a whole (pipeline/stream.py): properties that hold for any sequence of pushes,
model answers in any order, failures, drops and gating (``end``'s totals add up, ``seq`` is
dense and follows window order, every window is told exactly once, replay is the tail of what
was sent); its one listener; audio after finish refused; when its next window is due."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import Clock
from voxlive.metrics import Metrics
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.stream import Stream, Window

RATE = 1000  # 1 sample per ms keeps the arithmetic readable


class Recorder:
    """A StreamListener that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def windows_pending(self) -> None:
        self.events.append("pending")

    def audio_arrived(self) -> None:
        self.events.append("audio")

    def results_ready(self) -> None:
        self.events.append("ready")


def test_the_stream_tells_its_one_listener_what_happened() -> None:
    cfg = StreamConfig(sample_rate=RATE, window_ms=100, hop_ms=100, buffer_ms=300,
                       labels=("a", "b"), smoothing=1)  # fmt: skip
    rec = Recorder()
    s = Stream("s", cfg, listener=rec)
    s.push(np.full(100, 0.5, np.float32))
    assert rec.events == ["pending"]  # a window for the model: wake the batcher
    w = s.take()
    assert w is not None
    s.complete(w.index, np.array([0.5, 0.5]))
    assert rec.events[-1] == "ready"  # a result to send: wake the sender
    rec.events.clear()
    s.push(np.zeros(100, np.float32))
    assert rec.events == ["ready"]  # gated at once: ready without the model
    assert "audio" not in rec.events  # no VAD gate: nobody to wake for audio


def test_a_stream_takes_single_samples_and_refuses_audio_after_finish() -> None:
    s = Stream("s", StreamConfig(sample_rate=RATE, window_ms=200, hop_ms=200, buffer_ms=1000,
                                 labels=("a", "b"), gate_rms=0.0, smoothing=1))  # fmt: skip
    for _ in range(200):
        s.push(np.full(1, 0.5, np.float32))
    assert s.samples_received == 200 and s.pending == 1
    s.finish()
    with pytest.raises(RuntimeError, match=r"^push after finish$"):
        s.push(np.full(1, 0.5, np.float32))


def test_the_next_window_is_due_until_exactly_one_hop_late() -> None:
    clock = Clock()
    s = Stream("d", StreamConfig(sample_rate=1000, window_ms=200, hop_ms=200, buffer_ms=1000,
                                 labels=("a", "b"), gate_rms=0.0), clock=clock)  # fmt: skip
    assert s.next_window_at(0.0) == float("inf") and s.oldest_ready_at() == float("inf")
    clock.t = 1.0
    s.push(np.full(200, 0.5, np.float32))
    assert s.oldest_ready_at() == 1.0
    assert s.next_window_at(1.4) == pytest.approx(1.2)  # due + one hop: still expected
    assert s.next_window_at(1.41) == float("inf")  # later: the stream stalled
    w = s.take()
    assert w is not None and w.ready_at == 1.0
    s.close()
    assert s.closed is True and s.vad_job() is None


# ---- properties over any history of pushes, answers, failures and reads --------------------------
CONFIG = StreamConfig(sample_rate=RATE, window_ms=100, hop_ms=50, buffer_ms=300,
                      labels=("a", "b", "c"), gate_rms=0.01, smoothing=3, max_unsent=4)  # fmt: skip


# One step of a client and a model: push n samples at a level (0: quiet, gated), take a window
# for the model, answer the k-th window in flight (any order), fail it, read the messages, or
# let time pass.
step = st.one_of(
    st.tuples(st.just("push"), st.integers(1, 600), st.sampled_from([0.0, 0.001, 0.5])),
    st.tuples(st.just("take"), st.just(0), st.just(0.0)),
    st.tuples(st.just("complete"), st.integers(0, 5), st.floats(0.0, 1.0)),
    st.tuples(st.just("fail"), st.integers(0, 5), st.just(0.0)),
    st.tuples(st.just("pop"), st.just(0), st.just(0.0)),
    st.tuples(st.just("tick"), st.integers(1, 100), st.just(0.0)),
    st.tuples(st.just("pace"), st.sampled_from([50, 100, 200]), st.just(0.0)),
)


def _run(
    steps: list[tuple[str, int, float]], config: StreamConfig, metrics: Metrics | None = None
) -> tuple[Stream, list[Any]]:
    """Play the steps, then finish: answer everything, read everything; the window messages."""
    stream, sent = _play(steps, config, metrics)
    return stream, [m for m in sent if m["type"] != "pace"]


def _pop(s: Stream) -> list[Any]:
    """What a sender sends when woken: the window messages, then a pace if one is due."""
    return [*s.pop_messages(), *s.pop_pace()]


def _play(
    steps: list[tuple[str, int, float]], config: StreamConfig, metrics: Metrics | None = None
) -> tuple[Stream, list[Any]]:
    """Play the steps, then finish: answer everything, read everything; all it sent, in order
    (pace messages too)."""
    clock = Clock()
    s = Stream("p", config, clock=clock, metrics=metrics)
    inflight: list[Window] = []
    out: list[Any] = []
    row = np.array([0.2, 0.5, 0.3], np.float32)
    for kind, n, x in steps:
        if kind == "push":
            s.push(np.full(n, x, np.float32))
        elif kind == "take" and (w := s.take()) is not None:
            inflight.append(w)
        elif kind in ("complete", "fail") and not inflight and (w := s.take()) is not None:
            inflight.append(w)  # a model that answers at once
        if kind == "complete" and inflight:
            w = inflight.pop(n % len(inflight))
            s.complete(w.index, np.roll(row, int(x * 3)))
        if kind == "fail" and inflight:
            w = inflight.pop(n % len(inflight))
            s.fail(w.index, f"boom {w.index}")
        elif kind == "pop":
            out.extend(_pop(s))
        elif kind == "tick":
            clock.t += n / 1000
        elif kind == "pace":
            s.pace(n)
    s.finish()
    for w in inflight:
        s.complete(w.index, row)
    while (w := s.take()) is not None:
        s.complete(w.index, row)
    while got := _pop(s):  # a pace stops a pop: the sender is woken again for the rest
        out.extend(got)
    assert s.drained
    return s, out


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=40), st.booleans())
def test_end_totals_add_up_and_seq_is_dense_for_any_history(steps: list[Any], reads: bool) -> None:
    if not reads:  # a client that reads only at the end: results beyond max_unsent are dropped
        steps = [x for x in steps if x[0] != "pop"]
    s, out = _run(steps, CONFIG)
    end = s.end_message()
    results = [m for m in out if m["type"] == "result"]
    errors = [m for m in out if m["type"] == "error"]
    # every window cut is accounted for exactly once (unsent_dropped: results a client that did
    # not read lost, beyond max_unsent; not part of `end`)
    told = end["results"] + end["gated"] + end["failed"] + end["dropped_windows"]
    assert told + s.stats.unsent_dropped == end["windows"]
    assert len(out) + end["dropped_windows"] + s.stats.unsent_dropped == end["windows"]
    if not s.stats.unsent_dropped:
        assert told == end["windows"]  # the documented invariant
    assert end["gated"] == sum(1 for m in results if m["gated"])
    assert end["results"] == sum(1 for m in results if not m["gated"])
    assert end["failed"] == len(errors)
    assert all(m["code"] == "inference_failed" and m["message"].startswith("boom") for m in errors)
    assert end["dropped_ms"] == end["dropped_windows"] * CONFIG.hop_ms
    assert end["duration_ms"] == s.samples_received * 1000 / RATE
    # seq: 0, 1, 2 … over results and window errors, in window (= time) order
    assert [m["seq"] for m in out] == list(range(len(out)))
    starts = [m["start_ms"] for m in out]
    assert starts == sorted(starts)
    # what a client is told it lost never shrinks
    dropped = [m["dropped_ms"] for m in results]
    assert dropped == sorted(dropped)
    assert all(m["end_ms"] - m["start_ms"] <= CONFIG.window_ms for m in out)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=40))
def test_a_reading_client_loses_nothing_and_end_adds_up_exactly(steps: list[Any]) -> None:
    """A client that reads after every step never has results dropped unsent: then
    ``windows = results + gated + failed + dropped_windows`` exactly (docs/protocol.md)."""
    reading = [x for st_ in steps for x in (st_, ("pop", 0, 0.0))]
    metrics = Metrics()
    s, out = _run(reading, dataclasses.replace(CONFIG, max_unsent=256), metrics)
    end = s.end_message()
    assert s.stats.unsent_dropped == 0
    assert end["results"] + end["gated"] + end["failed"] + end["dropped_windows"] == end["windows"]
    assert [m["seq"] for m in out] == list(range(len(out)))
    # /metrics tells the same story as `end`
    counted = {
        k: metrics.windows.labels(k)._value.get()
        for k in ("classified", "gated", "failed", "dropped")
    }
    assert counted == {"classified": end["results"], "gated": end["gated"], "failed": end["failed"],
                       "dropped": end["dropped_windows"]}  # fmt: skip
    assert metrics.dropped_audio._value.get() == pytest.approx(end["dropped_ms"] / 1000)
    latency = {s.name: s.value for s in metrics.result_latency.collect()[0].samples}
    assert latency["voxlive_result_latency_seconds_count"] == end["results"] + end["gated"]
    waited = sum(m["latency_ms"] for m in out if m["type"] == "result") / 1000
    assert latency["voxlive_result_latency_seconds_sum"] == pytest.approx(waited, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.lists(step, max_size=30), st.integers(-1, 40))
def test_replay_after_any_seq_is_the_tail_of_what_was_sent(steps: list[Any], after: int) -> None:
    s, out = _run(steps, CONFIG)
    replay = s.replay(after)
    expected = [m for m in out if m["seq"] > after][-CONFIG.max_unsent :]
    assert replay == expected


# ---- pace: windows cut further apart while the server is busy ------------------------------------
# Small pushes into a ring that never overflows, so no window is lost: every window is told.
calm_step = st.one_of(
    st.tuples(st.just("push"), st.integers(1, 150), st.sampled_from([0.0, 0.5])),
    st.tuples(st.just("take"), st.just(0), st.just(0.0)),
    st.tuples(st.just("complete"), st.integers(0, 5), st.floats(0.0, 1.0)),
    st.tuples(st.just("pop"), st.just(0), st.just(0.0)),
    st.tuples(st.just("pace"), st.sampled_from([50, 100, 200]), st.just(0.0)),
)
ROOMY = dataclasses.replace(CONFIG, buffer_ms=100_000, max_unsent=10_000)


@settings(max_examples=200, deadline=None)
@given(st.lists(calm_step, max_size=60))
def test_a_pace_comes_right_before_the_first_window_cut_at_its_hop(steps: list[Any]) -> None:
    s, sent = _play(steps, ROOMY)
    end = s.end_message()
    assert end["dropped_windows"] == 0 and s.stats.unsent_dropped == 0
    told, last, windows = CONFIG.hop_ms, None, [m for m in sent if m["type"] != "pace"]
    for m in sent:
        if m["type"] == "pace":
            assert m["hop_ms"] != told  # only news is told
            assert m["normal_hop_ms"] == CONFIG.hop_ms
            assert m["reason"] == ("busy" if m["hop_ms"] > CONFIG.hop_ms else "normal")
            told = m["hop_ms"]
            continue
        if last is not None:
            step = m["start_ms"] - last["start_ms"]
            if m is windows[-1]:  # the tail, cut at the end: less than a hop after the last
                assert 0 < step <= told
            else:
                assert step == told  # every window as far from the last as the client was told
        last = m
    # stream times stay true: each window is window_ms long (the tail at most), and seq dense
    assert all(m["end_ms"] - m["start_ms"] <= CONFIG.window_ms for m in windows)
    assert [m["seq"] for m in windows] == list(range(len(windows)))
    assert end["windows"] == len(windows)


def test_a_paced_stream_cuts_fewer_windows_and_says_so_in_window_order() -> None:
    s = Stream("p", dataclasses.replace(ROOMY, gate_rms=0.0))
    s.push(np.full(150, 0.5, np.float32))  # windows at 0, 50 (hop 50)
    s.pace(200)
    assert s.hop_ms == 200 and s.paced
    s.push(np.full(550, 0.5, np.float32))  # 700 ms: windows at 250, 450 (200 apart)
    while (w := s.take()) is not None:
        s.complete(w.index, np.array([0.2, 0.5, 0.3]))
    first = s.pop_messages()
    assert [m["start_ms"] for m in first] == [0, 50]  # stops before the first at 200 ms
    assert s.pop_pace() == [{"type": "pace", "hop_ms": 200, "normal_hop_ms": 50, "reason": "busy"}]
    assert [m["start_ms"] for m in s.pop_messages()] == [250, 450]
    assert s.pop_pace() == []  # told once
    s.pace(50)  # the pressure fell: the next window 50 ms after the latest one (450)
    s.push(np.full(100, 0.5, np.float32))  # 800 ms: windows at 500, 550, 600, 650, 700
    while (w := s.take()) is not None:
        s.complete(w.index, np.array([0.2, 0.5, 0.3]))
    assert s.pop_messages() == []
    assert s.pop_pace()[0]["reason"] == "normal"
    assert [m["start_ms"] for m in s.pop_messages()] == [500, 550, 600, 650, 700]
    assert not s.paced


def test_a_lossless_stream_is_never_paced() -> None:
    s = Stream("f", dataclasses.replace(CONFIG, gate_rms=0.0))
    s.pace(200)  # before it is known to be lossless (a connection learns it from start)
    s.lossless = True
    assert s.hop_ms == CONFIG.hop_ms and not s.paced
    s.pace(200)
    s.push(np.full(300, 0.5, np.float32))
    while (w := s.take()) is not None:
        s.complete(w.index, np.array([0.2, 0.5, 0.3]))
    assert [m["start_ms"] for m in s.pop_messages()] == [0, 50, 100, 150, 200]
    assert s.pop_pace() == []


def test_a_resumed_stream_tells_its_new_client_the_pace_again() -> None:
    s = Stream("r", dataclasses.replace(CONFIG, gate_rms=0.0))
    s.pace(100)
    s.push(np.full(100, 0.5, np.float32))  # window at 0, cut at the paced hop
    w = s.take()
    assert w is not None
    s.complete(w.index, np.array([0.2, 0.5, 0.3]))
    assert s.pop_messages() == [] and s.pop_pace()[0]["hop_ms"] == 100
    assert len(s.pop_messages()) == 1
    s.retell_pace()  # a new connection knows only ready's hop_ms
    s.push(np.full(100, 0.5, np.float32))  # window at 100
    w = s.take()
    assert w is not None
    s.complete(w.index, np.array([0.2, 0.5, 0.3]))
    assert s.pop_messages() == [] and s.pop_pace()[0]["hop_ms"] == 100
    assert [m["start_ms"] for m in s.pop_messages()] == [100]


def test_the_next_window_is_due_a_paced_hop_after_the_last() -> None:
    clock = Clock()
    s = Stream("d", StreamConfig(sample_rate=1000, window_ms=200, hop_ms=200, buffer_ms=1000,
                                 labels=("a", "b"), gate_rms=0.0), clock=clock)  # fmt: skip
    s.pace(800)
    clock.t = 1.0
    s.push(np.full(200, 0.5, np.float32))
    assert s.next_window_at(1.5) == pytest.approx(1.8)
    assert s.next_window_at(2.7) == float("inf")  # more than a (paced) hop overdue
