"""The replay buffer and the reconnect schedule, without sockets."""

from __future__ import annotations

import numpy as np
import pytest

from voxlive.client.replay import Backoff, ReplayBuffer


def frames(start: int, n: int) -> np.ndarray:
    """Frames whose values are their own input frame numbers: a replay shows where it starts."""
    return np.arange(start, start + n, dtype=np.float32)


def test_an_ack_forgets_what_it_covers_and_the_replay_starts_there() -> None:
    buf = ReplayBuffer(100)
    buf.push(frames(0, 30))
    buf.push(frames(30, 30))
    buf.acked(45)  # mid-chunk
    assert (buf.kept_from, len(buf), buf.sent_to, buf.room()) == (45, 15, 60, 85)
    start, replay = buf.take()
    assert start == 45 and replay.tolist() == list(range(45, 60))
    assert (buf.kept_from, len(buf)) == (45, 0)  # sent again, it is pushed again
    buf.push(replay)
    assert (buf.kept_from, buf.sent_to) == (45, 60)


def test_old_and_future_acks_are_harmless() -> None:
    buf = ReplayBuffer(100)
    buf.push(frames(0, 10))
    buf.acked(5)
    buf.acked(2)  # older than what was forgotten
    assert buf.kept_from == 5
    buf.acked(1_000)  # beyond what was sent: forget everything, no further
    assert (buf.kept_from, len(buf)) == (10, 0)


def test_overflow_drops_the_oldest_and_counts_them() -> None:
    buf = ReplayBuffer(50)
    for at in range(0, 80, 20):
        buf.push(frames(at, 20))
    assert (buf.kept_from, len(buf), buf.overflowed) == (30, 50, 30)
    assert buf.take()[1].tolist() == list(range(30, 80))


def test_a_buffer_needs_room() -> None:
    with pytest.raises(ValueError, match="max_frames: expected > 0 frames, got 0"):
        ReplayBuffer(0)


def test_backoff_goes_at_once_then_doubles_to_its_cap() -> None:
    b = Backoff(first_ms=100, max_ms=2_000, jitter=0.2)
    middle = [b.delay_ms(n, rand=lambda: 0.5) for n in range(7)]
    assert middle == [0, 100, 200, 400, 800, 1600, 2000]
    assert b.delay_ms(3, rand=lambda: 0.0) == pytest.approx(320)  # 400 - 20 %
    assert b.delay_ms(3, rand=lambda: 1.0) == pytest.approx(480)  # 400 + 20 %


def test_a_refusals_retry_after_is_a_floor() -> None:
    b = Backoff(jitter=0.0)
    assert b.delay_ms(0, retry_after_ms=1_000) == 1_000  # not at once: the server said when
    assert b.delay_ms(6, retry_after_ms=250) == 2_000  # the backoff is longer
