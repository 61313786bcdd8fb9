"""Segments of the smoothed label: closed on a change and at the end, tiling the stream."""

import numpy as np

from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.segments import Segmenter
from voxlive.pipeline.stream import Stream
from voxlive.protocol import messages
from voxlive.protocol.messages import ResultMessage


def result(seq: int, raw: str, smoothed: str, conf: float = 0.8) -> ResultMessage:
    scores = (
        {} if raw == "ambient" else {raw: conf, ("male" if raw == "female" else "female"): 1 - conf}
    )
    return messages.result(
        seq=seq, start_ms=seq * 500.0, end_ms=seq * 500.0 + 1000, label=raw,
        confidence=1.0 if raw == "ambient" else conf, scores=scores, smoothed=smoothed,
        gated=raw == "ambient", latency_ms=1.0, dropped_ms=0.0,
    )  # fmt: skip


def test_a_change_closes_the_segment_where_the_next_one_starts() -> None:
    seg = Segmenter()
    fed = [
        seg.feed(result(0, "female", "female", 0.9)),
        seg.feed(result(1, "female", "female", 0.7)),
        seg.feed(result(2, "male", "female", 0.6)),  # raw male: 0.4 for female
        seg.feed(result(3, "male", "male", 0.8)),
    ]
    assert fed[:3] == [None, None, None]
    assert fed[3] == {
        "type": "segment", "label": "female", "start_ms": 0.0, "end_ms": 1500.0,
        "confidence": round((0.9 + 0.7 + 0.4) / 3, 6), "windows": 3,
    }  # fmt: skip
    last = seg.close()
    assert last is not None
    assert (last["label"], last["start_ms"], last["end_ms"], last["windows"]) == (
        "male",
        1500.0,
        2500.0,
        1,
    )
    assert seg.close() is None  # idempotent


def test_gated_windows_inside_speech_count_zero_and_ambient_runs_are_segments() -> None:
    seg = Segmenter()
    assert seg.feed(result(0, "ambient", "ambient")) is None
    closed = seg.feed(result(1, "male", "male", 0.9))
    assert closed is not None and closed["label"] == "ambient" and closed["confidence"] == 1.0
    seg.feed(result(2, "ambient", "male"))
    last = seg.close()
    assert last is not None and last["confidence"] == round(0.9 / 2, 6)


def test_no_windows_no_segment() -> None:
    assert Segmenter().close() is None


def test_a_stream_pops_closed_segments_and_the_last_one_once_it_drained() -> None:
    s = Stream("s", StreamConfig(sample_rate=1000, window_ms=100, hop_ms=50, buffer_ms=400,
                                 labels=("a", "b"), gate_rms=0.01, smoothing=1))  # fmt: skip
    s.push(np.full(200, 0.5, np.float32))  # windows 0-100, 50-150, 100-200
    for probs in ([0.9, 0.1], [0.8, 0.2], [0.1, 0.9]):
        w = s.take()
        assert w is not None
        s.complete(w.index, np.array(probs))
    assert [m["smoothed"] for m in s.pop_messages()] == ["a", "a", "b"]
    [first] = s.pop_segments()
    assert (first["label"], first["start_ms"], first["end_ms"], first["windows"]) == (
        "a",
        0,
        100,
        2,
    )
    assert first["confidence"] == 0.85
    assert s.pop_segments() == []  # the open "b" waits for the end
    s.finish()
    while (w := s.take()) is not None:  # the tail window, if any
        s.complete(w.index, np.array([0.1, 0.9]))
    s.pop_messages()
    [last] = s.pop_segments()
    assert last["label"] == "b" and last["start_ms"] == 100
    assert s.pop_segments(final=True) == []
