"""The per-connection allowance on a fake clock: exact at its limits."""

from __future__ import annotations

import pytest

from voxlive.server.budget import UNIT_BYTES, Budget, FrameBudget, TokenBucket


def test_a_burst_is_free_then_the_rate_holds() -> None:
    b = Budget(rate_per_s=10, burst=5)
    assert [b.charge(0.0, 0) for _ in range(5)] == [0.0] * 5  # exactly the burst
    assert b.charge(0.0, 0) == pytest.approx(0.1)  # one past it: wait one unit's time
    b2 = Budget(rate_per_s=10, burst=5)
    for _ in range(5):
        b2.charge(0.0, 0)
    assert b2.charge(0.1, 0) == 0.0  # a tenth of a second later one unit has come back


def test_big_messages_cost_more() -> None:
    b = Budget(rate_per_s=10, burst=3)
    assert b.charge(0.0, 2 * UNIT_BYTES) == 0.0  # 1 + 2 units: the whole burst
    assert b.charge(0.0, 0) == pytest.approx(0.1)


def test_refill_never_exceeds_the_burst() -> None:
    b = Budget(rate_per_s=10, burst=2)
    b.charge(0.0, 0)
    assert [b.charge(100.0, 0) for _ in range(2)] == [0.0, 0.0]
    assert b.charge(100.0, 0) > 0


def test_bad_messages_close_past_the_limit_in_the_window() -> None:
    b = Budget(bad_limit=3, bad_window_s=10.0, bad_before_auth=1)
    assert [b.bad(t, authenticated=True) for t in (0.0, 1.0, 2.0)] == [False] * 3
    assert b.bad(3.0, authenticated=True)  # the fourth within 10 s
    b2 = Budget(bad_limit=3, bad_window_s=10.0)
    for t in (0.0, 1.0, 2.0):
        b2.bad(t, authenticated=True)
    assert not b2.bad(10.0, authenticated=True)  # the first has left the window


def test_fewer_bad_messages_are_allowed_before_authentication() -> None:
    b = Budget(bad_limit=20, bad_before_auth=2)
    assert not b.bad(0.0, authenticated=False)
    assert not b.bad(0.0, authenticated=False)
    assert b.bad(0.0, authenticated=False)


def test_a_fraction_of_a_unit_left_is_still_within_the_allowance() -> None:
    b = Budget(rate_per_s=10, burst=1.5)
    assert b.charge(0.0, 0) == 0.0  # half a unit left: no wait (and never a negative one)
    assert b.charge(0.0, 0) == pytest.approx(0.05)  # half a unit short: 0.05 s at 10/s


def test_a_lower_rate_for_now_refills_slower_and_never_raises_the_own_rate() -> None:
    b = Budget(rate_per_s=10, burst=1)
    b.charge(0.0, 0)
    assert b.charge(0.0, 0, rate_per_s=5) == pytest.approx(0.2)  # one unit at 5/s
    c = Budget(rate_per_s=10, burst=1)
    c.charge(0.0, 0)
    assert c.charge(0.0, 0, rate_per_s=1000) == pytest.approx(0.1)  # capped at its own 10/s


def test_a_token_bucket_starts_full_and_ignores_a_clock_going_back() -> None:
    t = TokenBucket(rate_per_s=2, burst=2)
    assert [t.take(5.0, 1), t.take(5.0, 1)] == [0.0, 0.0]
    assert t.take(4.0, 1) == pytest.approx(0.5)  # no refill from the past


def test_frames_past_the_rate_are_held_for_the_deficit() -> None:
    f = FrameBudget(rate_per_s=100)
    assert all(f.charge(0.0) == 0.0 for _ in range(100))  # a burst of one second's frames
    assert f.charge(0.0) == pytest.approx(0.01)


def test_fragments_are_counted_per_message_and_tiny_ones_refused() -> None:
    f = FrameBudget(max_fragments=3, min_fragment_bytes=10)
    assert f.data_frame(10, first=True, fin=False) is None
    assert f.data_frame(10, first=False, fin=False) is None
    assert f.data_frame(0, first=False, fin=True) is None  # the last may be empty
    assert f.data_frame(5, first=True, fin=True) is None  # an unfragmented message: any size
    assert f.data_frame(10, first=True, fin=False) is None  # a new message counts from one
    assert f.data_frame(10, first=False, fin=False) is None
    assert f.data_frame(10, first=False, fin=False) is None  # exactly three
    assert f.data_frame(10, first=False, fin=False) == (
        1009,
        "expected at most 3 fragments per message, got more",
    )
    assert FrameBudget(min_fragment_bytes=10).data_frame(9, first=True, fin=False) == (
        1008,
        "expected fragments of at least 10 bytes, got 9",
    )
