"""The VAD runner: keeps every VAD-gated stream's speech probabilities current.

It runs Silero VAD on its own worker thread (the socket reader never waits on it, and it does not
wait behind a model call), batching the new chunks of all streams per step, and hands the
probabilities back to each stream on the event loop, which then sends speech windows to the
batcher and settles the rest as ``ambient``. Idle, it sleeps on an event.
"""

from __future__ import annotations

import asyncio
import logging

from voxlive.audio.vad import SileroVad
from voxlive.pipeline.stream import Stream
from voxlive.pipeline.worker import LoopWorker

log = logging.getLogger(__name__)


class VadRunner(LoopWorker):
    name = "voxlive-vad"

    def __init__(self, vad: SileroVad) -> None:
        super().__init__()
        self.vad = vad
        self._streams: dict[str, Stream] = {}
        self._wake = asyncio.Event()

    def add(self, stream: Stream) -> None:
        self._streams[stream.id] = stream

    def remove(self, stream: Stream) -> None:
        self._streams.pop(stream.id, None)

    def notify(self) -> None:
        """Some stream has new audio (or has finished). Cheap; safe to call often."""
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            streams, jobs = [], []
            for stream in list(self._streams.values()):
                job = stream.vad_job()
                if job is not None:
                    streams.append(stream)
                    jobs.append(job)
            if not jobs:
                await self._wake.wait()
                continue
            try:
                results = await loop.run_in_executor(self._executor, self.vad.run, jobs)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("VAD failed; its windows go to the classifier")
                for stream in streams:
                    stream.vad_done(None)
                continue
            for stream, probs in zip(streams, results, strict=True):
                stream.vad_done(probs)
