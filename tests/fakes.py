"""Test doubles shared by the unit and integration tests (and handy for micro-benchmarks)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np

from voxlive.inference.base import Classifier, ModelInfo


class Clock:
    """A monotonic clock that moves only when told: ``clock.t = 1.5``."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeClassifier:
    """A :class:`Classifier` whose scores are ``(1 - mean, mean)`` of each window (so a constant
    signal at level v scores v for the second label), or ``row`` for every window when given.

    ``latency_s`` per call and ``per_window_s`` per window are spent sleeping on the caller's
    thread; a batch holding a window whose mean is close to ``fail_when`` raises. It records the
    batch sizes, each batch's window means and the threads it ran on.
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        per_window_s: float = 0.0,
        fail_when: float | None = None,
        row: tuple[float, ...] | None = None,
        labels: tuple[str, ...] = ("a", "b"),
        sample_rate: int = 1000,
    ) -> None:
        self.latency_s = latency_s
        self.per_window_s = per_window_s
        self.fail_when = fail_when
        self.row = row
        self._info = ModelInfo("fake", "fake", labels, sample_rate)
        self.batches: list[int] = []
        self.means: list[list[float]] = []
        self.threads: set[str] = set()

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def windows(self) -> int:
        """Windows classified so far."""
        return sum(self.batches)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.batches.append(len(batch))
        time.sleep(self.latency_s + self.per_window_s * len(batch))
        means = batch.mean(axis=1)
        self.means.append([round(float(m), 3) for m in means])
        if self.fail_when is not None and np.any(np.isclose(means, self.fail_when)):
            raise RuntimeError("boom")
        if self.row is not None:
            return np.tile(np.asarray(self.row, np.float32), (len(batch), 1))
        return np.stack([1 - means, means], axis=1)

    def warmup(self, window_samples: int) -> None:
        pass

    def close(self) -> None:
        pass


class Slowed:
    """Another classifier made to cost ``per_window_s`` more per window (to saturate it)."""

    def __init__(self, inner: Classifier, per_window_s: float) -> None:
        self.inner = inner
        self.per_window_s = per_window_s

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    def predict(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.per_window_s * len(batch))
        return self.inner.predict(batch)

    def warmup(self, window_samples: int) -> None:
        self.inner.warmup(window_samples)

    def close(self) -> None:
        self.inner.close()


class Transport(asyncio.Transport):
    """The asyncio transport under a uvicorn protocol: records what is written, whether it was
    closed or aborted, and what was written by the time it was aborted. ``get_write_buffer_size``
    is what the peer has not read yet: everything written since the last :meth:`peer_reads`."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = False
        self.closing = False
        self.written = b""
        self.written_at_abort: bytes | None = None
        self.protocol: Any = None
        self._read_upto = 0

    def abort(self) -> None:
        self.aborted = True
        self.closing = True
        if self.written_at_abort is None:
            self.written_at_abort = self.written

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: Any) -> None:
        self.written += bytes(data)

    def peer_reads(self) -> bytes:
        """What the peer reads now: everything written since it last read."""
        data, self._read_upto = self.written[self._read_upto :], len(self.written)
        return data

    def get_write_buffer_size(self) -> int:
        return len(self.written) - self._read_upto

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def get_protocol(self) -> Any:
        return self.protocol

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass
