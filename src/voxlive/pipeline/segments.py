"""Segments: runs of one smoothed label, closed when the smoothed label changes and at the end.

Pure bookkeeping over the result messages the outbox builds; no audio, no I/O. A segment starts at
the ``start_ms`` of its first window and ends where the next segment starts (so segments tile the
stream without overlapping), or at the last window's ``end_ms`` when the stream ends. Its
``confidence`` is the mean probability of its label over its windows: a window whose raw label is
the segment's label counts its ``confidence``, any other window its score for that label (0 when
it has none, e.g. a gated window inside a speech segment).
"""

from __future__ import annotations

from dataclasses import dataclass

from voxlive.protocol import messages
from voxlive.protocol.messages import ResultMessage, SegmentMessage
from voxlive.protocol.resume_token import OpenSegment


@dataclass
class _Open:
    label: str
    start_ms: float
    end_ms: float
    confidence_sum: float
    windows: int


def window_confidence(result: ResultMessage, label: str) -> float:
    """The probability ``result`` gives ``label``."""
    if result["label"] == label:
        return result["confidence"]
    return float(result["scores"].get(label, 0.0))


class Segmenter:
    """Feed it every result in seq order; it returns each segment as it closes."""

    def __init__(self) -> None:
        self._open: _Open | None = None

    def feed(self, result: ResultMessage) -> SegmentMessage | None:
        """Add one window; returns the segment this window's smoothed label closed, if any."""
        label = result["smoothed"]
        conf = window_confidence(result, label)
        current = self._open
        if current is not None and current.label == label:
            current.end_ms = result["end_ms"]
            current.confidence_sum += conf
            current.windows += 1
            return None
        closed = None
        if current is not None:
            closed = self._message(current, end_ms=max(current.start_ms, result["start_ms"]))
        self._open = _Open(label, result["start_ms"], result["end_ms"], conf, 1)
        return closed

    def close(self) -> SegmentMessage | None:
        """The open segment, ended at its last window's end; ``None`` when none is open.
        Idempotent: a second call returns ``None``."""
        current, self._open = self._open, None
        return None if current is None else self._message(current, end_ms=current.end_ms)

    def state(self) -> OpenSegment | None:
        """The open segment, to go on elsewhere (:meth:`restore`)."""
        o = self._open
        return None if o is None else OpenSegment(o.label, o.start_ms, o.end_ms,
                                                  o.confidence_sum, o.windows)  # fmt: skip

    def restore(self, segment: OpenSegment | None) -> None:
        """Continue with ``segment`` open (from :meth:`state`)."""
        self._open = None if segment is None else _Open(
            segment.label, segment.start_ms, segment.end_ms, segment.confidence_sum,
            segment.windows,
        )  # fmt: skip

    @staticmethod
    def _message(seg: _Open, *, end_ms: float) -> SegmentMessage:
        return messages.segment(
            label=seg.label, start_ms=seg.start_ms, end_ms=end_ms,
            confidence=seg.confidence_sum / seg.windows, windows=seg.windows,
        )  # fmt: skip
