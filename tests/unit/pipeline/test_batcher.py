import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from tests.fakes import Clock, FakeClassifier
from voxlive.pipeline.batcher import Batcher, CostModel, Wiring
from voxlive.pipeline.stream import Stream, StreamConfig

CFG = StreamConfig(sample_rate=1000, window_ms=100, hop_ms=100, buffer_ms=1000,
                   labels=("a", "b"), gate_rms=0.0, smoothing=1)  # fmt: skip


@contextlib.asynccontextmanager
async def batching(
    model: FakeClassifier,
    *names: str,
    start: bool = True,
    config: StreamConfig = CFG,
    **options: Any,
) -> AsyncIterator[tuple[Batcher, list[Stream]]]:
    """A started batcher with one registered stream per name; closed afterwards."""
    batcher = Batcher(model, **options)
    streams = [Stream(name, config, listener=Wiring(batcher)) for name in names]
    for s in streams:
        batcher.add(s)
    if start:
        batcher.start()
    try:
        yield batcher, streams
    finally:
        await batcher.close()


def feed(stream: Stream, *levels: float) -> None:
    """Push one 100-sample window per level (a constant signal, so its mean is the level). The
    stream wakes its batcher itself."""
    stream.push(np.concatenate([np.full(100, v, np.float32) for v in levels]))


