import dataclasses

import numpy as np
import pytest

from fakes import Clock
from voxlive.pipeline.stream import Stream, StreamConfig

RATE = 1000  # 1 sample per ms keeps the arithmetic readable


def _stream(**kw: object) -> tuple[Stream, Clock]:
    cfg = StreamConfig(sample_rate=RATE, window_ms=100, hop_ms=50, buffer_ms=300,
                       labels=("a", "b"), gate_rms=0.01, smoothing=1)  # fmt: skip
    cfg = dataclasses.replace(cfg, **kw)  # type: ignore[arg-type]
    clock = Clock()
    return Stream("s", cfg, clock=clock), clock


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


def test_quiet_windows_are_gated_without_the_model() -> None:
    s, _ = _stream()
    s.push(np.zeros(100, np.float32))
    assert s.pending == 0
    [m] = s.pop_messages()
    assert m["label"] == "ambient" and m["gated"] is True and m["scores"] == {}


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


def test_failed_windows_become_error_messages() -> None:
    s, _ = _stream()
    s.push(loud(100))
    w = s.take()
    assert w is not None
    s.fail(w.index, "inference failed")
    [m] = s.pop_messages()
    assert m["type"] == "error" and m["code"] == "inference_failed" and m["seq"] == 0


def test_zero_scores_mean_no_speech() -> None:
    s, _ = _stream()
    s.push(loud(100))
    w = s.take()
    assert w is not None
    s.complete(w.index, np.zeros(2))
    [m] = s.pop_messages()
    assert m["label"] == "ambient" and m["gated"] is False


def test_a_row_of_another_width_than_the_labels_is_refused_not_cut_to_fit() -> None:
    """Scores are named by the labels one for one: one score for two labels (a model of
    another width) raises, instead of naming the one score and dropping the other label."""
    s, _ = _stream()
    s.push(loud(100))
    w = s.take()
    assert w is not None
    s.complete(w.index, np.array([0.9]))
    with pytest.raises(ValueError):
        s.pop_messages()


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


def test_latency_is_measured_from_the_last_sample() -> None:
    s, clock = _stream()
    clock.t = 10.0
    s.push(loud(100))
    w = s.take()
    assert w is not None
    clock.t = 10.25
    s.complete(w.index, np.array([0.5, 0.5]))
    [m] = s.pop_messages()
    assert m["latency_ms"] == 250.0


def test_late_results_after_close_are_ignored() -> None:
    s, _ = _stream()
    s.push(loud(100))
    w = s.take()
    assert w is not None
    s.close()
    s.complete(w.index, np.array([0.5, 0.5]))
    assert s.pop_messages() == []


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
    s.push(loud(100))
    assert rec.events == ["pending"]  # a window for the model: wake the batcher
    w = s.take()
    assert w is not None
    s.complete(w.index, np.array([0.5, 0.5]))
    assert rec.events[-1] == "ready"  # a result to send: wake the sender
    rec.events.clear()
    s.push(np.zeros(100, np.float32))
    assert rec.events == ["ready"]  # gated at once: ready without the model
    assert "audio" not in rec.events  # no VAD gate: nobody to wake for audio
