"""A fixed-capacity float32 ring buffer addressed by absolute sample position.

Writers never block: when the ring is full the oldest samples are overwritten (the drop policy).
Readers ask for ``[start, start + length)`` in stream positions; positions older than
:attr:`RingBuffer.oldest` are gone.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """``capacity`` samples of float32 history. Not thread-safe: one owner (a stream) uses it."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity: expected a positive number of samples, got {capacity}")
        self.capacity = capacity
        self._buf = np.zeros(capacity, dtype=np.float32)
        self.written = 0  # total samples ever written; the next sample's stream position

    @property
    def oldest(self) -> int:
        """Stream position of the oldest sample still held."""
        return max(0, self.written - self.capacity)

    def write(self, samples: np.ndarray) -> None:
        """Append samples (1-D), overwriting the oldest ones when full."""
        n = len(samples)
        if n == 0:
            return
        if n >= self.capacity:  # only the newest `capacity` samples can survive
            self._buf[:] = samples[n - self.capacity :]
            self.written += n
            # Keep the invariant "position p lives at p % capacity".
            self._buf = np.roll(self._buf, self.written % self.capacity)
            return
        at = self.written % self.capacity
        first = min(n, self.capacity - at)
        self._buf[at : at + first] = samples[:first]
        if first < n:
            self._buf[: n - first] = samples[first:]
        self.written += n

    def grow(self, capacity: int) -> None:
        """Hold at least ``capacity`` samples from now on, keeping every sample held (for a
        stream that must not lose audio; its owner bounds how far it grows)."""
        if capacity <= self.capacity:
            return
        kept = self.written - self.oldest
        held = self.view(self.oldest, kept)
        self.capacity = capacity
        self._buf = np.zeros(capacity, dtype=np.float32)
        at = (self.written - kept) % capacity  # where the oldest kept sample lives now
        first = min(kept, capacity - at)
        self._buf[at : at + first] = held[:first]
        self._buf[: kept - first] = held[first:]

    def view(self, start: int, length: int) -> np.ndarray:
        """Copy of samples ``[start, start + length)``; raises IndexError if not fully held."""
        if length < 0 or start < self.oldest or start + length > self.written:
            raise IndexError(
                f"expected a range within [{self.oldest}, {self.written}), "
                f"got [{start}, {start + length})"
            )
        at = start % self.capacity
        if at + length <= self.capacity:
            return self._buf[at : at + length].copy()
        first = self.capacity - at
        return np.concatenate((self._buf[at:], self._buf[: length - first]))
