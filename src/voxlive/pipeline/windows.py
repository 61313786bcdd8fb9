"""A stream's audio and its windows: the ring buffer, cutting overlapping windows into slots, and
every slot's state until its message is popped.

All state changes of a slot go through :meth:`Windows.move`, which keeps the counters
(``gating``, ``pending``, ``inflight``) true and tells the listener: windows for the model, or
results that may be ready. Drop policies (both counted):

- audio: the ring holds ``buffer_ms``; a window whose start has been overwritten before the model
  saw it is dropped (inference fell behind), so latency stays bounded by the buffer. A
  *lossless* stream's ring grows instead of overwriting what is still needed; its reader stops
  reading while :attr:`Windows.backlogged` (back-pressure), so it grows by at most one frame;
- staleness: a live window the batcher can no longer answer within ``max_lag_ms`` is shed
  (:meth:`Windows.shed`; never on a lossless stream);
- results: at most ``max_unsent`` finished slots (plus those the ring may still hold) wait for a
  client that does not read; the oldest are dropped beyond that. A lossless stream drops none:
  its reader stops reading once ``max_unsent`` results wait (:attr:`Windows.backlogged`), so
  they grow by at most the windows one frame and the buffer can cut.

Windows are cut every :attr:`Windows.hop` samples: the configured hop, or a wider one while the
server is under pressure (:meth:`Windows.set_hop_ms`, see :mod:`voxlive.pipeline.degrade`); each
slot records the hop it was cut at, so the stream can tell its client in window order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np

from voxlive.audio.ring import RingBuffer
from voxlive.metrics import Metrics
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.slots import (
    MIN_TAIL_MS,
    SETTLED,
    UNSETTLED,
    Slot,
    SlotState,
    StreamListener,
    StreamStats,
)


class Windows:
    """Not thread-safe: used from the event loop only."""

    def __init__(
        self,
        config: StreamConfig,
        listener: StreamListener,
        stats: StreamStats,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.ring = RingBuffer(config.buffer)
        self.slots: deque[Slot] = deque()
        self.gating = 0  # slots waiting for the VAD
        self.pending = 0  # slots waiting for the batcher
        self.inflight = 0  # slots in a model call
        self.last_cut_at: float | None = None  # when the latest window was cut
        self.hop_ms = config.hop_ms  # the hop windows are cut at now (wider while paced)
        self.hop = config.hop  # the same in samples
        self._listener = listener
        self._stats = stats
        self._metrics = metrics
        self._next_index = 0  # index of the next slot
        self._next_start = 0  # stream position of the next full window
        self.lossless = False  # never drop or shed: grow the ring, and push back on the reader

    # ---- cutting ----------------------------------------------------------------------------
    def write(self, samples: np.ndarray, now: float) -> list[Slot]:
        """Append samples and cut every full window now complete; returns the new slots (in
        state GATING: the caller's gate settles them)."""
        if self.lossless:
            # Keep what is still needed: grow rather than overwrite it.
            self.ring.grow(self.ring.written + len(samples) - self.needed_from)
        self.ring.write(samples)
        return self.cut(now)

    def cut(self, now: float) -> list[Slot]:
        """Cut every full window now complete (after a write, or a narrower hop); returns the
        new slots (in state GATING)."""
        cfg = self.config
        new: list[Slot] = []
        lost = 0
        while self._next_start + cfg.window <= self.ring.written:
            if self._next_start < self.ring.oldest:  # overwritten within this very write
                lost += 1
                self._stats.windows += 1
            else:
                new.append(self._cut(self._next_start, cfg.window, now))
            self._next_start += self.hop
        self._count_dropped(lost)
        return new

    def set_hop_ms(self, hop_ms: int) -> None:
        """Cut the next windows ``hop_ms`` apart: the next one starts that long after the
        latest one cut (at once when the audio is there), the ones after it as long apart."""
        hop = self.config.sample_rate * hop_ms // 1000
        if hop < 1:
            raise ValueError(f"hop_ms: expected at least one sample, got {hop_ms} ms")
        if self._next_start:  # the latest full window's start + hop (0: none passed yet)
            self._next_start += hop - self.hop
        self.hop_ms, self.hop = hop_ms, hop

    @property
    def needed_from(self) -> int:
        """Stream position of the oldest sample a window may still need: the first slot not yet
        taken by the model, else what the next window (or the tail) will cut."""
        for slot in self.slots:
            if slot.state in (SlotState.GATING, SlotState.PENDING):
                return slot.start
        return max(self._next_start - self.hop, 0)

    def unanswered(self) -> tuple[int, int, int]:
        """Where the first window whose message has not been popped starts (the next window's
        start when none waits), how many windows wait unpopped, and how many of them are
        dropped: what a checkpoint leaves to whoever goes on."""
        position = self.slots[0].start if self.slots else self._next_start
        dropped = sum(1 for slot in self.slots if slot.state is SlotState.DROPPED)
        return position, len(self.slots), dropped

    @property
    def backlog(self) -> int:
        """Samples received and not yet handed to the model (or settled)."""
        return self.ring.written - min(self.needed_from, self.ring.written)

    @property
    def unsent(self) -> int:
        """Settled slots whose message waits for the client (or dropped ones not yet popped)."""
        return max(len(self.slots) - self.gating - self.pending - self.inflight, 0)

    @property
    def backlogged(self) -> bool:
        """A lossless stream holding more than ``buffer_ms`` of unclassified audio, or
        ``max_unsent`` results its client has not taken: its reader should stop reading until
        windows drain and the client reads (back-pressure all the way to the client)."""
        return self.lossless and (
            self.backlog > self.config.buffer or self.unsent >= self.config.max_unsent
        )

    def cut_tail(self, now: float) -> Slot | None:
        """At the end of the stream: a window for the audio no full window covered (ending at
        the last sample, as long as a window when there is enough audio), or ``None`` when that
        is under ``MIN_TAIL_MS``."""
        cfg, total = self.config, self.ring.written
        # The last full window cut started one hop before the next one would (_next_start)
        # and so ends at _next_start - hop + window; with no window cut, nothing is covered.
        covered = self._next_start - self.hop + cfg.window if self._next_index else 0
        if total - covered < cfg.sample_rate * MIN_TAIL_MS // 1000:
            return None
        length = min(cfg.window, total)
        return self._cut(total - length, length, now)

    def _cut(self, start: int, length: int, now: float) -> Slot:
        slot = Slot(self._next_index, start, length, now, state=SlotState.GATING,
                    hop_ms=self.hop_ms)  # fmt: skip
        self._next_index += 1
        self.last_cut_at = now
        self._stats.windows += 1
        self.slots.append(slot)
        self.gating += 1
        return slot

    # ---- state changes ----------------------------------------------------------------------
    def move(self, slot: Slot, state: SlotState) -> None:
        """The one place a slot changes state: counters and the listener follow."""
        self._adjust(slot.state, -1)
        slot.state = state
        self._adjust(state, +1)
        if state is SlotState.PENDING:
            self._listener.windows_pending()
        elif state in SETTLED:
            self._listener.results_ready()

    def _adjust(self, state: SlotState, by: int) -> None:
        if state is SlotState.GATING:
            self.gating += by
        elif state is SlotState.PENDING:
            self.pending += by
        elif state is SlotState.INFLIGHT:
            self.inflight += by

    def drop_overwritten(self) -> None:
        """Drop the slots still waiting (for the VAD or the batcher) whose audio is gone."""
        oldest = self.ring.oldest
        if not (self.pending or self.gating) or oldest == 0:
            return
        dropped = 0
        for slot in self.slots:
            if slot.start >= oldest:
                break
            if slot.state in (SlotState.PENDING, SlotState.GATING):
                self.move(slot, SlotState.DROPPED)
                dropped += 1
        self._count_dropped(dropped)

    def shed(self, cutoff: float) -> int:
        """Settle as dropped every pending slot that became ready before ``cutoff`` (monotonic
        seconds; see :func:`voxlive.pipeline.overload.shed_cutoff`); returns how many. Never on
        a lossless stream."""
        if self.lossless or not self.pending:
            return 0
        shed = 0
        for slot in self.slots:
            if slot.ready_at >= cutoff:
                break  # slots are cut in order: the rest are fresher
            if slot.state is SlotState.PENDING:
                self.move(slot, SlotState.DROPPED)
                shed += 1
        if shed:
            self._stats.shed += shed
            if self._metrics:
                self._metrics.windows.labels("shed").inc(shed)
            self._count_dropped(shed, metric=False)
        return shed

    def notify_ready(self) -> None:
        """Tell the listener that messages may be ready (after a batch of gate decisions)."""
        self._listener.results_ready()

    def _count_dropped(self, dropped: int, *, metric: bool = True) -> None:
        if dropped:
            self._stats.dropped_windows += dropped
            if self._metrics:
                if metric:
                    self._metrics.windows.labels("dropped").inc(dropped)
                self._metrics.dropped_audio.inc(dropped * self.config.hop_ms / 1000)
            self._listener.results_ready()

    def bound_unsent(self) -> None:
        """Drop the oldest settled slots beyond what a reading client could still want; never
        on a lossless stream (its reader stops instead: :attr:`backlogged`)."""
        if self.lossless:
            return
        cfg = self.config
        # max_unsent settled slots, plus every slot that may still be unsettled: one per hop
        # the ring holds, and one more for a window straddling the ring's start.
        limit = cfg.max_unsent + cfg.buffer // max(cfg.hop, 1) + 1
        while len(self.slots) > limit and self.slots[0].state in SETTLED:
            if self.slots.popleft().state is not SlotState.DROPPED:
                self._stats.unsent_dropped += 1
                if self._metrics:
                    self._metrics.results_unsent.inc()

    # ---- the batcher's side -----------------------------------------------------------------
    def oldest_pending(self) -> Slot | None:
        for slot in self.slots:
            if slot.state is SlotState.PENDING:
                return slot
        return None

    def take(self, length: int | None = None) -> Slot | None:
        """The oldest pending slot, now in flight (only if it has ``length`` samples, when
        given); ``None`` when there is none."""
        slot = self.oldest_pending()
        if slot is None or (length is not None and slot.length != length):
            return None
        self.move(slot, SlotState.INFLIGHT)
        return slot

    def settle(
        self,
        index: int,
        state: SlotState,
        probs: np.ndarray | None = None,
        error: str | None = None,
    ) -> None:
        """The model's answer (DONE with ``probs``) or failure (FAILED with ``error``) for an
        in-flight slot; ignored when the slot is gone (dropped, or the stream closed)."""
        slot = self._slot(index)
        if slot is None or slot.state is not SlotState.INFLIGHT:
            self.inflight -= 1  # forgotten by close() or bound_unsent(), but it was in flight
            return
        slot.probs, slot.error = probs, error
        self.move(slot, state)
        if self._metrics:
            self._metrics.windows.labels(
                "classified" if state is SlotState.DONE else "failed"
            ).inc()

    def _slot(self, index: int) -> Slot | None:
        if not self.slots:
            return None
        pos = index - self.slots[0].index  # slots are contiguous by index
        return self.slots[pos] if 0 <= pos < len(self.slots) else None

    # ---- results out ------------------------------------------------------------------------
    def pop_settled(self, hop_ms: int | None = None) -> Iterator[Slot]:
        """Remove and yield the settled slots at the head, in window order (dropped ones are
        removed but not yielded); with ``hop_ms``, only up to the first one cut at another hop
        (its client must hear of the new hop first)."""
        while self.slots and self.slots[0].state not in UNSETTLED:
            if hop_ms is not None and self.slots[0].hop_ms != hop_ms:
                return
            slot = self.slots.popleft()
            if slot.state is not SlotState.DROPPED:
                yield slot

    def clear(self) -> None:
        """Forget every slot (the stream closed); a slot in flight stays counted until the
        batcher settles it."""
        self.slots.clear()
        self.pending = 0
        self.gating = 0
