"""Which streams the server holds, and for whom: admission, detach and resume.

How a stream lives
------------------
1. **Admission.** A WebSocket connects. The origin (before the upgrade) and the token come
   first (:mod:`voxlive.server.handshake`; close 1008). Then :meth:`Registry.admit` refuses it
   before anything is allocated when the server is not ready or holds ``max_streams``
   connections (an ``error``, then close 1013).
2. **Open.** The connection opens a stream on the pipeline
   (:meth:`voxlive.pipeline.assembly.Pipeline.open_stream`): a :class:`Stream` registered with
   the batcher, and its :class:`~voxlive.pipeline.hooks.StreamHooks`, whose ``on_results``
   wakes this connection's sender. :meth:`Registry.opened` counts it.
3. **Streaming.** The reader pushes audio; the batcher (and VAD runner) answer windows; the
   sender pops messages in window order. See :mod:`voxlive.server.connection` for the
   connection's states and its one close path.
4. **The end.** ``stop`` → the rest is classified, ``end``, close 1000. Idle or too long → the
   same, close 1001. Server shutdown → the same within the drain time, close 1001. A fatal client
   error → an ``error`` and its close code. Then :meth:`Registry.release` unregisters and closes
   the stream, and :meth:`Registry.closed` forgets the connection.
5. **Vanishing.** A client that disconnects without ``stop`` (a network blip) does not end its
   stream when ``resume_grace_ms`` > 0: :meth:`Registry.detach` keeps it, still classifying,
   with nobody woken for its results (bounded by ``max_unsent_results``), until it is resumed or
   the grace period passes (then it is released like any closed stream). Only streams that
   carried audio are kept; open plus detached streams never exceed ``max_streams`` (a new
   client pushes out the oldest detached stream), so vanishing clients cannot pile up work or
   memory: at most ``max_streams`` × ``buffer_ms`` of audio waits for classification.
6. **Resume.** A new connection whose ``start`` (or query) names the ``stream_id`` takes the
   stream back with :meth:`Registry.resume`: the stream's time and ``seq`` go on, and the
   messages after the client's ``last_seq`` are sent again right after ``ready``. An unknown or
   expired id gets a ``resume_failed`` error and a new stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from voxlive.metrics import Metrics
from voxlive.pipeline.assembly import Pipeline
from voxlive.pipeline.hooks import StreamHooks
from voxlive.pipeline.stream import Stream
from voxlive.server.budget import TokenBucket
from voxlive.settings import Settings

log = logging.getLogger(__name__)
REPLAY_RATE_PER_S = 20.0  # results a stream's resumes may replay per second, after a burst
# A refused client may come back after this long, ms: through a load balancer its next try goes
# to a front with room (the agent routes no stream to a full one, and a stopping one is gone).
RETRY_FULL_MS = 1000
RETRY_STOPPING_MS = 250


class Refusal(NamedTuple):
    """Why a new stream is refused (an ``error`` then close 1013), and when to try again."""

    code: str
    message: str
    retry_after_ms: int


class Client(Protocol):
    """What the registry needs of an open connection."""

    def shutdown(self, drain_s: float) -> None:
        """Finish the stream within ``drain_s`` seconds and close 1001. Idempotent."""

    def fail(self, message: str) -> None:
        """The server cannot serve the stream any more: an ``error`` with ``message``, then
        close 1011 at once. Idempotent."""


@dataclass(frozen=True, slots=True)
class Detached:
    stream: Stream
    hooks: StreamHooks
    expiry: asyncio.TimerHandle


class Registry:
    """Open connections and detached streams. Used from the event loop only."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pipeline: Pipeline | None = None  # set once the model is loaded
        self.connections: set[Client] = set()
        self.detached: dict[str, Detached] = {}
        self._replays: dict[str, TokenBucket] = {}  # per stream, open or detached: bounded
        self._no_connections = asyncio.Event()
        self._no_connections.set()

    # ---- admission --------------------------------------------------------------------------
    def admit(self, status: str) -> Refusal | None:
        """``None`` to let a new connection in, else why it is refused."""
        if status != "ready":
            retry = RETRY_STOPPING_MS if status == "stopping" else RETRY_FULL_MS
            message = f"expected a ready server, got status {status!r}; retry in {retry} ms"
            return Refusal("not_ready", message, retry)
        limit = self.settings.max_streams
        if len(self.connections) >= limit:
            message = f"server is at its limit of {limit} streams; retry in {RETRY_FULL_MS} ms"
            return Refusal("too_many_streams", message, RETRY_FULL_MS)
        # Detached streams count against capacity, but give way to a live client, oldest first.
        while self.detached and len(self.connections) + len(self.detached) >= limit:
            self._expire(next(iter(self.detached)))
        return None

    def opened(self, conn: Client) -> None:
        self.connections.add(conn)
        self._no_connections.clear()
        self.metrics.streams_open.inc()
        self.metrics.streams_total.inc()

    def closed(self, conn: Client) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.metrics.streams_open.dec()
        if not self.connections:
            self._no_connections.set()

    # ---- detach and resume ------------------------------------------------------------------
    def detach(self, stream: Stream, hooks: StreamHooks) -> None:
        """Keep a stream whose client vanished, still classifying, until it is resumed or
        ``resume_grace_ms`` passes (then it is released)."""
        hooks.on_results = None  # nobody reads until it is resumed
        grace_s = self.settings.resume_grace_ms / 1000
        timer = asyncio.get_running_loop().call_later(grace_s, self._expire, stream.id)
        self.detached[stream.id] = Detached(stream, hooks, timer)

    def resume(self, stream_id: str) -> tuple[Stream, StreamHooks] | None:
        """Take back a detached stream by its id; ``None`` if unknown or expired."""
        entry = self.detached.pop(stream_id, None)
        if entry is None:
            return None
        entry.expiry.cancel()
        return entry.stream, entry.hooks

    def _expire(self, stream_id: str) -> None:
        entry = self.detached.pop(stream_id, None)
        if entry is not None:
            entry.expiry.cancel()
            self.release(entry.stream)

    def replays(self, stream_id: str, wanted: int, now: float) -> int:
        """How many of ``wanted`` results a resume of ``stream_id`` may replay now: a burst of
        ``max_unsent_results``, then ``REPLAY_RATE_PER_S`` (a client resuming in a loop cannot
        make the server send its backlog over and over)."""
        bucket = self._replays.get(stream_id)
        if bucket is None:
            burst = self.settings.max_unsent_results
            bucket = self._replays[stream_id] = TokenBucket(REPLAY_RATE_PER_S, burst)
        return bucket.grant(now, wanted)

    def release(self, stream: Stream) -> None:
        """Unregister and close a stream (late results are ignored). Idempotent."""
        self._replays.pop(stream.id, None)
        if self.pipeline is not None:
            self.pipeline.close_stream(stream)
        else:
            stream.close()

    def _release_detached(self) -> None:
        for stream_id in list(self.detached):
            self._expire(stream_id)

    def fail_all(self, message: str) -> None:
        """A worker every stream depends on failed: drop detached streams and close every
        connection with 1011 and ``message``."""
        self._release_detached()
        for conn in list(self.connections):
            conn.fail(message)

    # ---- shutdown ---------------------------------------------------------------------------
    async def drain(self, timeout_s: float) -> None:
        """Drop detached streams, ask every connection to finish and close (1001), and wait
        until all have closed or ``timeout_s`` has passed. Safe to call twice."""
        self._release_detached()
        if self.connections:
            log.info("draining %d stream(s), at most %.1f s", len(self.connections), timeout_s)
        for conn in list(self.connections):
            conn.shutdown(timeout_s)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._no_connections.wait()
