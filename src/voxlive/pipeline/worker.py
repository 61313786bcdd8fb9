"""What the batcher and the VAD runner share: one asyncio task and one worker thread of its own
for the blocking calls it makes (never the event loop's thread), and supervision of that task.

A worker's task runs until :meth:`LoopWorker.close`. If it ends any other way (an exception
outside the model call, or a cancellation nobody asked for), every stream it serves would stall
without a sound; instead the worker logs the traceback and tells its ``on_crash`` listener (the
server marks itself failed, closes the streams with 1011 and restarts the worker: see
:class:`voxlive.server.service.Service`). :meth:`LoopWorker.start` may be called again after a
crash to restart the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


class WorkerCrashed(RuntimeError):
    """A worker's task ended while nobody was closing it."""


class LoopWorker:
    """Subclasses implement :meth:`_run` (the task) and set ``name`` (task and thread name)."""

    name = "voxlive-worker"
    threads = 1  # worker threads for the blocking calls (the batcher may run several at once)

    def __init__(self) -> None:
        self._executor = self._new_executor()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Told (on the event loop) when the task ends other than by close(), with the cause.
        self.on_crash: Callable[[LoopWorker, BaseException], None] | None = None

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix=self.name)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task (inside a running event loop); after a crash, start it again.
        Idempotent while it runs."""
        if self._task is None and not self._closing:
            task = asyncio.create_task(self._run(), name=self.name)
            task.add_done_callback(self._ended)
            self._task = task

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._closing or self._task is not task:
            return  # close() ended it: that is no crash
        self._task = None  # start() may run it again
        if task.cancelled():
            cause: BaseException = WorkerCrashed(f"{self.name}: its task was cancelled")
        else:
            cause = task.exception() or WorkerCrashed(f"{self.name}: its task returned")
        log.error(
            "the %s worker stopped: %s: %s; its streams stall until it is restarted",
            self.name, type(cause).__name__, cause, exc_info=cause,
        )  # fmt: skip
        if self.on_crash is not None:
            self.on_crash(self, cause)

    async def close(self) -> None:
        """Stop the task and release the thread. Idempotent."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self) -> None:
        raise NotImplementedError
