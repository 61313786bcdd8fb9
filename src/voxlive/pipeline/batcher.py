"""The batcher: the one owner of the model.

It collects pending windows from every stream, one window per stream per round (so a client
sending faster than real time cannot take over the model), the most urgent stream first, up to
``max_batch`` windows of equal length. It plans against deadlines: every window should have its
result within ``latency_budget_ms`` of its last sample. Waiting for more windows to fill a batch
is worth it only while that still leaves time for the (larger) model call, which it estimates
from the calls made so far, and only if some stream's next window is due by then (a live stream
cuts one every hop); so it waits at most ``max_wait_ms``, less when the budget says so, and not
at all when no window is due in time or every stream already has one pending. It runs the model
on its own worker thread, never on the event loop, and hands each result back to its stream. An
exception or a time-out fails only that batch's windows.

Before each call it sheds the live windows that call would answer too late (see
:mod:`voxlive.pipeline.overload`): under overload the freshest windows are served and the stale
ones are reported as dropped, instead of every result arriving seconds late. It meters the
windows offered to the model, which with the cost model gives the capacity gauge.

Before shedding comes graded degradation: with a :class:`~voxlive.pipeline.pace.Pace`, each
round it measures what live streams ask of the model and, under sustained pressure, cuts every
live stream's windows further apart (see :mod:`voxlive.pipeline.degrade`).

When nothing is pending it sleeps on an event: an idle server uses no CPU (while degraded, it
wakes every :data:`~voxlive.pipeline.pace.TICK_S` to let the pace fall back).

With ``in_flight`` above 1 (the Ray engine with several replicas) it forms the next batch while
up to that many calls are running, each on a thread of its own, so that every replica has work;
with 1 (the in-process engine) each call ends before the next batch is formed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import numpy as np

from voxlive.audio.vad import SileroVad
from voxlive.inference.base import Classifier, parallel_calls
from voxlive.metrics import Metrics
from voxlive.pipeline.overload import (
    Capacity,
    RateMeter,
    capacity,
    plan_batch,
    planned_call_s,
    shed_cap,
)
from voxlive.pipeline.pace import TICK_S, Pace
from voxlive.pipeline.stream import Slot, Stream, Window
from voxlive.pipeline.vad import VadRunner
from voxlive.pipeline.worker import LoopWorker

log = logging.getLogger(__name__)


def check_output(probs: np.ndarray, rows: int, labels: int) -> None:
    """Raise a ValueError unless ``probs`` holds one row per window and one column per label
    (a model, or ``--labels``, of the wrong width would otherwise fail later, in every
    stream's sender)."""
    shape: tuple[int, ...] = tuple(getattr(probs, "shape", ()))
    if len(shape) != 2:
        raise ValueError(f"model output: expected 2 dimensions (windows, labels), got {shape}")
    if shape[0] != rows:
        raise ValueError(f"model output: expected {rows} rows (one per window), got {shape[0]}")
    if shape[1] != labels:
        raise ValueError(f"model output: expected {labels} columns (one per label), got {shape[1]}")


class CostModel:
    """Expected model-call time, learned from the calls made: per (batch size, window length) an
    exponential moving average, else the average cost per sample scaled to the batch; both times
    the machine's current speed (:attr:`drift`), which every call updates, so that a slowdown
    measured at one batch size also moves the estimates of the others (this project's machine
    changes speed 2-6x within minutes). And how far calls overrun what was expected
    (:attr:`spread`, relative)."""

    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self._calls: dict[tuple[int, int], float] = {}  # seconds at drift 1
        self._per_sample: float | None = None  # seconds per sample at drift 1
        self.drift = 1.0  # how much slower calls run now than the averages say
        self.spread = 0.0  # moving average of max(actual - expected, 0) / expected, all calls

    def observe(self, size: int, length: int, seconds: float) -> None:
        key = (size, length)
        expected = self.estimate(size, length)
        if expected > 0:
            ratio = seconds / expected
            self.spread += self.alpha * (max(ratio - 1, 0.0) - self.spread)  # overruns only
            self.drift *= 1 + self.alpha * (ratio - 1)
        normal = seconds / self.drift
        old = self._calls.get(key)
        self._calls[key] = normal if old is None else old + self.alpha * (normal - old)
        per = normal / max(size * length, 1)
        p = self._per_sample
        self._per_sample = per if p is None else p + self.alpha * (per - p)

    def estimate(self, size: int, length: int) -> float:
        """Seconds for a call of ``size`` windows of ``length`` samples (0.0 before any call)."""
        known = self._calls.get((size, length))
        if known is None:
            known = (self._per_sample or 0.0) * size * length
        return known * self.drift

    def best_rate(self, length: int) -> float | None:
        """The most windows of ``length`` samples per second measured at any batch size (the
        model flat out); ``None`` before any call with that length."""
        rates = [
            size / (s * self.drift) for (size, n), s in self._calls.items() if n == length and s > 0
        ]
        return max(rates, default=None)


class Batcher(LoopWorker):
    """Cross-stream batching in front of one :class:`Classifier`.

    Call :meth:`start` inside a running event loop and :meth:`close` when done. Streams are
    registered with :meth:`add`; a stream built with :class:`~voxlive.pipeline.hooks.StreamHooks`
    for this batcher wakes it when it has windows for the model.
    """

    name = "voxlive-model"

    def __init__(
        self,
        classifier: Classifier,
        *,
        max_batch: int,
        max_wait_ms: float,
        latency_budget_ms: float = 250.0,
        timeout_s: float = 30.0,
        metrics: Metrics | None = None,
        vad: SileroVad | None = None,
        clock: Callable[[], float] = time.monotonic,
        in_flight: int = 1,
        pace: Pace | None = None,
    ) -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight: expected >= 1 model calls, got {in_flight}")
        self.in_flight = in_flight
        self.threads = in_flight  # one worker thread per call in flight
        super().__init__()
        self._clock = clock
        self._offered = RateMeter()  # windows offered to the model (served, shed) at the normal hop
        self.classifier = classifier
        # Streams gated by the neural VAD get their speech probabilities from this runner.
        self.vad = VadRunner(vad) if vad is not None else None
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.budget_s = latency_budget_ms / 1000
        self.cost = CostModel()
        self.timeout_s = timeout_s
        self._metrics = metrics
        self._streams: dict[str, Stream] = {}
        self._rr = 0
        self._wake = asyncio.Event()
        self.pace = pace  # graded degradation of live streams; None: off

    # ---- registration -----------------------------------------------------------------------
    def add(self, stream: Stream) -> None:
        self._streams[stream.id] = stream
        if self.pace is not None:
            self.pace.join(stream)
        if self.vad is not None and stream.uses_vad:
            self.vad.add(stream)

    def remove(self, stream: Stream) -> None:
        self._streams.pop(stream.id, None)
        if self.vad is not None:
            self.vad.remove(stream)
        self._wake.set()  # the pace hears of it (the last live stream gone: back to normal)

    def notify(self) -> None:
        """Some stream has new pending windows. Cheap; safe to call often."""
        self._wake.set()

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        if self.vad is not None:
            self.vad.start()

    async def close(self) -> None:
        """Stop batching and release the worker threads. Idempotent."""
        if self.vad is not None:
            await self.vad.close()
        await super().close()

    async def predict(self, audio: np.ndarray) -> np.ndarray:
        """Run the model on the worker thread (used by warm-up and the batch loop)."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self.classifier.predict, audio)
        async with asyncio.timeout(self.timeout_s):
            return await future

    # ---- the loop ---------------------------------------------------------------------------
    def _pending(self) -> tuple[int, Slot | None]:
        count, oldest = 0, None
        for stream in self._streams.values():
            if stream.pending:
                count += stream.pending
                slot = stream.oldest_pending()
                if slot is not None and (oldest is None or slot.ready_at < oldest.ready_at):
                    oldest = slot
        return count, oldest

    def wait_s(self, now: float) -> float | None:
        """How long to wait for more windows before the next model call: ``None`` when nothing
        is pending (sleep until notified), 0 or less to call the model now."""
        count, oldest = self._pending()
        if count == 0 or oldest is None:
            return None
        # Waiting only helps while some stream could still add a window; once every stream
        # has one pending (a lone stream, say), waiting just adds latency.
        others = [s for s in self._streams.values() if not s.pending]
        if count >= self.max_batch or not others:
            return 0.0
        # Launch by the time that still lets a call with one more window finish within the
        # oldest window's budget; never later than max_wait. Wait at all only if some stream's
        # next window is due by then (live streams cut one every hop).
        grown = self.cost.estimate(min(count + 1, self.max_batch), oldest.length)
        launch_by = oldest.ready_at + min(self.max_wait_s, self.budget_s - grown)
        if min(s.next_window_at(now) for s in others) > launch_by:
            return 0.0
        return launch_by - now

    async def _wait_for_batch(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock()
            if self.pace is not None:
                self.pace.update(now, self._streams.values(), self.model_rate(self.pace.window))
            wait = self.wait_s(now)
            if wait is None:
                idle = TICK_S if self.pace is not None and self.pace.paced else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle):
                        await self._wake.wait()
                continue
            if wait <= 0:
                return
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                return

    def model_rate(self, window: int) -> float | None:
        """Windows of ``window`` samples a second the model takes flat out: the best rate
        measured per call, times the calls that run at once (up to ``in_flight``: the Ray
        engine's running replicas, each measured alike); ``None`` before any call."""
        rate = self.cost.best_rate(window)
        return None if rate is None else rate * min(self.in_flight, parallel_calls(self.classifier))

    def capacity(self, window: int, hop_s: float) -> Capacity:
        """The capacity gauge for live streams cutting ``window``-sample windows every
        ``hop_s`` seconds (see :class:`~voxlive.pipeline.overload.Capacity`)."""
        return capacity(self.model_rate(window), self._offered.rate(self._clock()), hop_s)

    def _shed(self, streams: list[Stream], now: float) -> int:
        """Plan the next call's size so that it answers its windows within their bound, shed
        the live windows that even it would answer too late, and return the size."""
        slot = streams[0].oldest_pending()
        if slot is None:
            return self.max_batch
        length = slot.length
        waiting = [(w.ready_at, 0.0 if s.lossless else s.config.max_lag_ms / 1000)
                   for s in streams for w in s.pending_slots()]  # fmt: skip
        size, call_s = plan_batch(
            waiting,
            now,
            self.max_batch,
            lambda n: planned_call_s(self.cost.estimate(n, length), self.cost.spread),
        )
        cap = shed_cap(waiting, now, call_s)
        counts = [(s, s.shed_stale(now, call_s, cap)) for s in streams]
        shed = self.pace.shed(counts, now) if self.pace else sum(n for _, n in counts)
        if shed:
            self._offered.add(shed, now)
        return size

    def _collect(self) -> list[Window]:
        now = self._clock()
        streams = [s for s in self._streams.values() if s.pending and not s.background]
        limit = self.max_batch
        if not streams:
            # Background work (files) only when no live window waits, and while live streams
            # are open in small calls, so a live window arriving meanwhile waits for little.
            streams = [s for s in self._streams.values() if s.pending]
            if any(not s.background for s in self._streams.values()):
                limit = max(1, self.max_batch // 4)
        if streams:
            limit = min(limit, self._shed(streams, now))
        streams = [s for s in streams if s.pending]
        if not streams:
            return []
        # Rotate (fair among equals), then most urgent first: the oldest pending window leads.
        self._rr = (self._rr + 1) % len(streams)
        order = streams[self._rr :] + streams[: self._rr]
        order.sort(key=lambda s: s.oldest_ready_at())
        batch: list[Window] = []
        length: int | None = None
        while len(batch) < limit:
            took = False
            for stream in order:
                if len(batch) >= limit:
                    break
                window = stream.take(length)
                if window is not None:
                    length = len(window.audio)
                    batch.append(window)
                    took = True
            if not took:
                break
        self._offered.add(self.pace.offered(batch, now) if self.pace else len(batch), now)
        return batch

    def paced_streams(self) -> int:
        """Live streams cut at a wider hop than their configured one now (graded degradation)."""
        return sum(1 for s in self._streams.values() if s.paced)

    async def _run(self) -> None:
        if self.in_flight > 1:
            return await self._run_overlapped()
        while True:
            await self._wait_for_batch()
            batch = self._collect()
            if batch:
                await self._infer(batch)

    async def _run_overlapped(self) -> None:
        """The loop with up to ``in_flight`` calls at once: a batch is formed as soon as a call
        slot is free. A call that fails outside the model call ends the loop, as it would the
        one-call loop (the worker's supervision takes over)."""
        free = asyncio.Semaphore(self.in_flight)
        calls: set[asyncio.Task[None]] = set()
        broken: list[BaseException] = []

        def ended(call: asyncio.Task[None]) -> None:
            calls.discard(call)
            free.release()
            if not call.cancelled() and call.exception() is not None:
                broken.append(call.exception())  # type: ignore[arg-type]

        try:
            while True:
                await free.acquire()
                if broken:
                    raise broken[0]
                await self._wait_for_batch()
                batch = self._collect()
                if not batch:
                    free.release()
                    continue
                call = asyncio.create_task(self._infer(batch), name=f"{self.name}-call")
                calls.add(call)
                call.add_done_callback(ended)
        finally:
            for call in list(calls):
                call.cancel()

    async def _infer(self, batch: list[Window]) -> None:
        started = time.monotonic()
        if self._metrics:
            self._metrics.batch_size.observe(len(batch))
            for w in batch:
                self._metrics.queue_wait.observe(max(started - w.ready_at, 0.0))
        try:
            probs = await self.predict(np.stack([w.audio for w in batch]))
            check_output(probs, len(batch), len(self.classifier.info.labels))
        except TimeoutError:
            log.error("model call exceeded %.1f s; failing %d windows", self.timeout_s, len(batch))
            # The hung call keeps its thread; later batches get a fresh one.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
            self._fail(batch, f"inference timed out after {self.timeout_s:g} s")
        except Exception:
            log.exception("model call failed; failing %d windows", len(batch))
            self._fail(batch, "inference failed")
        else:
            self.cost.observe(len(batch), len(batch[0].audio), time.monotonic() - started)
            for w, p in zip(batch, probs, strict=True):
                if np.all(np.isfinite(p)):
                    w.stream.complete(w.index, p)
                else:  # NaN/Inf scores would fail JSON encoding later: this window failed
                    w.stream.fail(w.index, "inference failed: the model returned NaN or Inf")
        finally:
            if self._metrics:
                self._metrics.inference_time.observe(time.monotonic() - started)

    @staticmethod
    def _fail(batch: list[Window], message: str) -> None:
        for w in batch:
            w.stream.fail(w.index, message)
