"""How fast a stream may send: live streams at real time after their catch-up, lossless ones up
to max_speed; and the reader's time-outs."""

from __future__ import annotations

import pytest

from voxlive.server.pacing import BURST_S, read_at, receive_timeout, timed_out
from voxlive.settings import Settings


def _at(received_s: float, lossless: bool, max_speed: float = 20, ahead: float = 5) -> float:
    return read_at(started_at=100.0, received_s=received_s, lossless=lossless,
                   max_speed=max_speed, live_ahead_s=ahead)  # fmt: skip


def test_a_live_stream_may_run_its_catch_up_ahead_then_real_time() -> None:
    assert _at(5.0, lossless=False, max_speed=0) == 100.0  # 5 s ahead at once: after a blip
    assert _at(5.0, lossless=False) == pytest.approx(100.2)  # max_speed holds every stream
    assert _at(8.0, lossless=False) == pytest.approx(103.0)  # then one second per second
    assert _at(8.0, lossless=False, ahead=0) == pytest.approx(100 + (8 - BURST_S) / 20)


def test_a_lossless_stream_is_held_to_max_speed_only() -> None:
    assert _at(21.0, lossless=True) == pytest.approx(101.0)  # (21 - 1) s at 20x
    assert _at(1000.0, lossless=True, max_speed=0) == 100.0  # no limit


def test_the_reader_waits_for_the_nearer_of_idle_and_the_stream_limit() -> None:
    s = Settings(idle_timeout_ms=60_000, max_stream_ms=10_000)
    assert receive_timeout(100.0, 95.0, s) == pytest.approx(5.0)
    assert receive_timeout(100.0, 0.0, Settings(idle_timeout_ms=0)) is None
    assert timed_out(105.0, 95.0, s).code == "max_duration"
    assert timed_out(100.0, 95.0, s).message == "no message for 60 s; closing the stream"
