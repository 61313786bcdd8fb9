"""The ring buffer (audio/ring.py): positions kept across wraps, the newest kept when a write
is larger than the ring, views of what is still held (exactly full, one past, at the edges) as
float32 copies, and growing without losing a sample."""

from __future__ import annotations

import numpy as np
import pytest

from voxlive.audio.ring import RingBuffer


def test_wraps_around_and_keeps_positions() -> None:
    ring = RingBuffer(10)
    data = np.arange(25, dtype=np.float32)
    for start in range(0, 25, 3):
        ring.write(data[start : start + 3])
    assert ring.written == 25
    assert ring.oldest == 15
    np.testing.assert_array_equal(ring.view(15, 10), data[15:25])
    np.testing.assert_array_equal(ring.view(18, 4), data[18:22])  # crosses the wrap point


def test_write_larger_than_capacity_keeps_newest() -> None:
    ring = RingBuffer(8)
    ring.write(np.arange(3, dtype=np.float32))
    ring.write(np.arange(100, 120, dtype=np.float32))
    assert ring.oldest == 15
    np.testing.assert_array_equal(ring.view(15, 8), np.arange(112, 120))
    ring.write(np.array([7, 8], dtype=np.float32))
    np.testing.assert_array_equal(ring.view(17, 8), [114, 115, 116, 117, 118, 119, 7, 8])


def test_view_of_overwritten_or_future_samples_raises() -> None:
    ring = RingBuffer(4)
    ring.write(np.ones(6, dtype=np.float32))
    with pytest.raises(IndexError, match="expected a range within"):
        ring.view(1, 2)
    with pytest.raises(IndexError):
        ring.view(4, 3)


def test_view_is_a_copy() -> None:
    ring = RingBuffer(4)
    ring.write(np.zeros(4, dtype=np.float32))
    v = ring.view(0, 4)
    ring.write(np.ones(4, dtype=np.float32))
    assert v.sum() == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="expected a positive"):
        RingBuffer(0)


# ---- the ring: exactly full, one past, views at the edges -----------------------------------
def test_a_ring_written_exactly_full_keeps_everything() -> None:
    ring = RingBuffer(4)
    ring.write(np.arange(4, dtype=np.float32))
    assert ring.oldest == 0
    assert ring.view(0, 4).tolist() == [0, 1, 2, 3]
    ring.write(np.array([4], np.float32))
    assert ring.oldest == 1
    assert ring.view(1, 4).tolist() == [1, 2, 3, 4]
    with pytest.raises(IndexError, match=r"^expected a range within \[1, 5\), got \[0, 4\)$"):
        ring.view(0, 4)
    with pytest.raises(IndexError, match=r"got \[2, 6\)$"):
        ring.view(2, 4)
    assert ring.view(5, 0).tolist() == []
    with pytest.raises(IndexError):
        ring.view(2, -1)


def test_a_write_of_exactly_the_capacity_after_a_wrap_keeps_positions() -> None:
    ring = RingBuffer(4)
    ring.write(np.array([0, 1, 2], np.float32))
    ring.write(np.array([3, 4, 5, 6], np.float32))  # n == capacity
    assert ring.view(3, 4).tolist() == [3, 4, 5, 6]
    ring.write(np.array([7], np.float32))
    assert ring.view(4, 4).tolist() == [4, 5, 6, 7]


def test_a_ring_of_one_sample_works_and_holds_float32() -> None:
    ring = RingBuffer(1)
    ring.write(np.array([0.5, 0.25], np.float32))
    assert ring.view(1, 1).tolist() == [0.25] and ring.view(1, 1).dtype == np.float32
    with pytest.raises(
        ValueError, match=r"^capacity: expected a positive number of samples, got 0$"
    ):
        RingBuffer(0)


def test_a_grown_ring_keeps_order_when_its_new_buffer_wraps_and_stays_float32() -> None:
    ring = RingBuffer(8)
    data = np.arange(30, dtype=np.float32)
    ring.write(data)  # holds 22..29
    ring.grow(12)  # 22 % 12 = 10: the kept samples wrap around the new buffer's end
    held = ring.view(22, 8)
    assert held.tolist() == data[22:30].tolist() and held.dtype == np.float32
    ring.write(data[:4] + 100)
    assert ring.view(22, 12).tolist() == [*data[22:30].tolist(), 100.0, 101.0, 102.0, 103.0]
    ring.grow(12)  # not larger: nothing changes
    assert ring.capacity == 12 and ring.view(22, 12).tolist()[0] == 22.0


# ---- growing (a lossless stream's ring) ----------------------------------------------------------
def test_the_ring_grows_keeping_every_sample() -> None:
    ring = RingBuffer(8)
    data = np.arange(30, dtype=np.float32)
    ring.write(data[:13])  # wrapped: holds 5..12
    ring.grow(20)
    np.testing.assert_array_equal(ring.view(5, 8), data[5:13])
    ring.write(data[13:30])  # 17 more: holds 10..29
    np.testing.assert_array_equal(ring.view(10, 20), data[10:30])
