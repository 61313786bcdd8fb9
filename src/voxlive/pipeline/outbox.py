"""A stream's outbox: settled slots become numbered, typed messages.

It owns everything about what a client is told for a stream: the ``seq`` numbers, the label
smoothing, the segments of the smoothed label (:class:`~voxlive.pipeline.segments.Segmenter`), the
counters reported in ``end``, and the most recent window messages kept for a client that resumes
after a network blip (at most ``max_unsent``, oldest forgotten first; segments are not replayed).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from voxlive.audio.gate import AMBIENT
from voxlive.audio.smoothing import MajoritySmoother
from voxlive.inference.base import is_no_speech
from voxlive.metrics import Metrics
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.segments import Segmenter
from voxlive.pipeline.slots import Slot, SlotState, StreamStats
from voxlive.protocol import messages
from voxlive.protocol.messages import EndMessage, SegmentMessage, WindowMessage
from voxlive.protocol.resume_token import Checkpoint


class Outbox:
    """Not thread-safe: used from the event loop only."""

    def __init__(
        self, config: StreamConfig, stats: StreamStats, metrics: Metrics | None = None
    ) -> None:
        self.config = config
        self.stats = stats
        self._metrics = metrics
        self._smoother = MajoritySmoother(config.smoothing)
        self._segments = Segmenter(config.smoothing)
        self._closed: list[SegmentMessage] = []  # closed, not yet popped: at most one per result
        self._seq = 0  # seq of the next message
        self.origin = 0  # stream time of the first sample, at the model rate (resumed elsewhere)
        self._delivered = -1  # seq through which the client has the messages (resumed elsewhere)
        self._sent: deque[WindowMessage] = deque(maxlen=config.max_unsent)

    @property
    def dropped_ms(self) -> float:
        """Audio lost to dropped windows so far: one hop of new audio per window."""
        return self.stats.dropped_windows * self.config.hop_ms

    def messages(self, slots: Iterable[Slot], now: float) -> list[WindowMessage]:
        """One message per settled slot, in the given (window) order; kept for :meth:`replay`.
        Segments the results close wait for :meth:`pop_segments`. ``now`` (monotonic seconds)
        gives each result its latency."""
        out: list[WindowMessage] = []
        for slot in slots:
            message = self._message(slot, now)
            self._seq += 1
            delivered = message["seq"] <= self._delivered  # by the stream's previous front
            if message["type"] == "result":
                closed = self._segments.feed(message)
                if closed is not None and not delivered:
                    self._closed.append(closed)
            if not delivered:
                out.append(message)
        self._sent.extend(out)
        return out

    def pop_segments(self, final: bool = False) -> list[SegmentMessage]:
        """The segments closed since the last call; ``final``: the stream ended, so the open
        segment is closed too (only once)."""
        out, self._closed = self._closed, []
        if final and (last := self._segments.close()) is not None:
            out.append(last)
        return out

    def replay(self, after_seq: int) -> list[WindowMessage]:
        """Messages already emitted with ``seq > after_seq`` (at most ``max_unsent`` kept)."""
        return [m for m in self._sent if m["seq"] > after_seq]

    def _message(self, slot: Slot, now: float) -> WindowMessage:
        rate = self.config.sample_rate
        start_ms = (self.origin + slot.start) * 1000 / rate
        end_ms = (self.origin + slot.start + slot.length) * 1000 / rate
        if slot.state is SlotState.FAILED:
            self.stats.failed += 1
            return messages.error(
                "inference_failed", slot.error or "inference failed", seq=self._seq,
                start_ms=start_ms, end_ms=end_ms,
            )  # fmt: skip
        latency_ms = (now - slot.ready_at) * 1000
        scores: dict[str, float] = {}
        if slot.gated or slot.probs is None:
            label, confidence = AMBIENT, 1.0
            self.stats.gated += 1
        else:
            probs, labels = slot.probs, self.config.labels
            scores = {name: float(p) for name, p in zip(labels, probs, strict=True)}
            if is_no_speech(probs):  # the model found no speech: ambient, but not gated
                label, confidence = AMBIENT, 1.0
            else:
                best = int(np.argmax(probs))
                label, confidence = labels[best], float(probs[best])
            self.stats.classified += 1
        if self._metrics:
            self._metrics.result_latency.observe(max(latency_ms, 0) / 1000)
        return messages.result(
            seq=self._seq, start_ms=start_ms, end_ms=end_ms, label=label, confidence=confidence,
            scores=scores, smoothed=self._smoother.update(label), gated=slot.gated,
            latency_ms=latency_ms, dropped_ms=self.dropped_ms,
        )  # fmt: skip

    def end(self, stream_id: str, samples: int, dropped_errors: int = 0) -> EndMessage:
        """The ``end`` message for a stream of ``samples`` samples at the model rate;
        ``dropped_errors``: error messages its connection could not queue."""
        s, rate = self.stats, self.config.sample_rate
        return messages.end(
            stream_id=stream_id, duration_ms=(self.origin + samples) * 1000 / rate,
            windows=s.windows, results=s.classified, gated=s.gated, failed=s.failed,
            dropped_windows=s.dropped_windows, dropped_ms=self.dropped_ms,
            dropped_results=s.unsent_dropped, dropped_errors=dropped_errors,
        )  # fmt: skip

    def checkpoint(self, position: int, cut: int, dropped: int, input_offset: int) -> Checkpoint:
        """Where the stream stands with its next window at ``position`` (samples since this
        outbox's origin): ``cut`` windows and ``dropped`` of them still wait unpopped, and are
        left out of the counters; ``input_offset``: input frames before ``position``."""
        s = self.stats
        recent, smoothed = self._smoother.state()
        return Checkpoint(
            position=self.origin + position, input_offset=input_offset, next_seq=self._seq,
            windows=s.windows - cut, classified=s.classified, gated=s.gated, failed=s.failed,
            dropped_windows=s.dropped_windows - dropped, unsent_dropped=s.unsent_dropped,
            recent=recent, smoothed=smoothed, segment=self._segments.state(),
        )  # fmt: skip

    def restore(self, cp: Checkpoint, delivered: int = -1) -> None:
        """Go on from ``cp`` (a fresh outbox whose first sample is at ``cp.position``); the
        client already has the messages through seq ``delivered``: they are not handed out."""
        self.origin, self._seq, s = cp.position, cp.next_seq, self.stats
        self._delivered = delivered
        s.windows, s.classified, s.gated, s.failed = cp.windows, cp.classified, cp.gated, cp.failed
        s.dropped_windows, s.unsent_dropped = cp.dropped_windows, cp.unsent_dropped
        self._smoother.restore(cp.recent, cp.smoothed)
        self._segments.restore(cp.segment)

    def clear(self) -> None:
        self._sent.clear()
        self._closed.clear()
