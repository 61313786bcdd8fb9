"""What the client counts: each window once across a resume, and a summary that adds up."""

from __future__ import annotations

from typing import Any

from voxlive.client.tally import Tally
from voxlive.protocol import messages as m


def ready(stream_id: str = "s1", resumed: bool = False) -> dict[str, Any]:
    return dict(m.ready(stream_id=stream_id, model="pitch", backend="pitch", labels=["a"],
                        fallback=None, window_ms=1000, hop_ms=500, sample_rate=16_000,
                        model_sample_rate=16_000, smoothing=4, resumed=resumed))  # fmt: skip


def result(seq: int, dropped_ms: float = 0.0) -> dict[str, Any]:
    return dict(m.result(seq=seq, start_ms=500.0 * seq, end_ms=500.0 * seq + 1000, label="a",
                         confidence=1.0, scores={"a": 1.0}, smoothed="a", gated=False,
                         latency_ms=1.0, dropped_ms=dropped_ms))  # fmt: skip


def end(windows: int, dropped: int = 0) -> dict[str, Any]:
    return {"type": "end", "stream_id": "s1", "duration_ms": 500.0 * windows + 500,
            "windows": windows, "results": windows - dropped, "gated": 0, "failed": 0,
            "dropped_windows": dropped, "dropped_ms": 500.0 * dropped, "dropped_results": 0,
            "dropped_errors": 0}  # fmt: skip


def test_a_resume_passes_each_window_on_once_and_the_summary_adds_up() -> None:
    t = Tally()
    new = [t.read(x) for x in (ready(), result(0), result(1))]
    assert t.read({"type": "ack", "samples": 8000, "seq": 0, "token": "v1.x.y"}) is False
    assert (t.token, t.acked_samples, t.last_seq) == ("v1.x.y", 8000, 1)
    seg = dict(m.segment(label="a", start_ms=0, end_ms=1000, confidence=1.0, windows=2))
    new += [t.read(seg)]
    # front B: the same stream, result 1 comes again from the replay, the segment too
    new += [t.read(x) for x in (ready(resumed=True), result(1), seg, result(2), end(3))]
    assert new == [True, True, True, True, True, False, False, True, True]
    s = t.summary(ok=True)
    assert (s.windows, s.answered, s.shed, s.lost, s.failed) == (3, 3, 0, 0, 0)


def test_shed_windows_come_from_end_or_else_from_dropped_ms() -> None:
    t = Tally()
    for x in (ready(), result(0), result(1, dropped_ms=1000.0), end(4, dropped=2)):
        t.read(x)
    s = t.summary(ok=True)
    assert (s.windows, s.answered, s.shed, s.lost) == (4, 2, 2, 0)
    t = Tally()  # no end: the results say what was shed
    for x in (ready(), result(0), result(1, dropped_ms=1000.0)):
        t.read(x)
    s = t.summary(ok=False, failure="gave up")
    assert (s.windows, s.answered, s.shed, s.lost, s.ok) == (4, 2, 2, 0, False)


def test_a_missing_seq_is_lost() -> None:
    t = Tally()
    for x in (ready(), result(0), result(2), end(3)):
        t.read(x)
    assert t.summary(ok=True).lost == 1


def test_a_refused_resume_counts_the_audio_it_could_not_replay_as_lost() -> None:
    t = Tally()
    for x in (ready(), result(0), {"type": "ack", "samples": 8000, "seq": 0, "token": "t"}):
        t.read(x)
    t.resume_failed(lost_frames=12_000, rate=16_000)  # 750 ms: two hops
    assert t.token is None
    for x in (ready("s2"), result(0), end(1)):  # a new stream: its own seqs
        assert t.read(x)
    s = t.summary(ok=True)
    assert (s.windows, s.answered, s.lost) == (1 + 1 + 2, 2, 2)


def test_starting_over_from_the_first_frame_keeps_the_windows_received() -> None:
    """Cut before the first ack: no token, the client sends it all again as a new stream."""
    t = Tally()
    for x in (ready(), result(0)):
        t.read(x)
    t.fresh_restart = True
    assert [t.read(x) for x in (ready("s2"), result(0), result(1), end(2))] == [
        True, False, True, True]  # fmt: skip
    s = t.summary(ok=True)
    assert (s.windows, s.answered, s.lost) == (2, 2, 0)
