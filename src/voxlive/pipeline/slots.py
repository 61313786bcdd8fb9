"""What the parts of a stream share: a window's slot and states, the counters, and the one
listener through which the parts (and the stream) tell the outside that something happened.
Below every part: this module imports none of them (nor does :mod:`voxlive.pipeline.config`,
the stream's options).

A stream is composed of three parts (see :mod:`voxlive.pipeline.stream`):
:class:`~voxlive.pipeline.windows.Windows` cuts windows into slots and tracks each slot's state,
:class:`~voxlive.pipeline.gate.Gate` decides which slots the model sees, and
:class:`~voxlive.pipeline.outbox.Outbox` turns settled slots into numbered, typed messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import numpy as np

# A final partial window shorter than this is not classified (too short for any model).
MIN_TAIL_MS = 100


class SlotState(Enum):
    GATING = "gating"  # waiting for the VAD to decide speech or ambient
    PENDING = "pending"  # waiting for the batcher
    INFLIGHT = "inflight"  # in a model call
    DONE = "done"  # answered by the model, or gated as ambient
    FAILED = "failed"  # the model call failed
    DROPPED = "dropped"  # overwritten before the model saw it, or shed as too stale


UNSETTLED = (SlotState.GATING, SlotState.PENDING, SlotState.INFLIGHT)
SETTLED = (SlotState.DONE, SlotState.FAILED, SlotState.DROPPED)


@dataclass(slots=True)
class Slot:
    """One window of a stream, from the moment it is cut until its message is popped."""

    index: int  # 0, 1, 2 … in stream order
    start: int  # stream position in samples at the model rate
    length: int  # samples
    ready_at: float  # monotonic seconds when its last sample arrived
    state: SlotState = SlotState.PENDING
    probs: np.ndarray | None = None  # the model's row (DONE and not gated)
    gated: bool = False  # settled as ambient by the gate, without the model
    error: str | None = None  # why it FAILED
    hop_ms: int = 0  # the hop it was cut at (wider than the stream's while paced); 0: unknown


@dataclass(slots=True)
class StreamStats:
    """What happened to a stream's windows. Every window cut ends up in exactly one of
    ``classified``, ``gated``, ``failed`` or ``dropped_windows`` once its message is popped
    (``unsent_dropped`` counts messages dropped for a client that did not read)."""

    windows: int = 0  # windows cut (including those lost to an overwritten ring)
    classified: int = 0  # result messages with the model's scores
    gated: int = 0  # result messages settled as ambient without the model
    failed: int = 0  # error messages for failed model calls
    dropped_windows: int = 0  # windows not classified: audio overwritten, or shed (below)
    shed: int = 0  # of dropped_windows: shed because their result would have come too late
    unsent_dropped: int = 0  # finished results dropped unsent (beyond max_unsent)


class StreamListener(Protocol):
    """How a stream tells the rest of the pipeline that something happened. Handed in at
    construction; every method is cheap, called on the event loop, and may be called often."""

    def windows_pending(self) -> None:
        """Windows are waiting for the model (wake the batcher)."""

    def audio_arrived(self) -> None:
        """New audio (or the end of it) for the VAD (wake the VAD runner)."""

    def results_ready(self) -> None:
        """Messages may be ready to pop (wake whoever sends them)."""


class NoListener:
    """A listener that ignores everything (tests and tools that poll)."""

    def windows_pending(self) -> None:
        pass

    def audio_arrived(self) -> None:
        pass

    def results_ready(self) -> None:
        pass
