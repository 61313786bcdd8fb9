"""What the parts of a stream share (pipeline/slots.py): every slot state is settled or not,
never both; a new slot waits for the batcher with nothing decided; the counters start at zero;
the listener that ignores everything takes every call."""

from __future__ import annotations

import dataclasses

from voxlive.pipeline.slots import (
    MIN_TAIL_MS,
    SETTLED,
    UNSETTLED,
    NoListener,
    Slot,
    SlotState,
    StreamListener,
    StreamStats,
)


def test_every_slot_state_is_settled_or_unsettled_and_never_both() -> None:
    assert set(UNSETTLED) | set(SETTLED) == set(SlotState)
    assert not set(UNSETTLED) & set(SETTLED)
    assert SlotState.DONE in SETTLED and SlotState.INFLIGHT in UNSETTLED


def test_a_new_slot_waits_for_the_batcher_with_nothing_decided() -> None:
    slot = Slot(index=3, start=300, length=100, ready_at=1.5)
    assert (slot.state, slot.probs, slot.gated, slot.error) == (
        SlotState.PENDING,
        None,
        False,
        None,
    )


def test_the_counters_start_at_zero_and_the_shortest_tail_is_100_ms() -> None:
    stats = StreamStats()
    assert dataclasses.asdict(stats) == dict.fromkeys(
        ("windows", "classified", "gated", "failed", "dropped_windows", "shed", "unsent_dropped"), 0
    )
    assert MIN_TAIL_MS == 100


def test_the_listener_that_ignores_everything_takes_every_call() -> None:
    listener: StreamListener = NoListener()
    assert listener.windows_pending() is None
    assert listener.audio_arrived() is None
    assert listener.results_ready() is None
