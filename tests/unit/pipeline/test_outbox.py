"""A stream's messages (pipeline/outbox.py): results, ambient and error messages for each kind
of settled window, latency from the window's last sample, replay for a client that resumes,
and ``end``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.fakes import Clock
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.stream import Stream

# 1 sample per ms: one 100 ms window every 100 ms
CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=1000,
                   labels=("a", "b"), smoothing=1)  # fmt: skip
LOUD, QUIET = 0.5, 0.0  # the rms gate (0.01) sends LOUD windows to the model, gates QUIET ones


def _stream(**changes: object) -> tuple[Stream, Clock]:
    clock = Clock()
    return Stream("s", dataclasses.replace(CFG, **changes), clock=clock), clock  # type: ignore[arg-type]


def windows(*levels: float) -> np.ndarray:
    """One window per level, each a constant signal."""
    return np.concatenate([np.full(100, v, np.float32) for v in levels])


def test_failed_windows_become_error_messages() -> None:
    s, _ = _stream()
    s.push(windows(LOUD))
    w = s.take()
    assert w is not None
    s.fail(w.index, "inference failed")
    [m] = s.pop_messages()
    assert m["type"] == "error" and m["code"] == "inference_failed" and m["seq"] == 0


def test_zero_scores_mean_no_speech() -> None:
    s, _ = _stream()
    s.push(windows(LOUD))
    w = s.take()
    assert w is not None
    s.complete(w.index, np.zeros(2))
    [m] = s.pop_messages()
    assert m["label"] == "ambient" and m["gated"] is False


def test_a_row_of_another_width_than_the_labels_is_refused_not_cut_to_fit() -> None:
    """Scores are named by the labels one for one: one score for two labels (a model of
    another width) raises, instead of naming the one score and dropping the other label."""
    s, _ = _stream()
    s.push(windows(LOUD))
    w = s.take()
    assert w is not None
    s.complete(w.index, np.array([0.9]))
    with pytest.raises(ValueError):
        s.pop_messages()


def test_latency_is_measured_from_the_last_sample() -> None:
    s, clock = _stream()
    clock.t = 10.0
    s.push(windows(LOUD))
    w = s.take()
    assert w is not None
    clock.t = 10.25
    s.complete(w.index, np.array([0.5, 0.5]))
    [m] = s.pop_messages()
    assert m["latency_ms"] == 250.0


def test_messages_for_failed_gated_and_no_speech_windows() -> None:
    s, _ = _stream()
    s.push(windows(LOUD, LOUD, QUIET, LOUD))
    failed, no_speech, quiet = s.take(), s.take(), s.take()
    assert failed is not None and no_speech is not None and quiet is not None
    s.fail(failed.index, "")  # no reason given
    s.complete(no_speech.index, np.zeros(2))  # the model says: no speech
    s.complete(quiet.index, np.array([0.1, 0.9]))
    error, ambient, gated, result = s.pop_messages()
    assert error["type"] == "error" and error["message"] == "inference failed"
    assert (ambient["label"], ambient["confidence"], ambient["gated"]) == ("ambient", 1.0, False)
    assert ambient["scores"] == {"a": 0.0, "b": 0.0}
    assert (gated["label"], gated["confidence"], gated["gated"]) == ("ambient", 1.0, True)
    assert (result["label"], result["confidence"]) == ("b", pytest.approx(0.9))


def test_end_reports_the_errors_the_connection_dropped() -> None:
    s, _ = _stream()
    assert s.end_message()["dropped_errors"] == 0
    assert s.end_message(dropped_errors=2)["dropped_errors"] == 2


# ---- max_unsent_results: exactly that many kept for a client that resumes --------------------
def test_replay_keeps_exactly_max_unsent_messages() -> None:
    s, _ = _stream(window_ms=200, hop_ms=200, max_unsent=3)
    s.push(np.zeros(800, np.float32))  # four quiet windows, gated at once
    sent = s.pop_messages()
    assert [m["seq"] for m in sent] == [0, 1, 2, 3]
    assert [m["seq"] for m in s.replay(-1)] == [1, 2, 3]
    assert [m["seq"] for m in s.replay(2)] == [3]
    assert s.replay(3) == []
