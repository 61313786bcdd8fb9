"""The RMS gate (audio/gate.py): RMS of empty, single and tiny signals, and a window at exactly
the threshold let through."""

from __future__ import annotations

import numpy as np
import pytest

from voxlive.audio.gate import RmsGate, rms


def test_rms_of_empty_single_and_tiny_signals() -> None:
    assert rms(np.zeros(0, np.float32)) == 0.0
    assert rms(np.array([-0.5], np.float32)) == 0.5
    tiny = rms(np.full(8, 1e-23, np.float32))  # its square underflows in float32
    assert tiny == pytest.approx(1e-23, rel=1e-6)


def test_the_rms_gate_lets_a_window_at_exactly_the_threshold_through() -> None:
    gate = RmsGate(0.25)
    assert not gate.is_ambient(np.full(10, 0.25, np.float32))
    assert gate.is_ambient(np.full(10, 0.2499, np.float32))
    assert not RmsGate(0.0).is_ambient(np.zeros(10, np.float32))