async def drain(stream: Stream, n: int, within_s: float = 5.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + within_s
    while len(out) < n:
        out.extend(stream.pop_messages())
        assert time.monotonic() < deadline, f"got {len(out)} of {n} results"
        await asyncio.sleep(0.005)
    return out


async def test_windows_from_many_streams_share_a_batch() -> None:
    model = FakeClassifier(latency_s=0.05)
    async with batching(model, "s0", "s1", "s2", "s3", max_batch=8, max_wait_ms=50) as (_, streams):
        for i, s in enumerate(streams):
            s.push(np.full(100, 0.1 * (i + 1), np.float32))
        results = [await drain(s, 1) for s in streams]
    assert model.batches == [4]
    assert model.threads == {"voxlive-model_0"}  # never the event loop's thread
    for i, [r] in enumerate(results):  # each stream gets its own window's scores
        assert r["scores"]["b"] == pytest.approx(0.1 * (i + 1), abs=1e-5)


@contextlib.asynccontextmanager
async def planning(
    *names: str, **options: Any
) -> AsyncIterator[tuple[Batcher, list[Stream], Clock]]:
    """A batcher that is never started, its streams on one fake clock: for its wait plan."""
    clock = Clock()
    batcher = Batcher(FakeClassifier(), **{"max_batch": 8, "max_wait_ms": 2000, **options})
    streams = [Stream(name, CFG, clock=clock) for name in names]
    for stream in streams:
        batcher.add(stream)
    try:
        yield batcher, streams, clock
    finally:
        await batcher.close()


async def test_nothing_pending_means_sleep_until_notified() -> None:
    async with planning("s") as (b, _, _):
        assert b.wait_s(0.0) is None


async def test_no_waiting_for_streams_that_are_not_due() -> None:
    # "silent" has never sent audio: nothing says a window will come, so waiting is waste.
    async with planning("s", "silent") as (b, (s, _), _):
        feed(s, 0.5)
        assert b.wait_s(0.0) == 0.0


async def test_no_waiting_when_every_stream_already_has_a_window() -> None:
    async with planning("a", "b") as (b, (s1, s2), _):
        feed(s1, 0.5)
        feed(s2, 0.5)
        assert b.wait_s(0.0) == 0.0  # max_wait is 2 s, but nobody else could join


def _live_then_lone(s: Stream, live: Stream, clock: Clock, at: float = 0.05) -> None:
    """ "live" cuts a window at t=0 that the model answers (its next is due at t=0.1); then "s"
    has a lone window ready at t=``at``."""
    feed(live, 0.5)
    window = live.take()
    assert window is not None
    live.complete(window.index, np.array([0.5, 0.5]))
    clock.t = at
    feed(s, 0.5)


async def test_a_window_waits_for_company_that_is_due_but_at_most_max_wait() -> None:
    async with planning("s", "live", max_wait_ms=60) as (b, (s, live), clock):
        _live_then_lone(s, live, clock)
        assert b.wait_s(0.05) == pytest.approx(0.06)  # until t=0.11: "live" is due at t=0.1
    async with planning("s", "live", max_wait_ms=40) as (b, (s, live), clock):
        _live_then_lone(s, live, clock)
        assert b.wait_s(0.05) == 0.0  # by t=0.09 nobody is due: do not wait at all


async def test_no_waiting_for_a_stream_that_stalled() -> None:
    """A stream whose last window was cut ten seconds ago is not streaming in real time any
    more: a lone window goes to the model at once instead of waiting for it."""
    async with planning("s", "live", max_wait_ms=30) as (b, (s, live), clock):
        _live_then_lone(s, live, clock, at=10.0)
        assert b.wait_s(10.0) == 0.0


@pytest.mark.parametrize(("call_s", "wait_s"), [(0.1, 0.2), (0.3, 0.0)])
async def test_the_latency_budget_cuts_the_wait(call_s: float, wait_s: float) -> None:
    """max_wait is 2 s, but every window must have its result within 300 ms. Once a call of two
    windows has been seen to take ``call_s``, a lone window waits for company only as long as
    such a call still fits: 200 ms for a 100 ms model, not at all for a 300 ms one."""
    async with planning("s", "live", latency_budget_ms=300) as (b, (s, live), clock):
        b.cost.observe(2, 100, call_s)
        _live_then_lone(s, live, clock)
        assert b.wait_s(0.05) == pytest.approx(wait_s)


async def test_a_full_batch_does_not_wait() -> None:
    model = FakeClassifier()
    async with batching(model, "s", "quiet", max_batch=2, max_wait_ms=5000) as (_, (s, _)):
        feed(s, 0.5, 0.5)
        await drain(s, 2, within_s=2.0)
    assert model.batches == [2]


async def test_an_exception_fails_only_its_batch() -> None:
    model = FakeClassifier(fail_when=0.9)
    async with batching(model, "s", max_batch=1, max_wait_ms=0) as (_, (s,)):
        feed(s, 0.2, 0.9, 0.3)
        out = await drain(s, 3)
    assert [m["type"] for m in out] == ["result", "error", "result"]
    assert out[1]["code"] == "inference_failed"


async def test_a_hung_model_times_out_and_the_batcher_recovers() -> None:
    model = FakeClassifier(latency_s=0.5)
    async with batching(model, "s", max_batch=1, max_wait_ms=0, timeout_s=0.1) as (_, (s,)):
        feed(s, 0.5)
        [first] = await drain(s, 1)
        assert first["type"] == "error" and "timed out" in first["message"]
        model.latency_s = 0.0
        feed(s, 0.5)
        [second] = await drain(s, 1)
    assert second["type"] == "result"


async def test_round_robin_keeps_a_flooding_stream_from_taking_over() -> None:
    model = FakeClassifier(latency_s=0.01)
    async with batching(model, "flood", "calm", start=False, max_batch=2, max_wait_ms=0) as (
        b,
        (flood, calm),
    ):
        flood.push(np.full(800, 0.5, np.float32))  # 8 windows at once
        calm.push(np.full(100, 0.7, np.float32))  # 1 window
        b.start()
        await drain(calm, 1)
    # the calm stream's window rode in the first batch, not after the flood
    assert sorted(model.means[0]) == [0.5, 0.7]


async def test_idle_batcher_sleeps() -> None:
    async with batching(FakeClassifier(), max_batch=8, max_wait_ms=10):
        cpu0 = time.process_time()
        await asyncio.sleep(0.3)
        cpu = time.process_time() - cpu0
    assert cpu < 0.05


def test_the_cost_model_learns_call_times() -> None:
    cost = CostModel(alpha=0.5)
    assert cost.estimate(4, 100) == 0.0  # nothing known: no reason to hurry
    cost.observe(1, 100, 0.10)
    assert cost.estimate(1, 100) == pytest.approx(0.10)
    assert cost.estimate(3, 100) == pytest.approx(0.30)  # unseen size: per-sample cost × size
    cost.observe(1, 100, 0.20)  # twice as slow as expected: the machine slowed down…
    assert cost.drift == pytest.approx(1.5)
    assert cost.estimate(1, 100) == pytest.approx(0.175)  # (0.1 + 0.5 × (0.2/1.5 - 0.1)) × 1.5
    assert cost.estimate(3, 100) == pytest.approx(0.525)  # …for every batch size


async def test_the_most_urgent_stream_goes_first() -> None:
    """Whatever the rotation, the stream whose pending window is oldest leads the batch."""
    clock = Clock()
    late, early = (Stream(n, CFG, clock=clock) for n in ("late", "early"))
    batcher = Batcher(FakeClassifier(), max_batch=1, max_wait_ms=0)
    batcher.add(late)
    batcher.add(early)
    clock.t = 1.0
    late.push(np.full(100, 0.7, np.float32))  # ready at t=1, stays pending throughout
    for rotation in range(2):
        clock.t = 0.5 * rotation  # each time "early" has the older window
        early.push(np.full(100, 0.2, np.float32))
        batcher._rr = rotation
        [window] = batcher._collect()
        assert window.stream is early
        early.fail(window.index, "done")
        early.pop_messages()
    [window] = batcher._collect()
    assert window.stream is late
    await batcher.close()


async def test_non_finite_scores_fail_only_their_window() -> None:
    class NanForLoud(FakeClassifier):
        def predict(self, batch: np.ndarray) -> np.ndarray:
            out = super().predict(batch)
            out[batch.mean(axis=1) > 0.8] = np.nan  # a huge input made the model overflow
            return out

    async with batching(NanForLoud(), "s", max_batch=4, max_wait_ms=50) as (_, (s,)):
        feed(s, 0.2, 0.9, 0.3)
        out = await drain(s, 3)
    assert [m["type"] for m in out] == ["result", "error", "result"]
    assert out[1]["code"] == "inference_failed" and "NaN or Inf" in out[1]["message"]
    assert s.stats.failed == 1 and s.stats.classified == 2
