"""The batcher's worker thread and task (pipeline/worker.py): one model call at a time, on the
worker's own thread; close waits for the call in progress and cancels the queued ones."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from tests.fakes import FakeClassifier
from tests.helpers import MS
from voxlive.pipeline.batcher import Batcher


class Overlap(FakeClassifier):
    """Records the most calls ever in progress at once."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._lock = threading.Lock()
        self._now = 0
        self.most = 0
        self.finished = 0
        self.ran_on: set[threading.Thread] = set()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.ran_on.add(threading.current_thread())
        with self._lock:
            self._now += 1
            self.most = max(self.most, self._now)
        try:
            return super().predict(batch)
        finally:
            with self._lock:
                self._now -= 1
                self.finished += 1


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
