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
   same, close 1001. Server shutdown → the same within the drain time, close 1001 (a live
   stream with acks moves instead: ``ack``, ``moving``, 1012). A fatal client error → an
   ``error`` and its close code. Then :meth:`Registry.release` unregisters and closes
   the stream, and :meth:`Registry.closed` forgets the connection.
5. **Vanishing.** A client that disconnects without ``stop`` (a network blip) does not end its
   stream when ``resume_grace_ms`` > 0: :meth:`Registry.detach` keeps it, still classifying,
   with nobody woken for its results (bounded by ``max_unsent_results``), until it is resumed or
   the grace period passes (then it is released like any closed stream). Only streams that
   carried audio are kept; open plus detached streams never exceed ``max_streams`` (a new
   client pushes out the oldest detached stream), so vanishing clients cannot pile up work or
   memory: at most ``max_streams`` × ``buffer_ms`` of audio waits for classification.
6. **Resume.** A new connection whose ``start`` (or query) names the ``stream_id`` takes the
   stream back with :meth:`Registry.take_back`: the stream's time and ``seq`` go on, and the
   messages after the client's ``last_seq`` are sent again right after ``ready``. An unknown or
   expired id gets a ``resume_failed`` error and a new stream. A ``resume_token`` (from an
   ``ack``) does the same here when the stream is detached here, and otherwise rebuilds the
   stream from the token's checkpoint, on any front sharing the secret: the rules are in
   :mod:`voxlive.server.resume`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

from voxlive.metrics import Metrics
from voxlive.pipeline.assembly import Pipeline
from voxlive.pipeline.hooks import StreamHooks
from voxlive.pipeline.stream import Stream
from voxlive.protocol import messages
from voxlive.protocol.messages import ErrorMessage, WindowMessage
from voxlive.protocol.order import Started
from voxlive.server.budget import TokenBucket
from voxlive.server.resume import Replay, ResumeRefused, Resumes
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
        """Finish the stream within ``drain_s`` seconds and close 1001 (a live stream with acks:
        ``ack``, ``moving``, close 1012 at once). Idempotent."""

    def fail(self, message: str) -> None:
        """The server cannot serve the stream any more: an ``error`` with ``message``, then
        close 1011 at once. Idempotent."""


@runtime_checkable
class HandsOver(Protocol):
    """A connection that can give its stream to a newer connection of the same client (a token
    resume while the old connection is half-open)."""

    def handing(self, stream_id: str) -> tuple[Stream, StreamHooks] | None:
        """The stream it holds under ``stream_id``, if it could hand it over now; else None."""

    def hand_over(self) -> None:
        """Give the stream up, unfinished (not released, no ``end``), and close."""


@dataclass(frozen=True, slots=True)
class Detached:
    stream: Stream
    hooks: StreamHooks
    expiry: asyncio.TimerHandle


@dataclass(slots=True)
class Resumed:
    """What a resume request got: the stream taken back (``None``: refused, start a new one),
    results to send again after ``ready``, errors to send, and for a token resume how the
    client's audio replay is read (:class:`~voxlive.server.resume.Replay`)."""

    stream: tuple[Stream, StreamHooks] | None = None
    replay: list[WindowMessage] = field(default_factory=list)
    errors: list[ErrorMessage] = field(default_factory=list)
    rejoin: Replay | None = None


