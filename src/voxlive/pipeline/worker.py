"""What the batcher and the VAD runner share: one asyncio task and one worker thread of its own
for the blocking calls it makes (never the event loop's thread)."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor


class LoopWorker:
    """Subclasses implement :meth:`_run` (the task) and set ``name`` (task and thread name)."""

    name = "voxlive-worker"

    def __init__(self) -> None:
        self._executor = self._new_executor()
        self._task: asyncio.Task[None] | None = None

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)

    def start(self) -> None:
        """Start the task (inside a running event loop). Idempotent."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        """Stop the task and release the thread. Idempotent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self) -> None:
        raise NotImplementedError
