"""A stream's options: immutable, built once per pipeline from the settings and the model
(:func:`voxlive.pipeline.assembly.stream_config`) and shared by every stream it opens. The stream
keeps its state elsewhere (:mod:`voxlive.pipeline.slots` and the parts of
:mod:`voxlive.pipeline.stream`). Below every part of a stream: this module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxlive.settings import GateKind


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Per-stream options (immutable; the stream keeps its state elsewhere)."""

    sample_rate: int
    window_ms: int
    hop_ms: int
    buffer_ms: int
    labels: tuple[str, ...]
    gate: GateKind = "rms"
    gate_rms: float = 0.01
    vad_threshold: float = 0.5
    vad_min_speech_ms: int = 100
    smoothing: int = 4
    max_unsent: int = 256
    max_lag_ms: int = 0  # a live window that cannot be answered within this is shed (0: never)

    @property
    def window(self) -> int:
        """Window length in samples."""
        return self.sample_rate * self.window_ms // 1000

    @property
    def hop(self) -> int:
        """Samples between the starts of consecutive windows."""
        return self.sample_rate * self.hop_ms // 1000

    @property
    def buffer(self) -> int:
        """Ring buffer capacity in samples."""
        return self.sample_rate * self.buffer_ms // 1000
