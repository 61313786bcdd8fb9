"""Batches that mix window lengths (one stream's short final window next to other streams' full
ones) and label smoothing under every tie: properties checked over generated cases."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import FakeClassifier
from voxlive.pipeline.batcher import Batcher, Wiring
from voxlive.pipeline.stream import Stream, StreamConfig

# A tail shorter than a window comes from a stream shorter than a window (100 ms or more).
CFG = StreamConfig(sample_rate=1000, window_ms=300, hop_ms=200, buffer_ms=2000,
                   labels=("a", "b"), gate_rms=0.0, smoothing=1)  # fmt: skip


async def _serve(lengths: list[int], max_batch: int) -> tuple[FakeClassifier, list[list[dict]]]:  # type: ignore[type-arg]
    """One stream per length, each a constant level of its own (the fake model scores a window
    by its mean), all finished at once: full windows and short tails wait together."""
    model = FakeClassifier()
    batcher = Batcher(model, max_batch=max_batch, max_wait_ms=0)
    streams = [Stream(f"s{i}", CFG, listener=Wiring(batcher)) for i in range(len(lengths))]
    for s in streams:
        batcher.add(s)
    for i, (s, n) in enumerate(zip(streams, lengths, strict=True)):
        s.push(np.full(n, 0.01 * (i + 1), np.float32))
        s.finish()
    batcher.start()
    out: list[list[dict]] = [[] for _ in streams]  # type: ignore[type-arg]
    try:
        async with asyncio.timeout(3):  # the fake model answers in microseconds
            while not all(s.drained for s in streams):
                for s, got in zip(streams, out, strict=True):
                    got.extend(s.pop_messages())
                await asyncio.sleep(0.001)
    finally:
        await batcher.close()
    for s, got in zip(streams, out, strict=True):
        got.extend(s.pop_messages())
    return model, out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(100, 760), min_size=2, max_size=5), st.integers(1, 8))
def test_mixed_window_lengths_each_stream_gets_its_own_results(
    lengths: list[int], max_batch: int
) -> None:
    model, out = asyncio.run(_serve(lengths, max_batch))
    for i, (n, got) in enumerate(zip(lengths, out, strict=True)):
        full = (n - CFG.window) // CFG.hop + 1 if n >= CFG.window else 0
        covered = (full - 1) * CFG.hop + CFG.window if full else 0
        tail = [(n - min(n, CFG.window), n)] if n - covered >= 100 else []
        spans = [(k * CFG.hop, k * CFG.hop + CFG.window) for k in range(full)] + tail
        assert [(m["start_ms"], m["end_ms"]) for m in got] == spans
        assert [m["seq"] for m in got] == list(range(len(spans)))
        for m in got:  # its own level, never a neighbour's
            assert m["scores"]["b"] == pytest.approx(0.01 * (i + 1), abs=1e-5)
    assert all(b <= max_batch for b in model.batches)
    assert sum(model.batches) == sum(len(got) for got in out)


def test_a_short_tail_and_a_full_window_pending_together_are_not_mixed() -> None:
    model, [short, full] = asyncio.run(_serve([150, 300], max_batch=8))
    # stream 0: one short window [0, 150); stream 1: one full window [0, 300)
    assert [(m["start_ms"], m["end_ms"]) for m in short] == [(0, 150)]
    assert [(m["start_ms"], m["end_ms"]) for m in full] == [(0, 300)]
    assert short[0]["scores"]["b"] == pytest.approx(0.01)
    assert full[0]["scores"]["b"] == pytest.approx(0.02)
    assert model.batches == [1, 1]  # two lengths: two model calls
