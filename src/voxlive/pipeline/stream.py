"""One audio stream: ring buffer → overlapping windows → ordered results.

The stream owns its buffer and all per-stream state. It never waits: ``push`` cuts new windows
(gating quiet ones at once), the batcher ``take``s pending windows and later ``complete``s or
``fail``s them, and ``pop_messages`` returns the results that are ready, in window order.

Drop policies (both counted and reported):
- audio: the ring holds ``buffer_ms``; a pending window whose start has been overwritten is
  dropped (inference fell behind), so latency stays bounded by the buffer;
- results: at most ``max_unsent`` finished results wait for a client that does not read; the
  oldest are dropped beyond that.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from voxlive.audio.gate import AMBIENT, RmsGate
from voxlive.audio.ring import RingBuffer
from voxlive.audio.smoothing import MajoritySmoother
from voxlive.audio.vad import SAMPLE_RATES as VAD_RATES
from voxlive.audio.vad import VadState
from voxlive.metrics import Metrics
from voxlive.protocol import messages

# A final partial window shorter than this is not classified (too short for any model).
MIN_TAIL_MS = 100


class SlotState(Enum):
    GATING = "gating"  # waiting for the VAD to decide speech or ambient
    PENDING = "pending"
    INFLIGHT = "inflight"
    DONE = "done"
    FAILED = "failed"
    DROPPED = "dropped"


_UNSETTLED = (SlotState.GATING, SlotState.PENDING, SlotState.INFLIGHT)


@dataclass(slots=True)
class Slot:
    index: int
    start: int  # stream position in samples at the model rate
    length: int  # samples
    ready_at: float  # monotonic seconds when its last sample arrived
    state: SlotState = SlotState.PENDING
    probs: np.ndarray | None = None
    gated: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Per-stream options (immutable; the stream keeps its state elsewhere)."""

    sample_rate: int
    window_ms: int
    hop_ms: int
    buffer_ms: int
    labels: tuple[str, ...]
    gate: str = "rms"  # "rms", "vad" or "none"
    gate_rms: float = 0.01
    vad_threshold: float = 0.5
    vad_min_speech_ms: int = 100
    smoothing: int = 4
    max_unsent: int = 256

    @property
    def window(self) -> int:
        return self.sample_rate * self.window_ms // 1000

    @property
    def hop(self) -> int:
        return self.sample_rate * self.hop_ms // 1000

    @property
    def buffer(self) -> int:
        return self.sample_rate * self.buffer_ms // 1000


@dataclass(frozen=True, slots=True)
class Window:
    """A window handed to the batcher."""

    stream: Stream
    index: int
    audio: np.ndarray
    ready_at: float


