"""A stream's options (pipeline/config.py): lengths in samples at the model's rate, rounded down
where milliseconds are not whole samples, and frozen."""

from __future__ import annotations

import dataclasses

import pytest

from voxlive.pipeline.config import StreamConfig


def test_lengths_in_samples_at_the_model_rate() -> None:
    cfg = StreamConfig(sample_rate=16_000, window_ms=1000, hop_ms=500, buffer_ms=4000,
                       labels=("a", "b"))  # fmt: skip
    assert (cfg.window, cfg.hop, cfg.buffer) == (16_000, 8_000, 64_000)


def test_lengths_that_are_not_whole_samples_are_rounded_down() -> None:
    # 11025 Hz: 100 ms is 1102.5 samples, 250 ms 2756.25, 1 s exactly 11025
    cfg = StreamConfig(sample_rate=11_025, window_ms=250, hop_ms=100, buffer_ms=1000,
                       labels=("a",))  # fmt: skip
    assert (cfg.window, cfg.hop, cfg.buffer) == (2_756, 1_102, 11_025)


def test_the_defaults_and_that_options_are_frozen() -> None:
    cfg = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=50, buffer_ms=300, labels=("a",))
    assert (cfg.gate, cfg.gate_rms, cfg.vad_threshold, cfg.vad_min_speech_ms) == (
        "rms",
        0.01,
        0.5,
        100,
    )
    assert (cfg.smoothing, cfg.max_unsent, cfg.max_lag_ms) == (4, 256, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hop_ms = 100  # type: ignore[misc]
