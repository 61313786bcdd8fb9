"""Segments: runs of one smoothed label, closed when the smoothed label changes and at the end.

Pure bookkeeping over the result messages the outbox builds; no audio, no I/O.

**Boundaries are back-dated.** The smoothed label is a majority vote of the last ``smoothing``
raw labels, so it flips a few windows after the speaker changed (with the defaults it needs 3
of 4 windows: the window that flips it starts a second after the first window with the new
label). A segment's boundary is therefore not the start of the window that
flipped the vote but where the new label began: between the *first window of the vote that
flipped it* whose raw label is the new label and the window before it, at the midpoint of their
centres. A window's label describes its centre, so when the model labels each window by most of
its audio the real change lies within half a hop of that point (the boundary's resolution is
``hop_ms / 2``; 250 ms with the defaults). The windows from that first one on move to the new
segment, with their confidence. Live streams and files are treated alike (back-dating removes
the vote's delay, so a file needs no centred vote of its own), and ``voxlive classify``,
``POST /classify`` and a live client agree.

The stream's first segment starts at the ``start_ms`` of the stream's first window; each segment
ends where the next one starts (segments tile the stream without overlapping), or at the last
window's ``end_ms`` when the stream ends. Its ``confidence`` is the mean probability of its label
over its windows: a window whose raw label is the segment's label counts its ``confidence``, any
other window its score for that label (0 when it has none, e.g. a gated window inside a speech
segment).
"""

from __future__ import annotations

from collections import deque
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
    first_seq: int  # the seq of its first window: a back-dated flip never takes that one


def window_confidence(result: ResultMessage, label: str) -> float:
    """The probability ``result`` gives ``label``."""
    if result["label"] == label:
        return result["confidence"]
    return float(result["scores"].get(label, 0.0))


def _centre_ms(result: ResultMessage) -> float:
    return (result["start_ms"] + result["end_ms"]) / 2


class Segmenter:
    """Feed it every result in seq order; it returns each segment as it closes.

    ``smoothing``: the number of labels the smoothed label votes over (``StreamConfig.smoothing``);
    a flip is back-dated at most that many windows.
    """

    def __init__(self, smoothing: int = 1) -> None:
        if smoothing < 1:
            raise ValueError(f"smoothing: expected at least 1, got {smoothing}")
        self._smoothing = smoothing
        self._open: _Open | None = None
        # The windows of the latest vote, and the one before them (for the midpoint).
        self._recent: deque[ResultMessage] = deque(maxlen=smoothing + 1)

    def feed(self, result: ResultMessage) -> SegmentMessage | None:
        """Add one window; returns the segment this window's smoothed label closed, if any."""
        self._recent.append(result)
        label = result["smoothed"]
        current = self._open
        if current is not None and current.label == label:
            current.end_ms = result["end_ms"]
            current.confidence_sum += window_confidence(result, label)
            current.windows += 1
            return None
        if current is None:
            conf = window_confidence(result, label)
            self._open = _Open(label, result["start_ms"], result["end_ms"], conf, 1, result["seq"])
            return None
        # The vote flipped: the new label began at the first window of the vote that has it
        # (never the old segment's own first window), not at this one.
        recent = list(self._recent)
        first = len(recent) - 1
        for i in range(max(1, len(recent) - self._smoothing), len(recent) - 1):
            if recent[i]["seq"] > current.first_seq and recent[i]["label"] == label:
                first = i
                break
        moved = recent[first:]
        boundary = (_centre_ms(recent[first - 1]) + _centre_ms(recent[first])) / 2
        boundary = max(current.start_ms, boundary)
        for window in moved[:-1]:  # counted in the old segment so far
            current.confidence_sum -= window_confidence(window, current.label)
            current.windows -= 1
        closed = self._message(current, end_ms=boundary)
        self._open = _Open(
            label, boundary, result["end_ms"],
            sum(window_confidence(w, label) for w in moved), len(moved), moved[0]["seq"],
        )  # fmt: skip
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
        """Continue with ``segment`` open (from :meth:`state`). The windows before it are not
        kept, so a flip right after is back-dated only over windows classified since (its first
        window is none of them: ``first_seq`` -1)."""
        self._recent.clear()
        self._open = None if segment is None else _Open(
            segment.label, segment.start_ms, segment.end_ms, segment.confidence_sum,
            segment.windows, -1,
        )  # fmt: skip

    @staticmethod
    def _message(seg: _Open, *, end_ms: float) -> SegmentMessage:
        return messages.segment(
            label=seg.label, start_ms=seg.start_ms, end_ms=end_ms,
            confidence=seg.confidence_sum / seg.windows, windows=seg.windows,
        )  # fmt: skip