class Stream:
    """See the module docstring. Not thread-safe: used from the event loop only."""

    def __init__(
        self,
        stream_id: str,
        config: StreamConfig,
        *,
        on_ready: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = stream_id
        self.config = config
        self.on_ready = on_ready
        self._metrics = metrics
        self._clock = clock
        self._ring = RingBuffer(config.buffer)
        self._gate = RmsGate(config.gate_rms if config.gate == "rms" else 0.0)
        # VAD gate: per-stream recurrent state, speech probability per chunk, and how far it got.
        self._vad: VadState | None = None
        if config.gate == "vad":
            self._vad_chunk, context = VAD_RATES[config.sample_rate]
            self._vad = VadState(context)
        self._vad_pos = 0  # samples the VAD has seen
        self._vad_busy = False
        self._speech: deque[float] = deque()  # per-chunk probabilities, from chunk _speech_base
        self._speech_base = 0
        self.gating = 0  # windows waiting for the VAD
        self.on_audio: Callable[[], None] | None = None  # the VAD runner's wake-up
        self.on_pending: Callable[[], None] | None = None  # the batcher's: windows for the model
        self._smoother = MajoritySmoother(config.smoothing)
        self._slots: deque[Slot] = deque()
        # Recently emitted messages, replayed to a client that resumes after a network blip.
        self._sent: deque[dict[str, Any]] = deque(maxlen=config.max_unsent)
        self._next_index = 0
        self._next_start = 0
        self._last_cut_at: float | None = None  # when the latest window was cut
        self._last_to_model = True  # whether the latest gate decision sent it to the model
        self._seq = 0
        self.pending = 0  # windows waiting for the batcher
        self.inflight = 0  # windows in a model call
        self.finished = False  # no more audio will come
        self.closed = False
        self.stats = {"windows": 0, "results": 0, "gated": 0, "failed": 0, "dropped_windows": 0,
                      "unsent_dropped": 0}  # fmt: skip

    # ---- audio in ---------------------------------------------------------------------------
    @property
    def samples_received(self) -> int:
        return self._ring.written

    @property
    def dropped_ms(self) -> float:
        return self.stats["dropped_windows"] * self.config.hop_ms

    def push(self, samples: np.ndarray) -> None:
        """Append mono float32 samples at the model rate and cut every window now complete."""
        if self.finished:
            raise RuntimeError("push after finish")
        if len(samples) == 0:
            return
        now = self._clock()
        self._ring.write(samples)
        cfg = self.config
        lost = 0
        while self._next_start + cfg.window <= self._ring.written:
            if self._next_start < self._ring.oldest:  # overwritten within this very push
                lost += 1
                self.stats["windows"] += 1
            else:
                self._add_slot(self._next_start, cfg.window, now)
            self._next_start += cfg.hop
        self._count_dropped(lost)
        self._drop_overwritten()
        self._bound_unsent()
        if self._vad is not None and self.on_audio is not None:
            self.on_audio()

    def finish(self) -> None:
        """No more audio: classify the tail that no full window covered, then drain."""
        if self.finished:
            return
        self.finished = True
        cfg, total = self.config, self._ring.written
        covered = self._next_start - cfg.hop + cfg.window if self._next_index else 0
        if total - covered >= cfg.sample_rate * MIN_TAIL_MS // 1000:
            length = min(cfg.window, total)
            self._add_slot(total - length, length, self._clock())
        if self._vad is not None and not self._vad_busy:
            self._decide_gating()
        if self.on_audio is not None:
            self.on_audio()
        self._notify()

    def _add_slot(self, start: int, length: int, now: float) -> None:
        slot = Slot(self._next_index, start, length, now)
        self._next_index += 1
        self._last_cut_at = now
        self.stats["windows"] += 1
        if self._vad is not None:
            slot.state = SlotState.GATING
            self._slots.append(slot)
            self.gating += 1
        elif self._gate.is_ambient(self._ring.view(start, length)):
            self._last_to_model = False
            slot.state, slot.gated = SlotState.DONE, True
            self._count("gated")
            self._slots.append(slot)
            self._notify()
        else:
            self._last_to_model = True
            self._slots.append(slot)
            self._add_pending()

    def _drop_overwritten(self) -> None:
        oldest = self._ring.oldest
        if not (self.pending or self.gating) or oldest == 0:
            return
        dropped = 0
        for slot in self._slots:
            if slot.start >= oldest:
                break
            if slot.state is SlotState.PENDING:
                self.pending -= 1
            elif slot.state is SlotState.GATING:
                self.gating -= 1
            else:
                continue
            slot.state = SlotState.DROPPED
            dropped += 1
        self._count_dropped(dropped)

    def _count_dropped(self, dropped: int) -> None:
        if dropped:
            self.stats["dropped_windows"] += dropped
            if self._metrics:
                self._metrics.windows.labels("dropped").inc(dropped)
                self._metrics.dropped_audio.inc(dropped * self.config.hop_ms / 1000)
            self._notify()

    def _bound_unsent(self) -> None:
        limit = self.config.max_unsent + self.config.buffer // max(self.config.hop, 1) + 1
        while len(self._slots) > limit and self._slots[0].state in (
            SlotState.DONE, SlotState.FAILED, SlotState.DROPPED,
        ):  # fmt: skip
            if self._slots.popleft().state is not SlotState.DROPPED:
                self.stats["unsent_dropped"] += 1
                if self._metrics:
                    self._metrics.results_unsent.inc()

    # ---- the VAD runner's side ---------------------------------------------------------------
    def vad_job(self) -> tuple[VadState, np.ndarray] | None:
        """The audio the VAD has not seen yet, whole chunks only (a copy), with this stream's
        VAD state; ``None`` when there is nothing to do. Call :meth:`vad_done` with the result.
        """
        if self._vad is None or self._vad_busy or self.closed:
            return None
        chunk = self._vad_chunk
        if self._vad_pos < self._ring.oldest:  # the VAD fell behind the ring: skip, start afresh
            skip_to = -(-self._ring.oldest // chunk) * chunk
            self._append_speech([0.0] * ((skip_to - self._vad_pos) // chunk))
            self._vad_pos = skip_to
            self._vad.reset()
        count = (self._ring.written - self._vad_pos) // chunk
        if count <= 0:
            if self.finished:
                self._decide_gating()
            return None
        self._vad_busy = True
        return self._vad, self._ring.view(self._vad_pos, count * chunk).copy()

    def vad_done(self, probs: np.ndarray | None) -> None:
        """Speech probabilities for the last job's chunks (``None``: the VAD failed, so its
        windows count as speech and go to the classifier)."""
        self._vad_busy = False
        if self.closed:
            return
        if probs is None:
            assert self._vad is not None
            self._vad.reset()
            n = (self._ring.written - self._vad_pos) // self._vad_chunk
            probs = np.ones(n, np.float32)
        self._append_speech(probs.tolist())
        self._vad_pos += len(probs) * self._vad_chunk
        self._decide_gating()

    def _append_speech(self, probs: list[float]) -> None:
        self._speech.extend(probs)
        # Keep only the chunks a window may still need (those inside the ring).
        keep_from = self._ring.oldest // self._vad_chunk
        while self._speech and self._speech_base < keep_from:
            self._speech.popleft()
            self._speech_base += 1

    def _decide_gating(self) -> None:
        """Settle every window the VAD has now fully seen (at the end: whatever it has seen)."""
        if not self.gating:
            return
        cfg, chunk = self.config, self._vad_chunk
        final = self.finished and self._ring.written - self._vad_pos < chunk
        need_chunks = -(-cfg.vad_min_speech_ms * cfg.sample_rate // 1000 // chunk)
        for slot in self._slots:
            if slot.state is not SlotState.GATING:
                continue
            end = slot.start + slot.length
            # Decide once the VAD has seen every whole chunk of the window: waiting for the
            # chunk that straddles its end would add up to a chunk (32 ms) of latency.
            if end // chunk * chunk > self._vad_pos and not final:
                break
            first = max(slot.start // chunk - self._speech_base, 0)
            last = min(-(-end // chunk), self._vad_pos // chunk) - self._speech_base
            speech = sum(
                1 for i in range(first, max(last, first)) if self._speech[i] >= cfg.vad_threshold
            )
            self.gating -= 1
            self._last_to_model = speech >= max(need_chunks, 1)
            if self._last_to_model:
                slot.state = SlotState.PENDING
                self._add_pending()
            else:
                slot.state, slot.gated = SlotState.DONE, True
                self._count("gated")
        self._notify()

    # ---- the batcher's side -----------------------------------------------------------------
    def oldest_pending(self) -> Slot | None:
        for slot in self._slots:
            if slot.state is SlotState.PENDING:
                return slot
        return None

    def next_window_at(self) -> float:
        """When this stream's next window for the model is due if it streams in real time;
        infinity when it has finished, has not cut a window yet, or its latest window was
        ambient (the gate will most likely keep the next one from the model too)."""
        if self.finished or self._last_cut_at is None or not self._last_to_model:
            return float("inf")  # nothing to expect (after an ambient window: likely another)
        return self._last_cut_at + self.config.hop_ms / 1000

    def oldest_ready_at(self) -> float:
        """When the oldest pending window became ready (infinity when none is pending)."""
        slot = self.oldest_pending()
        return slot.ready_at if slot is not None else float("inf")

    def take(self, length: int | None = None) -> Window | None:
        """The oldest pending window (only if it has ``length`` samples, when given)."""
        slot = self.oldest_pending()
        if slot is None or (length is not None and slot.length != length):
            return None
        slot.state = SlotState.INFLIGHT
        self.pending -= 1
        self.inflight += 1
        return Window(self, slot.index, self._ring.view(slot.start, slot.length), slot.ready_at)

    def _slot(self, index: int) -> Slot | None:
        if not self._slots:
            return None
        pos = index - self._slots[0].index
        return self._slots[pos] if 0 <= pos < len(self._slots) else None

    def complete(self, index: int, probs: np.ndarray) -> None:
        self._settle(index, SlotState.DONE, probs=probs)

    def fail(self, index: int, message: str) -> None:
        self._settle(index, SlotState.FAILED, error=message)

    def _settle(
        self, index: int, state: SlotState, probs: Any = None, error: str | None = None
    ) -> None:
        self.inflight -= 1
        if self.closed:
            return
        slot = self._slot(index)
        if slot is None or slot.state is not SlotState.INFLIGHT:
            return
        slot.state, slot.probs, slot.error = state, probs, error
        self._count("classified" if state is SlotState.DONE else "failed")
        self._notify()

    # ---- results out ------------------------------------------------------------------------
    @property
    def drained(self) -> bool:
        """Finished, and every window has been answered and popped."""
        return (
            self.finished and not self._slots and not self.pending and not self.inflight
            and not self.gating
        )  # fmt: skip

    def pop_messages(self) -> list[dict[str, Any]]:
        """Messages for the finished windows at the head, in window order."""
        out: list[dict[str, Any]] = []
        now = self._clock()
        while self._slots and self._slots[0].state not in _UNSETTLED:
            slot = self._slots.popleft()
            if slot.state is SlotState.DROPPED:
                continue
            out.append(self._message(slot, now))
            self._seq += 1
        self._sent.extend(out)
        return out

    def replay(self, after_seq: int) -> list[dict[str, Any]]:
        """Messages already emitted with ``seq > after_seq`` (at most ``max_unsent`` kept)."""
        return [m for m in self._sent if m["seq"] > after_seq]

    def _message(self, slot: Slot, now: float) -> dict[str, Any]:
        rate = self.config.sample_rate
        start_ms = slot.start * 1000 / rate
        end_ms = (slot.start + slot.length) * 1000 / rate
        latency_ms = (now - slot.ready_at) * 1000
        if slot.state is SlotState.FAILED:
            self.stats["failed"] += 1
            return dict(
                messages.error(
                    "inference_failed",
                    slot.error or "inference failed",
                    seq=self._seq,
                    start_ms=start_ms,
                    end_ms=end_ms,
                )
            )
        scores: dict[str, float] = {}
        if slot.gated or slot.probs is None:
            label, confidence = AMBIENT, 1.0
            self.stats["gated"] += 1
        else:
            probs, labels = slot.probs, self.config.labels
            scores = {name: float(p) for name, p in zip(labels, probs, strict=True)}
            if float(np.sum(probs)) < 0.5:  # the model found no speech (see Classifier)
                label, confidence = AMBIENT, 1.0
            else:
                best = int(np.argmax(probs))
                label, confidence = labels[best], float(probs[best])
        self.stats["results"] += 1
        if self._metrics:
            self._metrics.result_latency.observe(max(latency_ms, 0) / 1000)
        return messages.result(
            seq=self._seq, start_ms=start_ms, end_ms=end_ms, label=label, confidence=confidence,
            scores=scores, smoothed=self._smoother.update(label), gated=slot.gated,
            latency_ms=latency_ms, dropped_ms=self.dropped_ms,
        )  # fmt: skip

    def end_message(self) -> dict[str, Any]:
        s = self.stats
        return dict(
            messages.end(
                stream_id=self.id,
                duration_ms=self._ring.written * 1000 / self.config.sample_rate,
                windows=s["windows"],
                results=s["results"] - s["gated"],
                gated=s["gated"],
                failed=s["failed"],
                dropped_windows=s["dropped_windows"],
                dropped_ms=self.dropped_ms,
            )
        )

    def close(self) -> None:
        """Forget everything; late results from the batcher are ignored. Idempotent."""
        self.closed = True
        self._slots.clear()
        self._sent.clear()
        self._speech.clear()
        self.pending = 0
        self.gating = 0

    def _count(self, outcome: str) -> None:
        if self._metrics:
            self._metrics.windows.labels(outcome).inc()

    def _add_pending(self) -> None:
        self.pending += 1
        if self.on_pending is not None:
            self.on_pending()

    def _notify(self) -> None:
        if self.on_ready is not None:
            self.on_ready()
