"""The worker thread and task under the batcher and the VAD runner (pipeline/worker.py): one
model call at a time, on the worker's own thread; close waits for the call in progress and
cancels the queued ones; a task that crashes, returns or is cancelled by someone else is logged
and reported, and can be restarted."""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np
import pytest

from tests.fakes import Overlap
from tests.helpers import MS, eventually
from voxlive.pipeline.batcher import Batcher
from voxlive.pipeline.worker import LoopWorker, WorkerCrashed


async def test_the_model_is_never_called_from_two_threads_at_once() -> None:
    model = Overlap(latency_s=20 * MS)
    batcher = Batcher(model, max_batch=1, max_wait_ms=0)
    try:
        await asyncio.gather(*(batcher.predict(np.zeros((1, 10), np.float32)) for _ in range(3)))
    finally:
        await batcher.close()
    assert model.batches == [1, 1, 1] and model.most == 1
    assert model.threads == {"voxlive-model_0"}


async def test_close_waits_for_the_call_in_progress_and_cancels_the_queued_ones() -> None:
    started, release = threading.Event(), threading.Event()

    class Held(Overlap):
        def predict(self, batch: np.ndarray) -> np.ndarray:
            started.set()
            release.wait(3_000 * MS)  # until the test lets it finish (at most 3 s)
            return super().predict(batch)

    model = Held()
    batcher = Batcher(model, max_batch=1, max_wait_ms=0)
    batcher.start()
    assert "voxlive-model" in {t.get_name() for t in asyncio.all_tasks()}
    calls = [
        asyncio.ensure_future(batcher.predict(np.full((1, 10), v, np.float32))) for v in (1, 2)
    ]
    # the first call is in progress, the second queued
    assert await asyncio.to_thread(started.wait, 3_000 * MS)
    threading.Timer(
        100 * MS, release.set
    ).start()  # close blocks the event loop: a timer releases it
    await batcher.close()
    assert model.finished == 1  # done by the time close returned…
    assert not any(t.is_alive() for t in model.ran_on)  # the worker thread is gone
    first, second = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(first, np.ndarray)
    assert isinstance(second, asyncio.CancelledError)  # …and the queued one never ran
    assert model.means == [[1.0]]
    await batcher.close()  # idempotent
    assert "voxlive-model" not in {t.get_name() for t in asyncio.all_tasks()}


class Crashing(LoopWorker):
    """A worker whose task raises after ``runs_before`` wake-ups (or returns when ``returns``)."""

    name = "voxlive-test"

    def __init__(self, *, returns: bool = False) -> None:
        super().__init__()
        self.wake = asyncio.Event()
        self.returns = returns
        self.runs = 0

    async def _run(self) -> None:
        self.runs += 1
        await self.wake.wait()
        self.wake.clear()
        if self.returns:
            return
        raise ZeroDivisionError("planning went wrong")


async def test_a_crashed_worker_logs_its_traceback_tells_its_listener_and_can_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = Crashing()
    crashes: list[tuple[LoopWorker, BaseException]] = []
    worker.on_crash = lambda w, exc: crashes.append((w, exc))
    worker.start()
    await asyncio.sleep(0)
    assert worker.running
    with caplog.at_level(logging.ERROR, logger="voxlive.pipeline.worker"):
        worker.wake.set()
        await eventually(lambda: bool(crashes), "the crash reported")
    [(who, exc)] = crashes
    assert who is worker and isinstance(exc, ZeroDivisionError) and not worker.running
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[1] is exc
    assert "the voxlive-test worker stopped: ZeroDivisionError: planning went wrong" in (
        record.getMessage()
    )
    worker.start()  # a restart runs the task again
    await asyncio.sleep(0)
    assert worker.running and worker.runs == 2
    await worker.close()
    assert len(crashes) == 1  # close() is no crash


async def test_a_task_that_returns_or_is_cancelled_by_someone_else_is_a_crash_too() -> None:
    crashes: list[BaseException] = []
    returning = Crashing(returns=True)
    returning.on_crash = lambda w, exc: crashes.append(exc)
    returning.start()
    returning.wake.set()
    await eventually(lambda: len(crashes) == 1, "a returned task reported")
    assert isinstance(crashes[0], WorkerCrashed)
    assert str(crashes[0]) == "voxlive-test: its task returned"
    cancelled = Crashing()
    cancelled.on_crash = lambda w, exc: crashes.append(exc)
    cancelled.start()
    await asyncio.sleep(0)
    assert cancelled._task is not None
    cancelled._task.cancel()
    await eventually(lambda: len(crashes) == 2, "a cancelled task reported")
    assert str(crashes[1]) == "voxlive-test: its task was cancelled"
    await returning.close()
    await cancelled.close()
    cancelled.start()  # closed: never started again
    assert not cancelled.running
