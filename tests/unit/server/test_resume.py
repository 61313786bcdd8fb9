"""Any-front resume's rules (server/resume.py) and the checkpoint they carry: a stream rebuilt
from an ack's token says exactly what the stream it continues would have said."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.stream import Stream
from voxlive.protocol.frames import DEFAULT_FORMAT
from voxlive.protocol.order import MessageOrder, Started
from voxlive.protocol.resume_token import verify
from voxlive.server.resume import NONCE_CACHE, Replay, ResumeRefused, Resumes
from voxlive.settings import Settings

RATE = 1000
CONFIG = StreamConfig(sample_rate=RATE, window_ms=200, hop_ms=100, buffer_ms=2000,
                      labels=("male", "female"), gate="none", smoothing=3)  # fmt: skip
GRID = (RATE, CONFIG.window, CONFIG.hop)
SECRET = "sixteen-chars-at-least"
NOW_MS = 1_800_000_000_000


def probs(window: int) -> np.ndarray:
    """A fixed answer per window of the stream (by its number since the stream began)."""
    p = 0.9 if window % 5 in (0, 1, 3) else 0.2
    return np.array([p, 1 - p], np.float32)


def answer(stream: Stream, first_window: int) -> list[dict[str, Any]]:
    """Answer every pending window; the messages and segments that follow (latency left out)."""
    while (window := stream.take()) is not None:
        stream.complete(window.index, probs(first_window + window.index))
    out: list[dict[str, Any]] = [dict(m) for m in stream.pop_messages()]
    out += [dict(m) for m in stream.pop_segments()]
    for m in out:
        m.pop("latency_ms", None)
    return out


def order() -> MessageOrder:
    """A connection's order at 16 kHz (the unit streams' model rate is 1 kHz: 16 frames each)."""
    return MessageOrder(DEFAULT_FORMAT, Started(DEFAULT_FORMAT))


def test_a_stream_rebuilt_from_an_ack_says_what_the_original_would_have() -> None:
    audio = np.random.default_rng(1).uniform(-0.5, 0.5, 3 * RATE).astype(np.float32)
    resumes = Resumes(Settings(cluster_secret=SECRET))
    original = Stream("s", CONFIG)
    original.push(audio[: RATE + 50])  # 9 windows cut
    first = answer(original, 0)
    ack = resumes.ack(original, order(), NOW_MS)
    assert ack["seq"] == max(m["seq"] for m in first if "seq" in m)
    original.push(audio[RATE + 50 :])
    original.finish()
    rest = answer(original, 0) + [dict(m) for m in original.pop_segments(final=True)]

    token = verify(ack["token"], SECRET.encode(), NOW_MS)
    cp = token.checkpoint
    assert cp.position == 900 and ack["samples"] == 900 * 16  # window 9 is the next one
    rebuilt = Stream("s", CONFIG)
    rebuilt.restore(cp)
    rebuilt.push(audio[cp.position :])
    rebuilt.finish()
    again = answer(rebuilt, cp.position // CONFIG.hop)
    again += [dict(m) for m in rebuilt.pop_segments(final=True)]
    results = [m for m in rest if m["type"] != "segment"]
    assert [m for m in again if m["type"] != "segment"] == results  # seq, time, smoothed labels
    # Segments alike but for back-dating: the windows before the checkpoint are not in the
    # token, so a flip just after it may be back-dated less (by at most smoothing + 1 hops).
    segs, segs_again = ([m for m in ms if m["type"] == "segment"] for ms in (rest, again))
    assert [s["label"] for s in segs_again] == [s["label"] for s in segs]
    slack_ms = (CONFIG.smoothing + 1) * CONFIG.hop / CONFIG.sample_rate * 1000
    for a, b in zip(segs_again, segs, strict=True):
        assert 0 <= a["end_ms"] - b["end_ms"] <= slack_ms
    assert rebuilt.end_message() == original.end_message()


def test_messages_the_client_already_has_are_counted_not_sent_again() -> None:
    audio = np.zeros(2 * RATE, np.float32)
    resumes = Resumes(Settings())
    original = Stream("s", CONFIG)
    original.push(audio[:RATE])
    answer(original, 0)
    cp = verify(resumes.ack(original, order(), NOW_MS)["token"], resumes._secret, NOW_MS)
    rebuilt = Stream("s", CONFIG)
    rebuilt.restore(cp.checkpoint, delivered_through=cp.checkpoint.next_seq + 1)
    rebuilt.push(audio[cp.checkpoint.position :])
    seqs = [m["seq"] for m in answer(rebuilt, 9) if "seq" in m]
    assert seqs[0] == cp.checkpoint.next_seq + 2
    assert rebuilt.stats.classified == cp.checkpoint.classified + 10  # counted all the same


def started(token: str, **keys: Any) -> Started:
    return Started(DEFAULT_FORMAT, resume_token=token, acks=True, **keys)


def test_check_refuses_mismatches_and_a_second_use_and_forgets_expired_nonces() -> None:
    resumes = Resumes(Settings(cluster_secret=SECRET, resume_grace_ms=1000))
    stream = Stream("s", StreamConfig(sample_rate=16_000, window_ms=1000, hop_ms=500,
                                      buffer_ms=4000, labels=("a",), gate="none"))  # fmt: skip
    grid = (16_000, 16_000, 8_000)
    text = resumes.ack(stream, order(), NOW_MS)["token"]
    with pytest.raises(ResumeRefused) as info:
        resumes.check(started(text, stream_id="other"), grid, NOW_MS)
    assert info.value.reason == "mismatch"
    with pytest.raises(ResumeRefused, match="grid") as info:
        resumes.check(started(text), (16_000, 8_000, 8_000), NOW_MS)
    token = resumes.check(started(text), grid, NOW_MS)
    resumes.take(token)
    with pytest.raises(ResumeRefused) as info:
        resumes.check(started(text), grid, NOW_MS + 10)
    assert info.value.reason == "replayed"
    with pytest.raises(ResumeRefused) as info:
        resumes.check(started(text), grid, NOW_MS + 1000)
    assert info.value.reason == "expired"
    resumes.check(started(resumes.ack(stream, order(), NOW_MS + 2000)["token"]), grid,
                  NOW_MS + 2000)  # fmt: skip
    assert not resumes._seen  # the expired nonce was forgotten


def test_the_nonce_cache_is_bounded_and_the_oldest_give_way() -> None:
    resumes = Resumes(Settings())
    stream = Stream("s", CONFIG)
    tokens = [
        verify(resumes.ack(stream, order(), NOW_MS)["token"], resumes._secret, NOW_MS)
        for _ in range(NONCE_CACHE + 3)
    ]
    for token in tokens:
        resumes.take(token)
    assert len(resumes._seen) == NONCE_CACHE
    assert tokens[0].nonce not in resumes._seen and tokens[-1].nonce in resumes._seen


def test_rebuilds_get_a_burst_of_max_streams_then_the_rate() -> None:
    resumes = Resumes(Settings(max_streams=4, max_connections=512))
    assert [resumes.may_rebuild(10.0) for _ in range(5)] == [True] * 4 + [False]
    assert resumes.may_rebuild(10.0 + 1.5 / 50) is True  # REBUILD_RATE_PER_S


def test_without_a_shared_secret_each_front_signs_its_own() -> None:
    one, two = Resumes(Settings()), Resumes(Settings())
    text = one.ack(Stream("s", CONFIG), order(), NOW_MS)["token"]
    with pytest.raises(ResumeRefused) as info:
        two.check(started(text), GRID, NOW_MS)
    assert info.value.reason == "forged"


def test_after_results_an_ack_and_when_moving_a_fresh_ack_then_moving() -> None:
    resumes, stream = Resumes(Settings(cluster_secret=SECRET)), Stream("s", CONFIG)
    assert resumes.after(stream, order(), False, moving=False) == []  # nothing new: no ack
    [ack] = resumes.after(stream, order(), True, moving=False)
    assert ack["type"] == "ack" and ack["seq"] == -1
    moved = resumes.after(stream, order(), False, moving=True)  # an ack even with no results
    assert [m["type"] for m in moved] == ["ack", "moving"]
    assert moved[1] == {"type": "moving", "reason": "shutdown", "retry_after_ms": 0}
    now_ms = int(time.time() * 1000)  # after() stamps the real time
    assert resumes.newest["s"] == verify(moved[0]["token"], SECRET.encode(), now_ms).nonce


def test_a_replay_skips_what_the_stream_has_and_reports_its_overrun_once() -> None:
    replay = Replay(skip=150, replay_from=1000, credit_s=0.5, input_rate=RATE)
    assert len(replay.trim(np.zeros(100, np.float32))) == 0
    assert len(replay.trim(np.zeros(100, np.float32))) == 50
    assert len(replay.trim(np.zeros(100, np.float32))) == 100
    assert replay.past_credit(lossless=True) is None
    past = replay.past_credit(lossless=False)
    assert past is not None and past[0] == "replay_too_long" and "500 ms" in past[1]
    assert replay.past_credit(lossless=False) is None
    assert Replay().past_credit(lossless=False) is None  # not a token resume
