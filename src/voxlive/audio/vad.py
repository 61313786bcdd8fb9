"""Neural voice-activity detection: Silero VAD, the ONNX model the ``silero-vad`` package ships.

Silero VAD is recurrent: each 32 ms chunk's speech probability depends on an LSTM state carried
from the previous chunk plus the last 64 samples of it ("context"). That state belongs to one
stream. :class:`VadState` holds it; :class:`SileroVad` steps many streams' states in one batched
call (stacking their states and splitting them back), so batching never mixes or resets them —
unlike the package's own wrapper, which keeps one state and resets it whenever the batch size
changes. The package module that loads the model is not imported: it sets torch's thread count
to 1 for the whole process.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATES = {16_000: (512, 64), 8_000: (256, 32)}  # rate -> (chunk, context) samples


def model_path() -> Path:
    """The packaged ONNX model, located without importing the package."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        raise ImportError("the silero-vad package is not installed (pip install silero-vad)")
    return Path(spec.origin).parent / "data" / "silero_vad.onnx"


@dataclass(slots=True)
class VadState:
    """One stream's recurrent state: LSTM state (2, 128) and the previous chunk's tail."""

    context_samples: int
    state: np.ndarray = field(default_factory=lambda: np.zeros((2, 128), np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def __post_init__(self) -> None:
        if self.context.size == 0:
            self.context = np.zeros(self.context_samples, np.float32)

    def reset(self) -> None:
        self.state = np.zeros((2, 128), np.float32)
        self.context = np.zeros(self.context_samples, np.float32)


class SileroVad:
    """Speech probability per chunk for many independent streams.

    Thread-compatible: one caller at a time (voxlive's VAD worker thread).
    """

    def __init__(self, sample_rate: int = 16_000, path: Path | None = None) -> None:
        import onnxruntime as ort

        if sample_rate not in SAMPLE_RATES:
            raise ValueError(
                f"vad: expected a sample rate of 16000 or 8000 Hz, got {sample_rate} Hz"
            )
        self.sample_rate = sample_rate
        self.chunk, self.context = SAMPLE_RATES[sample_rate]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session: Any = ort.InferenceSession(
            str(path or model_path()), opts, providers=["CPUExecutionProvider"]
        )
        self._sr = np.array(sample_rate, dtype=np.int64)

    def new_state(self) -> VadState:
        return VadState(self.context)

    def step(self, states: Sequence[VadState], chunks: np.ndarray) -> np.ndarray:
        """Advance each stream by one chunk: ``chunks`` is (len(states), chunk) float32.

        Returns the speech probability of each chunk and updates each state in place.
        """
        n = len(states)
        if chunks.shape != (n, self.chunk):
            raise ValueError(f"vad: expected chunks of shape {(n, self.chunk)}, got {chunks.shape}")
        x = np.concatenate([np.stack([s.context for s in states]), chunks], axis=1)
        state = np.stack([s.state for s in states], axis=1)  # (2, n, 128)
        out, new_state = self._session.run(
            None, {"input": x.astype(np.float32, copy=False), "state": state, "sr": self._sr}
        )
        for i, s in enumerate(states):
            s.state = np.ascontiguousarray(new_state[:, i, :])
            s.context = x[i, -self.context :].copy()
        probs: np.ndarray = out[:, 0].astype(np.float32)
        return probs

    def run(self, jobs: Sequence[tuple[VadState, np.ndarray]]) -> list[np.ndarray]:
        """Speech probabilities for several streams' runs of consecutive chunks.

        ``jobs`` holds (state, audio) pairs with ``len(audio)`` a multiple of the chunk size.
        Step k batches every stream that still has a k-th chunk.
        """
        chunked = [audio.reshape(-1, self.chunk) for _, audio in jobs]
        results = [np.empty(len(c), np.float32) for c in chunked]
        for k in range(max((len(c) for c in chunked), default=0)):
            rows = [i for i, c in enumerate(chunked) if len(c) > k]
            probs = self.step([jobs[i][0] for i in rows], np.stack([chunked[i][k] for i in rows]))
            for i, p in zip(rows, probs, strict=True):
                results[i][k] = p
        return results
