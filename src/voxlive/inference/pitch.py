"""A built-in male/female classifier from the fundamental frequency (YIN). No download, no torch.

Per window: frame the audio (50 ms frames, 10 ms hop), estimate F0 per frame with YIN
(de Cheveigné & Kawahara 2002), keep voiced frames, take the median F0, and map it through a
logistic curve centred on ``threshold_hz`` (male below, female above). A window with too few
voiced frames holds no speech: its row is :func:`~voxlive.inference.base.no_speech` (all zeros),
which the pipeline reports as ``ambient``.
"""

from __future__ import annotations

import numpy as np

from voxlive.inference.base import ModelInfo, no_speech

FMIN_HZ = 60.0
FMAX_HZ = 400.0
FRAME_MS = 50.0
HOP_MS = 10.0
YIN_THRESHOLD = 0.15
MIN_VOICED_FRAMES = 3
# Logistic slope per octave: half an octave from the threshold gives p ≈ 0.95.
SLOPE_PER_OCTAVE = 6.0


def _frames(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    n = 1 + (len(x) - frame) // hop
    return np.lib.stride_tricks.sliding_window_view(x, frame)[::hop][:n]


def yin_f0(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """F0 in Hz per frame, NaN for unvoiced frames. ``x`` is mono float32."""
    frame = int(sample_rate * FRAME_MS / 1000)
    hop = int(sample_rate * HOP_MS / 1000)
    tau_min = int(sample_rate / FMAX_HZ)
    tau_max = int(sample_rate / FMIN_HZ)
    n = frame - tau_max  # integration window
    frames = _frames(x.astype(np.float64), frame, hop)
    nfft = 1 << int(np.ceil(np.log2(frame + n)))
    # Cross term sum_j x[j] x[j+tau] for j < n, all tau at once via FFT.
    spec_head = np.fft.rfft(frames[:, :n], nfft)
    spec_full = np.fft.rfft(frames, nfft)
    cross = np.fft.irfft(np.conj(spec_head) * spec_full, nfft)[:, : tau_max + 1]
    sq = np.cumsum(np.square(frames), axis=1)
    sq = np.concatenate((np.zeros((len(frames), 1)), sq), axis=1)
    taus = np.arange(tau_max + 1)
    energy_shift = sq[:, taus + n] - sq[:, taus]  # sum_j x[j+tau]^2 for j < n
    diff = sq[:, n : n + 1] + energy_shift - 2.0 * cross
    diff[:, 0] = 0.0
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        cmnd[:, 1:] = diff[:, 1:] * taus[1:] / np.where(cum > 0, cum, np.inf)
    cmnd[:, :tau_min] = np.inf
    below = cmnd < YIN_THRESHOLD
    has = below.any(axis=1)
    first = np.argmax(below, axis=1)
    # Walk from the first dip below the threshold to its local minimum.
    after = taus[None, :] >= first[:, None]
    breaks = after & ~below
    run = after & (np.cumsum(breaks, axis=1) == 0)
    tau = np.argmin(np.where(run, cmnd, np.inf), axis=1).astype(np.float64)
    # Parabolic interpolation around the minimum for sub-sample precision.
    idx = np.clip(tau.astype(int), 1, tau_max - 1)
    rows = np.arange(len(frames))
    a, b, c = cmnd[rows, idx - 1], cmnd[rows, idx], cmnd[rows, idx + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = a - 2 * b + c  # inf - inf (next to tau_min) gives NaN: no interpolation there
        shift = np.where(np.isfinite(denom) & (np.abs(denom) > 1e-12), 0.5 * (a - c) / denom, 0.0)
    tau = idx + np.clip(shift, -1, 1)
    # Quiet frames are not voiced, whatever their periodicity.
    level = np.sqrt(sq[:, -1] / frame)
    loud = level > max(1e-3, 0.05 * float(level.max(initial=0.0)))
    f0 = np.where(has & loud, sample_rate / tau, np.nan)
    return np.asarray(f0)


class PitchClassifier:
    """male/female from median F0. ``threshold_hz`` is the boundary (about 160 Hz)."""

    def __init__(
        self, threshold_hz: float = 160.0, sample_rate: int = 16_000, fallback: str | None = None
    ) -> None:
        self.threshold_hz = threshold_hz
        self._info = ModelInfo(
            name="pitch", backend="pitch", labels=("male", "female"),
            sample_rate=sample_rate, device="cpu", fallback=fallback,
        )  # fmt: skip

    @property
    def info(self) -> ModelInfo:
        return self._info

    def median_f0(self, window: np.ndarray) -> float | None:
        f0 = yin_f0(window, self._info.sample_rate)
        voiced = f0[np.isfinite(f0)]
        if len(voiced) < MIN_VOICED_FRAMES:
            return None
        return float(np.median(voiced))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        out = np.zeros((len(batch), 2), dtype=np.float32)
        for i, window in enumerate(batch):
            f0 = self.median_f0(window)
            if f0 is None:
                out[i] = no_speech(2)
            else:
                octaves = np.log2(f0 / self.threshold_hz)
                p_female = 1.0 / (1.0 + np.exp(-SLOPE_PER_OCTAVE * octaves))
                out[i] = (1.0 - p_female, p_female)
        return out

    def warmup(self, window_samples: int) -> None:
        self.predict(np.zeros((1, window_samples), dtype=np.float32))

    def close(self) -> None:
        """Nothing to release."""
