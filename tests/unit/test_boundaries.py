"""Every documented limit, exactly at it and one past it (README "Configuration" and "Limits",
docs/protocol.md). A limit tested only far from its edge lets an off-by-one through."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.fakes import Clock
from voxlive.pipeline.slots import MIN_TAIL_MS
from voxlive.pipeline.stream import Stream, StreamConfig


# ---- a tail of 100 ms or more is classified ---------------------------------------------------
def _stream(**kw: object) -> Stream:
    cfg = StreamConfig(sample_rate=1000, window_ms=200, hop_ms=200, buffer_ms=1000,
                       labels=("a", "b"), gate_rms=0.0, smoothing=1)  # fmt: skip
    return Stream("b", dataclasses.replace(cfg, **kw), clock=Clock())  # type: ignore[arg-type]


@pytest.mark.parametrize(("uncovered", "tail"), [(MIN_TAIL_MS - 1, False), (MIN_TAIL_MS, True)])
def test_a_tail_of_exactly_100_ms_is_classified_and_99_ms_is_not(
    uncovered: int, tail: bool
) -> None:
    s = _stream()
    s.push(np.full(200 + uncovered, 0.5, np.float32))
    s.finish()
    spans = [(w.audio.size, w.index) for w in iter(s.take, None)]
    assert spans == ([(200, 0), (200, 1)] if tail else [(200, 0)])


@pytest.mark.parametrize(("length", "windows"), [(MIN_TAIL_MS - 1, 0), (MIN_TAIL_MS, 1)])
def test_a_stream_shorter_than_a_window_needs_100_ms(length: int, windows: int) -> None:
    s = _stream()
    s.push(np.full(length, 0.5, np.float32))
    s.finish()
    assert [w.audio.size for w in iter(s.take, None)] == [length] * windows


# ---- buffer_ms: a window whose audio is still in the ring is kept ---------------------------
@pytest.mark.parametrize(("more", "dropped"), [(0, 0), (1, 1)])
def test_a_pending_window_is_dropped_only_once_its_first_sample_is_gone(
    more: int, dropped: int
) -> None:
    s = _stream(buffer_ms=400)
    s.push(np.full(200, 0.5, np.float32))  # window 0 pending, [0, 200)
    s.push(np.full(200 + more, 0.5, np.float32))  # the ring holds exactly [0, 400), or [1, 401)
    assert s.stats.dropped_windows == dropped
    first = s.take()
    assert first is not None and first.index == dropped


# ---- max_unsent_results: exactly that many kept for a client that resumes --------------------
def test_replay_keeps_exactly_max_unsent_messages() -> None:
    s = _stream(max_unsent=3, gate_rms=0.01)
    s.push(np.zeros(800, np.float32))  # four quiet windows, gated at once
    sent = s.pop_messages()
    assert [m["seq"] for m in sent] == [0, 1, 2, 3]
    assert [m["seq"] for m in s.replay(-1)] == [1, 2, 3]
    assert [m["seq"] for m in s.replay(2)] == [3]
    assert s.replay(3) == []


def test_the_100_ms_tail_is_counted_in_whole_samples_at_any_rate() -> None:
    # 11025 Hz: 100 ms is 1102.5 samples; a tail of 1102 whole samples is long enough
    s = Stream("r", StreamConfig(sample_rate=11_025, window_ms=200, hop_ms=200, buffer_ms=1000,
                                 labels=("a", "b"), gate_rms=0.0), clock=Clock())  # fmt: skip
    s.push(np.full(2_205 + 1_102, 0.5, np.float32))
    s.finish()
    assert [w.audio.size for w in iter(s.take, None)] == [2_205, 2_205]


def test_a_stream_takes_single_samples_and_refuses_audio_after_finish() -> None:
    s = _stream()
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
