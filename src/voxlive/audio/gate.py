"""Non-speech gates: decide, before the model, that a window is ``ambient``."""

from __future__ import annotations

import numpy as np

AMBIENT = "ambient"


def rms(samples: np.ndarray) -> float:
    """Root-mean-square level of float samples in [-1, 1] (0.0 for an empty array)."""
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


class RmsGate:
    """Windows whose RMS level is below ``threshold`` (full scale = 1.0) are ambient.

    ``threshold = 0`` lets every window through. The reference used 0.01.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def is_ambient(self, window: np.ndarray) -> bool:
        return self.threshold > 0 and rms(window) < self.threshold
