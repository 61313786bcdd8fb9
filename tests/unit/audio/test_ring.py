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
