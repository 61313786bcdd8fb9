"""The model interface every backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What is serving. ``fallback`` says why a fallback model is in use (``None``: no fallback);
    ``backend_fallback`` why ``backend`` is not the one ``--backend auto`` tried first (``None``:
    it is). ``dtype``: the number type the model computes in."""

    name: str
    backend: str
    labels: tuple[str, ...]
    sample_rate: int
    device: str = "cpu"
    fallback: str | None = None
    backend_fallback: str | None = None
    dtype: str = "float32"


def no_speech(labels: int) -> np.ndarray:
    """The row a classifier returns for a window with no speech in it: all zeros."""
    return np.zeros(labels, dtype=np.float32)


def is_no_speech(row: np.ndarray) -> bool:
    """Whether a classifier's row says "no speech" (see :func:`no_speech`)."""
    return not bool(np.any(row))


class Classifier(Protocol):
    """A batch audio classifier.

    ``predict`` is called from one worker thread at a time (the batcher's), never from the
    event loop. It takes float32 windows of shape (batch, samples) at ``info.sample_rate`` Hz,
    all the same length, and returns probabilities of shape (batch, len(info.labels)).
    A window's result must not depend on the other windows in its batch.

    "No speech in this window" is part of the contract: the classifier returns the row
    :func:`no_speech` makes (all zeros), which :func:`is_no_speech` recognises and the pipeline
    reports as ``ambient`` (not gated: the model decided).
    """

    @property
    def info(self) -> ModelInfo: ...

    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def warmup(self, window_samples: int) -> None:
        """Run the model once or twice so the first real request is not slow."""
        ...

    def close(self) -> None:
        """Release what the model holds outside this object (a Ray cluster connection, a local
        Ray instance it started). Called once, after the last ``predict``, from a worker thread
        (it may block); idempotent. Backends that hold only memory do nothing."""
        ...


def parallel_calls(classifier: Classifier) -> int:
    """How many model calls the classifier runs at once: its ``parallel_calls`` (the Ray
    engine's running replicas) where it has one, else 1 (a model in this process)."""
    count = getattr(classifier, "parallel_calls", None)
    return max(int(count()), 1) if callable(count) else 1
