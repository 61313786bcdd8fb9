"""The pure parts of a resuming client: the replay buffer and the reconnect schedule. No I/O.

A stream that asked for ``acks`` may lose its connection at any moment; the client then resumes it
(on any front sharing the cluster secret) by sending again the audio the server had not answered
by its newest ``ack``. :class:`ReplayBuffer` keeps exactly that audio, bounded; :class:`Backoff`
says how long to wait before each new connection.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_REPLAY_MS = 5_000  # the server's --max-replay-ms default: a replay it reads at once


class ReplayBuffer:
    """The input frames sent since the newest ``ack``'s ``samples``, at most ``max_frames``.

    ``kept_from`` is the input frame (counted from the stream's start, at its input rate) of the
    first frame kept: the ``replay_from`` of a resume. Overflow policy: :meth:`push` drops the
    oldest frames and counts them in ``overflowed`` (a resume then starts later than the ack, and
    the server answers ``resume_failed`` ``gap``); a lossless sender asks :meth:`room` first and
    waits for an ack instead, so nothing overflows.
    """

    def __init__(self, max_frames: int) -> None:
        if max_frames <= 0:
            raise ValueError(f"max_frames: expected > 0 frames, got {max_frames}")
        self.max_frames = max_frames
        self.kept_from = 0
        self.overflowed = 0  # frames dropped unacknowledged
        self._chunks: list[np.ndarray] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def sent_to(self) -> int:
        """The input frame after the last one pushed."""
        return self.kept_from + self._size

    def room(self) -> int:
        """Frames that may be pushed without dropping any."""
        return self.max_frames - self._size

    def push(self, samples: np.ndarray) -> None:
        """Keep ``samples``, just sent; past ``max_frames`` the oldest give way (counted)."""
        if len(samples):
            self._chunks.append(samples)
            self._size += len(samples)
        if self._size > self.max_frames:
            over = self._size - self.max_frames
            self._drop(over)
            self.overflowed += over

    def acked(self, samples: int) -> None:
        """The server answered every window before input frame ``samples``: forget them."""
        self._drop(min(max(samples - self.kept_from, 0), self._size))

    def take(self) -> tuple[int, np.ndarray]:
        """``(kept_from, frames)``: everything kept, to replay; the buffer is then empty at
        ``kept_from`` (push the frames again as they are sent)."""
        frames = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        self._chunks, self._size = [], 0
        return self.kept_from, frames

    def _drop(self, n: int) -> None:
        self.kept_from += n
        self._size -= n
        while n:
            head = self._chunks[0]
            if len(head) <= n:
                self._chunks.pop(0)
                n -= len(head)
            else:
                self._chunks[0] = head[n:]
                n = 0


@dataclass(frozen=True)
class Backoff:
    """Delays before reconnecting: ``attempt`` 0 (right after a drop) goes at once, then
    ``first_ms`` doubling up to ``max_ms``, each scaled by a random factor in
    [1 - ``jitter``, 1 + ``jitter``] so that the clients of a failed front do not come back in
    step. A refusal's ``retry_after_ms`` is a floor: the server said when it will have room."""

    first_ms: int = 100
    max_ms: int = 2_000
    jitter: float = 0.2
    give_up_ms: int = 30_000  # reconnecting longer than this since the last stream was up fails

    def delay_ms(
        self,
        attempt: int,
        retry_after_ms: int | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        base = 0.0 if attempt <= 0 else min(self.first_ms * 2 ** (attempt - 1), self.max_ms)
        base = max(base, float(retry_after_ms or 0))
        return base * (1 + self.jitter * (2 * rand() - 1))
