"""A stream's hooks in a running pipeline: how a stream that the batcher serves wakes the
batcher, its VAD runner and whoever reads its results.

The stream knows only the :class:`~voxlive.pipeline.slots.StreamListener` protocol; these hooks
are the listener that the composition root (:meth:`voxlive.pipeline.assembly.Pipeline.open_stream`)
and file classification (:mod:`voxlive.pipeline.offline`) hand it. A connection sets
``on_results``, the stream registry clears it while the stream's client is away, and a lossless
stream's reader waits in :meth:`StreamHooks.wait_for_room`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from voxlive.pipeline.batcher import Batcher
from voxlive.pipeline.stream import Stream


class StreamHooks:
    """A stream's listener in a running pipeline: windows for the model wake the batcher, new
    audio wakes its VAD runner, and ready results call ``on_results`` (the stream's reader;
    ``None`` while nobody reads, e.g. a stream whose client vanished) and wake a lossless
    stream's reader waiting in :meth:`wait_for_room`."""

    def __init__(self, batcher: Batcher, on_results: Callable[[], None] | None = None) -> None:
        self._batcher = batcher
        self.on_results = on_results
        self._room: asyncio.Event | None = None  # set while a lossless reader waits for room

    def windows_pending(self) -> None:
        self._batcher.notify()

    def audio_arrived(self) -> None:
        if self._batcher.vad is not None:
            self._batcher.vad.notify()

    def results_ready(self) -> None:
        if self.on_results is not None:
            self.on_results()
        self.results_taken()

    def results_taken(self) -> None:
        """The stream's reader took messages: a lossless reader waiting for room looks again."""
        if self._room is not None:
            self._room.set()

    async def wait_for_room(self, stream: Stream) -> None:
        """Back-pressure for a lossless stream: return once it is no longer backlogged (at
        once when it is not): its windows classified and its client reading. Safe to
        cancel."""
        while stream.backlogged:
            self._room = asyncio.Event()
            try:
                await self._room.wait()
            finally:
                self._room = None