class Registry:
    """Open connections and detached streams. Used from the event loop only."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pipeline: Pipeline | None = None  # set once the model is loaded
        self.connections: set[Client] = set()
        self.detached: dict[str, Detached] = {}
        self._replays: dict[str, TokenBucket] = {}  # per stream, open or detached: bounded
        self.resumes = Resumes(settings)
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
    def leave(
        self, conn: Client, stream: Stream | None, hooks: StreamHooks, *, vanished: bool
    ) -> None:
        """``conn`` ended: its stream is detached when its client ``vanished`` (and resume is
        on, and the stream carried audio: only then is it worth keeping), else released;
        ``None``: it handed its stream over."""
        keep = vanished and self.settings.resume_grace_ms > 0
        if stream is not None and keep and stream.samples_received > 0:
            self.detach(stream, hooks)  # the client may come back for it
        elif stream is not None:
            self.release(stream)
        self.closed(conn)

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

    def take_back(self, started: Started, now: float, now_ms: int) -> Resumed:
        """The stream ``started`` asks to resume (by ``resume_token``, else ``stream_id``), with
        what to replay; ``now``: monotonic seconds, ``now_ms``: Unix ms."""
        if started.resume_token is None:
            return self._take_detached(started.stream_id or "", started.last_seq, now)
        assert self.pipeline is not None
        cfg = self.pipeline.config
        try:
            token = self.resumes.check(started, (cfg.sample_rate, cfg.window, cfg.hop), now_ms)
            sid, cp = token.stream_id, token.checkpoint
            newest = self.resumes.newest.get(sid) == token.nonce  # may take over an open one
            here, owned = self.detached.get(sid), self._owned(sid) if newest else None
            held = here.stream if here is not None else owned[1][0] if owned else None
            have = held.input_frames if held is not None else cp.input_offset
            replay_from = cp.input_offset if started.replay_from is None else started.replay_from
            if replay_from > have:
                raise ResumeRefused(
                    "gap",
                    f"expected a replay from input frame {have} or "
                    f"earlier, got {replay_from}: the audio between is lost",
                )
            if held is None and any(getattr(c, "id", None) == sid for c in self.connections):
                raise ResumeRefused("live", "expected a stream not open here, or its newest "
                                    "token, but it is open on another connection")  # fmt: skip
            if held is None and not self.resumes.may_rebuild(now):
                raise ResumeRefused("busy", "too many streams are resuming here right now; "
                                    "retry in a second")  # fmt: skip
        except ResumeRefused as exc:
            error = messages.error("resume_failed", f"{exc.message}; starting a new stream",
                                   reason=exc.reason)  # fmt: skip
            return Resumed(errors=[error])
        self.resumes.take(token)
        if owned is not None:  # its old connection is likely half-open: the newest token wins
            owned[0].hand_over()
            self.detach(*owned[1])
        if held is not None:  # the stream is still here: not rebuilt
            out = self._take_detached(sid, started.last_seq, now)
        else:
            stream, hooks = self.pipeline.open_stream(sid)
            stream.restore(cp, delivered_through=started.last_seq)
            out = Resumed(stream=(stream, hooks))
        credit_s = self.settings.max_replay_ms / 1000
        out.rejoin = Replay(have - replay_from, have, credit_s, token.input_rate)
        return out

    def _owned(self, stream_id: str) -> tuple[HandsOver, tuple[Stream, StreamHooks]] | None:
        """The connection streaming ``stream_id`` that could hand it over, with the stream."""
        for conn in self.connections:
            if isinstance(conn, HandsOver) and (taken := conn.handing(stream_id)) is not None:
                return conn, taken
        return None

    def _take_detached(self, stream_id: str, last_seq: int | None, now: float) -> Resumed:
        found = self.resume(stream_id)
        if found is None:
            return Resumed(errors=[messages.error("resume_failed", (
                f"expected a stream to resume, but {stream_id[:32]!r} is unknown or expired; "
                "starting a new stream"), reason="unknown")])  # fmt: skip
        found[0].retell_pace()  # the new connection knows only ready's hop
        out = Resumed(stream=found)
        if last_seq is not None:  # sent right after ready, the newest if limited
            missed = found[0].replay(last_seq)
            granted = self.replays(stream_id, len(missed), now)
            if granted < len(missed):
                out.errors.append(messages.error("replay_limited", (
                    f"expected to replay {len(missed)} results, but this stream's replays are "
                    f"rate-limited; replaying the newest {granted}")))  # fmt: skip
            out.replay = missed[len(missed) - granted :]
        return out

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
        self.resumes.newest.pop(stream.id, None)
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
        """Drop detached streams, ask every connection to finish and close (1001; a live stream
        with acks moves at once: 1012), and wait until all have closed or ``timeout_s`` has
        passed. Safe to call twice."""
        self._release_detached()
        if self.connections:
            log.info("draining %d stream(s), at most %.1f s", len(self.connections), timeout_s)
        for conn in list(self.connections):
            conn.shutdown(timeout_s)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._no_connections.wait()
