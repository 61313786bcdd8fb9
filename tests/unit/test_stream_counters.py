"""A stream's counters and what it reports: shed windows (stats, metrics, ``end``), results kept
for a client that does not read, the counters after close, and the messages for failed, gated
and no-speech windows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.fakes import Clock
from voxlive.metrics import Metrics
from voxlive.pipeline.stream import Stream, StreamConfig

CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=1000,
                   labels=("a", "b"), smoothing=1, max_lag_ms=1000)  # fmt: skip
LOUD, QUIET = 0.5, 0.0  # the rms gate (0.01) sends LOUD windows to the model, gates QUIET ones


def windows(*levels: float) -> np.ndarray:
    return np.concatenate([np.full(100, v, np.float32) for v in levels])


def test_shed_windows_are_counted_once_as_shed_and_reported_as_dropped() -> None:
    clock, metrics = Clock(), Metrics()
    s = Stream("s", CFG, metrics=metrics, clock=clock)
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
    config, pushed, kept = dataclasses.replace(CFG, buffer_ms=1050, max_unsent=3), 20, 14
    s = Stream("s", config)
    for _ in range(pushed):
        s.push(np.zeros(config.hop, np.float32))  # a window at a time, each gated at once
    out = s.pop_messages()
    assert len(out) == kept
    assert out[0]["start_ms"] == (pushed - kept) * config.hop_ms  # the oldest went first
    assert s.end_message()["dropped_results"] == pushed - kept


def test_results_wait_behind_a_window_still_in_the_model() -> None:
    s = Stream("s", dataclasses.replace(CFG, max_unsent=1))
    s.push(windows(LOUD))
    window = s.take()  # in the model…
    assert window is not None and window.index == 0
    for _ in range(20):
        s.push(windows(QUIET))  # …while 20 windows behind it are gated
    s.complete(window.index, np.array([0.2, 0.8]))
    out = s.pop_messages()
    assert out[0]["label"] == "b" and len(out) == 21  # nothing was dropped behind it


def test_counters_after_close_and_a_late_answer() -> None:
    s = Stream("s", CFG)
    s.push(windows(LOUD, LOUD, LOUD))
    window = s.take()
    assert window is not None
    assert (s.pending, s.inflight) == (2, 1)
    s.close()
    assert (s.pending, s.gating, s.inflight) == (0, 0, 1)  # still in the model
    s.complete(window.index, np.array([0.5, 0.5]))  # the late answer is ignored
    assert (s.pending, s.gating, s.inflight) == (0, 0, 0)
    assert s.pop_messages() == []

    vad = Stream("v", dataclasses.replace(CFG, sample_rate=16_000, gate="vad"))
    vad.push(np.zeros(16_000, np.float32))
    assert vad.gating > 0
    vad.close()
    assert (vad.pending, vad.gating, vad.inflight) == (0, 0, 0)


def test_a_window_in_the_model_is_counted_until_it_is_answered() -> None:
    s = Stream("s", CFG)
    s.push(windows(LOUD, LOUD))
    first, second = s.take(), s.take()
    assert first is not None and second is not None
    assert (s.pending, s.inflight) == (0, 2)
    s.fail(first.index, "boom")
    assert s.inflight == 1
    s.complete(second.index, np.array([0.5, 0.5]))
    assert s.inflight == 0


def test_messages_for_failed_gated_and_no_speech_windows() -> None:
    s = Stream("s", CFG)
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
    s = Stream("s", CFG)
    assert s.end_message()["dropped_errors"] == 0
    assert s.end_message(dropped_errors=2)["dropped_errors"] == 2
