"""Sample-rate conversion with soxr (streaming for live audio, one-shot for files), downmixing."""

from __future__ import annotations

import numpy as np
import soxr


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(frames, channels) or (frames,) → (frames,) float32 by averaging channels."""
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    if samples.shape[1] == 1:
        return samples[:, 0].astype(np.float32, copy=False)
    mono: np.ndarray = samples.mean(axis=1, dtype=np.float32)
    return mono


class StreamResampler:
    """Resamples a live stream chunk by chunk, keeping filter state between chunks.

    When the input rate changes mid-stream (WAV frames declare their own rate) the filter is
    restarted for the new rate.
    """

    def __init__(self, out_rate: int) -> None:
        self.out_rate = out_rate
        self._in_rate: int | None = None
        self._soxr: soxr.ResampleStream | None = None

    def process(self, mono: np.ndarray, in_rate: int) -> np.ndarray:
        """Resample a mono float32 chunk recorded at ``in_rate`` Hz to ``out_rate``."""
        if in_rate == self.out_rate:
            self._in_rate, self._soxr = in_rate, None
            return mono
        if in_rate != self._in_rate or self._soxr is None:
            self._in_rate = in_rate
            self._soxr = soxr.ResampleStream(
                in_rate, self.out_rate, 1, dtype="float32", quality="HQ"
            )
        out: np.ndarray = self._soxr.resample_chunk(mono)
        return out

    def flush(self) -> np.ndarray:
        """Return the samples still held in the filter (call at the end of the stream)."""
        if self._soxr is None:
            return np.zeros(0, dtype=np.float32)
        out: np.ndarray = self._soxr.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._soxr = None
        return out


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """One-shot resampling of a whole mono signal."""
    if in_rate == out_rate:
        return samples.astype(np.float32, copy=False)
    out: np.ndarray = soxr.resample(samples, in_rate, out_rate, quality="HQ")
    return out.astype(np.float32, copy=False)
