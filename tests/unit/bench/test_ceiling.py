"""The model's ceiling (bench/ceiling.py), measured at the model's own sample rate."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import DATA
from voxlive.bench.ceiling import ceiling
from voxlive.inference.base import ModelInfo
from voxlive.settings import Settings


# ---- the ceiling -----------------------------------------------------------------------------
class _Model:
    """A classifier at ``rate`` Hz that records the length of the windows it is given."""

    def __init__(self, rate: int) -> None:
        self.info = ModelInfo("fake", "fake", ("a", "b"), rate)
        self.lengths: set[int] = set()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.lengths.add(batch.shape[1])
        return np.zeros((len(batch), 2), np.float32)

    def warmup(self, window_samples: int) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_ceiling_is_measured_at_the_models_own_sample_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _Model(8000)
    monkeypatch.setattr("voxlive.pipeline.assembly.load_classifier", lambda settings: model)
    found = ceiling(Settings(window_ms=500, hop_ms=250), [str(DATA / "male_speech.wav")], min_s=0)
    assert model.lengths == {4000}  # 500 ms at 8 kHz, cut from the recording decoded at 8 kHz
    assert found.sample_rate == 8000 and [b.batch for b in found.by_batch] == [1, 2, 4]
    assert found.streams == pytest.approx(
        found.audio_s_per_s / 2
    )  # a live stream sends 2 windows' audio per s
