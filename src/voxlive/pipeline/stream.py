"""One audio stream: ring buffer → overlapping windows → gate → ordered, numbered messages.

The stream composes three parts that never import it (their shared types are in
:mod:`voxlive.pipeline.slots`, its options in :mod:`voxlive.pipeline.config`):

- :class:`~voxlive.pipeline.windows.Windows`: the ring buffer, cutting windows into slots, each
  slot's state and the drop policies;
- :class:`~voxlive.pipeline.gate.Gate`: which windows the model sees (rms, VAD or none);
- :class:`~voxlive.pipeline.outbox.Outbox`: seq numbers, smoothing, typed messages, the replay
  buffer for resume, and the counters reported in ``end``.

It never waits: ``push`` cuts new windows (gating quiet ones at once), the batcher ``take``s
pending windows and later ``complete``s or ``fail``s them, and ``pop_messages`` returns the
messages that are ready, in window order. It tells the rest of the pipeline what happened
through the one :class:`~voxlive.pipeline.slots.StreamListener` it is built with.

**Pace.** A live stream's windows are cut :attr:`Stream.hop_ms` apart: the configured hop, or a
wider one the batcher sets with :meth:`Stream.pace` while the server is under pressure
(:mod:`voxlive.pipeline.pace`). Its client hears of a change in window order: ``pop_messages``
stops before the first window cut at another hop than the client was told, and ``pop_pace``
then gives the ``pace`` message to send before it. A lossless stream is never paced.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voxlive.audio.vad import VadState
from voxlive.metrics import Metrics
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.gate import Gate
from voxlive.pipeline.outbox import Outbox
from voxlive.pipeline.overload import shed_cutoff
from voxlive.pipeline.slots import (
    NoListener,
    Slot,
    SlotState,
    StreamListener,
    StreamStats,
)
from voxlive.pipeline.windows import Windows
from voxlive.protocol import messages
from voxlive.protocol.messages import EndMessage, PaceMessage, SegmentMessage, WindowMessage
from voxlive.protocol.resume_token import Checkpoint

__all__ = ["Slot", "SlotState", "Stream", "Window"]


@dataclass(frozen=True, slots=True)
class Window:
    """A window handed to the batcher: answer it with ``stream.complete`` or ``stream.fail``."""

    stream: Stream
    index: int
    audio: np.ndarray
    ready_at: float  # monotonic seconds when its last sample arrived


class Stream:
    """See the module docstring. Not thread-safe: used from the event loop only."""

    def __init__(
        self,
        stream_id: str,
        config: StreamConfig,
        *,
        listener: StreamListener | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = stream_id
        self.config = config
        self.listener = listener or NoListener()
        self.stats = StreamStats()
        self._clock = clock
        self._windows = Windows(config, self.listener, self.stats, metrics)
        self._gate = Gate(config, self._windows, metrics)
        self._outbox = Outbox(config, self.stats, metrics)
        self.finished = False  # no more audio will come
        self.closed = False
        # Background work (a file, not a live client): the batcher serves live streams first.
        self.background = False
        self.input_frames = 0  # sample frames its clients sent, at their rate (set by them)
        self._told_hop_ms = config.hop_ms  # the hop its client knows of (ready's, or a pace's)

    # ---- counters ---------------------------------------------------------------------------
    @property
    def gating(self) -> int:
        """Windows waiting for the VAD."""
        return self._windows.gating

    @property
    def pending(self) -> int:
        """Windows waiting for the batcher."""
        return self._windows.pending

    @property
    def inflight(self) -> int:
        """Windows in a model call."""
        return self._windows.inflight

    @property
    def samples_received(self) -> int:
        return self._windows.ring.written

    @property
    def dropped_ms(self) -> float:
        return self._outbox.dropped_ms

    @property
    def lossless(self) -> bool:
        """Whether the stream must lose nothing (files, clients that ask): its windows are
        never shed or dropped; its reader gets back-pressure instead (:attr:`backlogged`)."""
        return self._windows.lossless

    @lossless.setter
    def lossless(self, value: bool) -> None:
        self._windows.lossless = value
        if value:  # never paced
            self._windows.set_hop_ms(self.config.hop_ms)

    @property
    def hop_ms(self) -> int:
        """The hop its windows are cut at now, ms: ``config.hop_ms``, or wider while paced."""
        return self._windows.hop_ms

    @property
    def paced(self) -> bool:
        """Cut at a wider hop than the configured one (the server is busy)."""
        return self._windows.hop_ms > self.config.hop_ms

    def pace(self, hop_ms: int) -> None:
        """Cut the next windows ``hop_ms`` apart (ignored on a lossless stream): the next
        window starts that long after the latest one. Its client is told before the first
        result of such a window (:meth:`pop_pace`)."""
        if not self.lossless and hop_ms != self._windows.hop_ms:
            self._windows.set_hop_ms(hop_ms)

    @property
    def backlogged(self) -> bool:
        """A lossless stream holding more than ``buffer_ms`` of unclassified audio: stop
        reading its client until this turns false (the listener's ``results_ready`` says when
        to look again)."""
        return self._windows.backlogged and not self.closed

    @property
    def uses_vad(self) -> bool:
        return self._gate.vad is not None

    # ---- audio in ---------------------------------------------------------------------------
    def push(self, samples: np.ndarray) -> None:
        """Append mono float32 samples at the model rate and cut every window now complete."""
        if self.finished:
            raise RuntimeError("push after finish")
        if len(samples) == 0:
            return
        for slot in self._windows.write(samples, self._clock()):
            self._gate.admit(slot)
        self._windows.drop_overwritten()
        self._windows.bound_unsent()
        if self.uses_vad:
            self.listener.audio_arrived()

    def finish(self) -> None:
        """No more audio: classify the tail that no full window covered, then drain."""
        if self.finished:
            return
        self.finished = True
        for slot in self._windows.cut(self._clock()):  # a narrower hop may have left some
            self._gate.admit(slot)
        tail = self._windows.cut_tail(self._clock())
        if tail is not None:
            self._gate.admit(tail)
        if self.uses_vad:
            if not self._gate.vad_busy:
                self._gate.decide_gating()
            self.listener.audio_arrived()
        self.listener.results_ready()

    # ---- the VAD runner's side ---------------------------------------------------------------
    def vad_job(self) -> tuple[VadState, np.ndarray] | None:
        """The audio the VAD has not seen yet, whole chunks only (a copy), with this stream's
        VAD state; ``None`` when there is nothing to do. Call :meth:`vad_done` with the result.
        """
        if self.closed:
            return None
        return self._gate.vad_job()

    def vad_done(self, probs: np.ndarray | None) -> None:
        """Speech probabilities for the last job's chunks (``None``: the VAD failed, so its
        windows count as speech and go to the classifier)."""
        if self.closed:  # a closed stream hands out no more jobs: this one is forgotten
            return
        self._gate.vad_done(probs)

    # ---- the batcher's side -----------------------------------------------------------------
    def oldest_pending(self) -> Slot | None:
        return self._windows.oldest_pending()

    def pending_slots(self) -> list[Slot]:
        """The windows waiting for the batcher, oldest first."""
        return [slot for slot in self._windows.slots if slot.state is SlotState.PENDING]

    def oldest_ready_at(self) -> float:
        """When the oldest pending window became ready (infinity when none is pending)."""
        slot = self._windows.oldest_pending()
        return slot.ready_at if slot is not None else float("inf")

    def next_window_at(self, now: float) -> float:
        """When this stream's next window for the model is due if it streams in real time
        (monotonic seconds); infinity when nothing says one is coming: the stream has finished,
        has not cut a window yet, its latest window was ambient (the gate will most likely keep
        the next one from the model too), or it has stalled (the next window is overdue by more
        than a hop: the client went quiet, so waiting for it only adds latency)."""
        last = self._windows.last_cut_at
        if self.finished or last is None or not self._gate.last_to_model:
            return float("inf")
        hop_s = self.hop_ms / 1000
        due = last + hop_s
        if now > due + hop_s:
            return float("inf")
        return due

    def shed_stale(self, now: float, call_s: float, cap: float = math.inf) -> int:
        """Shed the pending windows that a model call starting ``now`` and taking ``call_s``
        would answer more than ``max_lag_ms`` after their last sample (none on a lossless
        stream, or with ``max_lag_ms`` 0), but none ready at or after ``cap``; returns how
        many."""
        cutoff = min(shed_cutoff(now, call_s, self.config.max_lag_ms / 1000), cap)
        return self._windows.shed(cutoff)

    def take(self, length: int | None = None) -> Window | None:
        """The oldest pending window (only if it has ``length`` samples, when given)."""
        slot = self._windows.take(length)
        if slot is None:
            return None
        audio = self._windows.ring.view(slot.start, slot.length)
        return Window(self, slot.index, audio, slot.ready_at)

    def complete(self, index: int, probs: np.ndarray) -> None:
        """The model's row for window ``index``; ignored after :meth:`close`."""
        self._windows.settle(index, SlotState.DONE, probs=probs)

    def fail(self, index: int, message: str) -> None:
        """Window ``index`` failed in the model; ``message`` is safe to show the client."""
        self._windows.settle(index, SlotState.FAILED, error=message)

    # ---- results out ------------------------------------------------------------------------
    @property
    def drained(self) -> bool:
        """Finished, and every window has been answered and popped."""
        w = self._windows
        return self.finished and not w.slots and not w.pending and not w.inflight and not w.gating

    def pop_messages(self) -> list[WindowMessage]:
        """Messages for the settled windows at the head, in window order, up to the first
        window cut at another hop than the client knows of (:meth:`pop_pace` comes first)."""
        told = None if self.lossless else self._told_hop_ms
        return self._outbox.messages(self._windows.pop_settled(told), self._clock())

    def pop_pace(self) -> list[PaceMessage]:
        """The ``pace`` message due before the next window's result (that window was cut at
        another hop than the client knows of), or none; call after :meth:`pop_messages`. It
        wakes the listener: the messages after it are ready to pop."""
        slots = self._windows.slots
        if not slots or slots[0].hop_ms in (self._told_hop_ms, 0):
            return []
        self._told_hop_ms = slots[0].hop_ms
        self.listener.results_ready()
        return [messages.pace(hop_ms=self._told_hop_ms, normal_hop_ms=self.config.hop_ms)]

    def retell_pace(self) -> None:
        """A new client took the stream over (a resume): it knows only ``ready``'s hop, so
        the next window at another hop is announced again."""
        self._told_hop_ms = self.config.hop_ms

    def pop_segments(self, final: bool = False) -> list[SegmentMessage]:
        """Segments closed by the messages popped so far; once the stream has drained (or
        ``final``: ``end`` is due anyway), the last one too. Call after :meth:`pop_messages`."""
        return self._outbox.pop_segments(final=final or self.drained)

    def replay(self, after_seq: int) -> list[WindowMessage]:
        """Messages already emitted with ``seq > after_seq`` (at most ``max_unsent`` kept)."""
        return self._outbox.replay(after_seq)

    def checkpoint(self, input_rate: int) -> Checkpoint:
        """Where the stream stands for a resume elsewhere (:mod:`voxlive.protocol.resume_token`):
        its next unanswered window, the counters and smoothing of every window before it, and
        the input frame (at ``input_rate`` Hz) its client must replay from."""
        position, cut, dropped = self._windows.unanswered()
        absolute = self._outbox.origin + position
        offset = absolute * input_rate // self.config.sample_rate
        return self._outbox.checkpoint(position, cut, dropped, offset)

    def restore(self, cp: Checkpoint, delivered_through: int | None = None) -> None:
        """Go on from ``cp``, on a fresh stream: its first sample is stream time
        ``cp.position``, its next message is ``cp.next_seq``; messages up to seq
        ``delivered_through`` (the client has them from the stream's previous front) are
        counted but not handed out again."""
        if self.samples_received or self.closed:
            raise RuntimeError("restore on a stream that already holds audio")
        self._outbox.restore(cp, -1 if delivered_through is None else delivered_through)
        self.input_frames = cp.input_offset

    def end_message(self, dropped_errors: int = 0) -> EndMessage:
        """``end``; ``dropped_errors``: error messages the connection had to drop."""
        return self._outbox.end(self.id, self._windows.ring.written, dropped_errors)

    def close(self) -> None:
        """Forget everything; late results from the batcher are ignored. Idempotent."""
        self.closed = True
        self._windows.clear()
        self._outbox.clear()
        self._gate.clear()
