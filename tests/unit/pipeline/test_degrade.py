"""The graded degradation policy (pipeline/degrade.py) on a fake clock: the steps, rising under
sustained pressure (load or shedding), stepping back only after a hold, never past the widest
step, and no flapping on a noisy signal."""

from __future__ import annotations

import numpy as np
import pytest

from voxlive.pipeline.degrade import (
    FALL_AT,
    HOLD_S,
    RISE_AT,
    RISE_S,
    SHED_MEMORY_S,
    Degrade,
    Pressure,
    hop_steps,
)

TICK = 0.1  # the batcher updates the policy every round, about this often under load


def run(policy: Degrade, demand: float | None, *, start: float, until: float,
        shed: int = 0) -> list[int]:  # fmt: skip
    """Update every TICK from ``start`` to ``until`` (inclusive) at a steady ``demand``; the
    levels seen."""
    levels = []
    for t in np.arange(start, until + TICK / 2, TICK):
        levels.append(policy.update(Pressure(demand, shed), float(t)))
    return levels


def test_the_steps_double_from_the_hop_to_the_maximum() -> None:
    assert hop_steps(500, 2000) == (500, 1000, 2000)
    assert hop_steps(500, 1500) == (500, 1000, 1500)
    assert hop_steps(500, 600) == (500, 600)
    assert hop_steps(500, 500) == hop_steps(500, 0) == hop_steps(500, 300) == (500,)  # off
    with pytest.raises(ValueError, match="hop_ms: expected > 0 ms, got 0"):
        hop_steps(0, 2000)


def test_bad_steps_and_thresholds_are_refused_with_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"steps: expected widening hops, got \[500, 500\]"):
        Degrade([500, 500])
    with pytest.raises(ValueError, match=r"fall_at: expected 0 < fall_at < rise_at \(0.5\)"):
        Degrade([500, 1000], rise_at=0.5, fall_at=0.7)


def test_it_widens_one_step_per_rise_time_under_sustained_load_and_never_past_the_last() -> None:
    policy = Degrade(hop_steps(500, 2000))
    levels = run(policy, 1.5, start=0.0, until=RISE_S - TICK)
    assert set(levels) == {0}  # not yet sustained
    assert policy.update(Pressure(1.5), RISE_S) == 1  # 1000 ms: the load is 0.75 now
    assert policy.hop_ms == 1000
    # At 1000 ms the load (0.75) is below RISE_AT: it stays there.
    assert set(run(policy, 1.5, start=RISE_S + TICK, until=30.0)) == {1}
    # Twice the load: 1.5 at 1000 ms, so one more step after another RISE_S, then no further.
    levels = run(policy, 3.0, start=30.1, until=60.0)
    assert levels[round(RISE_S / TICK) - 1] == 1 and levels[round(RISE_S / TICK)] == 2
    assert max(levels) == policy.top == 2 and policy.hop_ms == 2000


def test_a_load_spike_shorter_than_the_rise_time_changes_nothing() -> None:
    policy = Degrade(hop_steps(500, 2000))
    for i in range(100):  # a spike of 0.9 s every 2 s: never RISE_S without a break
        t = i * 0.1
        demand = 5.0 if (t % 2.0) < 0.9 else 0.1
        assert policy.update(Pressure(demand), t) == 0


def test_shedding_widens_even_when_the_load_looks_fine() -> None:
    # The capacity gauge can be optimistic (big batches the latency budget does not allow):
    # windows shed at least once a second for RISE_S is pressure too.
    policy = Degrade(hop_steps(500, 2000))
    levels = [policy.update(Pressure(0.3, shed=1 if i % 5 == 0 else 0), i * TICK)
              for i in range(round(RISE_S / TICK) + 1)]  # fmt: skip
    assert levels[-1] == 1
    # One shed, then none: it stays, and is not "hot" past SHED_MEMORY_S.
    policy = Degrade(hop_steps(500, 2000))
    policy.update(Pressure(0.3, shed=1), 0.0)
    assert policy.update(Pressure(0.3), SHED_MEMORY_S - TICK) == 0
    assert policy.update(Pressure(0.3), SHED_MEMORY_S + TICK) == 0
    assert policy.update(Pressure(0.3), 5.0) == 0


def test_windows_shed_right_after_a_step_up_do_not_push_it_further() -> None:
    # Windows cut before the step, at the narrower hop, may still be shed for a while.
    policy = Degrade(hop_steps(500, 2000), settle_s=3.0)
    run(policy, 1.5, start=0.0, until=RISE_S)
    assert policy.level == 1
    assert set(run(policy, 0.9, start=1.1, until=3.9, shed=1)) == {1}  # within settle_s
    assert set(run(policy, 0.9, start=4.0, until=4.0 + RISE_S + TICK, shed=1)) == {1, 2}  # real


def test_it_narrows_only_after_low_pressure_held_for_the_hold_time() -> None:
    policy = Degrade(hop_steps(500, 2000))
    run(policy, 3.0, start=0.0, until=2 * RISE_S + TICK)
    assert policy.level == 2
    # 0.5 at the normal hop: 0.25 at 1000 ms (< FALL_AT) but 0.5 at 500 ms is fine too.
    levels = run(policy, 0.5, start=3.0, until=3.0 + HOLD_S - TICK)
    assert set(levels) == {2}
    assert policy.update(Pressure(0.5), 3.0 + HOLD_S) == 1
    levels = run(policy, 0.5, start=3.0 + HOLD_S + TICK, until=3.0 + 2 * HOLD_S - TICK)
    assert set(levels) == {1}
    assert policy.update(Pressure(0.5), 3.0 + 2 * HOLD_S) == 0
    assert policy.hop_ms == 500


def test_a_load_between_the_thresholds_holds_the_step() -> None:
    # At 1000 ms a demand of 0.85 is a load of 0.43 (not hot), but 0.85 at 500 ms is above
    # FALL_AT: stepping back would bring pressure close again, so it does not.
    policy = Degrade(hop_steps(500, 2000))
    run(policy, 1.2, start=0.0, until=RISE_S)
    assert policy.level == 1
    assert FALL_AT < 0.85 < RISE_AT
    assert set(run(policy, 0.85, start=1.1, until=120.0)) == {1}


def test_a_noisy_signal_around_the_thresholds_does_not_flap() -> None:
    rng = np.random.default_rng(7)
    policy = Degrade(hop_steps(500, 2000))
    run(policy, 1.2, start=0.0, until=RISE_S)
    assert policy.level == 1
    changes, last = 0, policy.level
    # Demand 0.75 ± 0.25 every tick for 10 minutes: it crosses FALL_AT (for the narrower hop)
    # and, at its peaks, comes near RISE_AT, many times a second.
    for i in range(6000):
        demand = 0.75 + rng.uniform(-0.25, 0.25)
        level = policy.update(Pressure(demand), RISE_S + TICK + i * TICK)
        changes += level != last
        last = level
    assert changes == 0


def test_the_level_stays_put_without_a_capacity_and_resets_at_once() -> None:
    policy = Degrade(hop_steps(500, 2000))
    run(policy, 5.0, start=0.0, until=RISE_S)
    assert policy.level == 1
    assert policy.update(Pressure(None), 1.5) == 1  # no capacity known: no pressure, no hold yet
    policy.reset()
    assert policy.level == 0 and policy.hop_ms == 500


def test_off_never_moves() -> None:
    policy = Degrade(hop_steps(500, 0))
    assert set(run(policy, 10.0, start=0.0, until=10.0, shed=3)) == {0}
    assert policy.top == 0
