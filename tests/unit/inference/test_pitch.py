import numpy as np
import pytest

from tests.helpers import load, majority
from voxlive.inference.pitch import PitchClassifier, yin_f0


@pytest.mark.parametrize("freq", [90.0, 120.0, 210.0, 330.0])
def test_yin_finds_the_f0_of_a_harmonic_tone(freq: float) -> None:
    t = np.arange(16_000) / 16_000
    x = sum(0.3 / k * np.sin(2 * np.pi * freq * k * t) for k in range(1, 5)).astype(np.float32)
    f0 = yin_f0(x, 16_000)
    assert np.nanmedian(f0) == pytest.approx(freq, rel=0.01)


def test_silence_and_noise_are_not_voiced() -> None:
    clf = PitchClassifier()
    rng = np.random.default_rng(0)
    batch = np.stack([np.zeros(16_000), 0.1 * rng.standard_normal(16_000)]).astype(np.float32)
    np.testing.assert_array_equal(clf.predict(batch), 0.0)


@pytest.mark.parametrize(
    ("name", "label"), [("female_speech.wav", "female"), ("male_speech.wav", "male")]
)
def test_real_recordings(name: str, label: str) -> None:
    x, rate = load(name)
    windows = np.stack([x[s : s + rate] for s in range(0, len(x) - rate + 1, rate // 2)])
    probs = PitchClassifier().predict(windows)
    voiced = probs.sum(axis=1) > 0.5
    labels = ["male" if p[0] > p[1] else "female" for p in probs[voiced]]
    assert majority(labels) == label
    assert labels.count(label) / len(labels) >= 0.75
