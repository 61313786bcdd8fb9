"""One WebSocket stream: a reader that never waits on the model, and a sender, in one TaskGroup.

The reader decodes frames, resamples, pushes into the stream and returns to ``receive()`` at
once. The sender wakes when results are ready and writes them in order. Client mistakes produce
``error`` messages; only errors that leave the stream unusable close it, with a close code. How
a stream is admitted, detached and resumed: :mod:`voxlive.server.registry`.

A connection's state (:attr:`Connection.state`) changes only in :meth:`Connection._move`, and
every close goes through :meth:`Connection._request_close`::

    streaming ── stop (1000), idle or too long (1001), shutdown (1001) ──► draining
    streaming ── shutdown, with acks: what is ready, ``ack``, ``moving``, close 1012 ──► closing
    draining ── drained or past its deadline: ``end``, close ─────────────► closed
    streaming, draining ── fatal client error, failed worker ──► closing ── errors, close ──► closed
    any ── the client went away ──► closed    (the stream may be detached for resume)
    any ── unexpected exception while sending: logged with its traceback, close 1011 ──► closed
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from typing import Literal

from starlette.websockets import WebSocket, WebSocketState

from voxlive.audio.resample import StreamResampler, to_mono
from voxlive.errors import ClientError, FrameTooLarge
from voxlive.pipeline.hooks import StreamHooks
from voxlive.pipeline.stream import Stream
from voxlive.protocol import messages
from voxlive.protocol.frames import DEFAULT_FORMAT
from voxlive.protocol.messages import ReadyMessage, ServerMessage, WindowMessage
from voxlive.protocol.order import Audio, Event, MessageOrder, Started, Stopped, parse_query
from voxlive.server import handshake, pacing
from voxlive.server.resume import Replay
from voxlive.server.service import Service

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012  # shutdown of a stream with acks: resume on another front
CLOSE_TRY_AGAIN = 1013
MAX_QUEUED_CONTROL = 64
STOP_DRAIN_S = 30.0  # after stop: at most this long to classify the rest before ``end``
TIMEOUT_DRAIN_S = 2.0  # idle or too long: send what is classified, then ``end``
CLIENT_GONE = handshake.CLIENT_GONE  # what sending raises when the client has gone

ConnectionState = Literal["streaming", "draining", "closing", "closed"]
NEXT: dict[ConnectionState, tuple[ConnectionState, ...]] = {
    "streaming": ("draining", "closing", "closed"),
    "draining": ("closing", "closed"),
    "closing": ("closed",),
    "closed": (),
}


class Connection:
    def __init__(self, ws: WebSocket, service: Service) -> None:
        self.ws = ws
        self.service = service
        self.id = secrets.token_hex(8)
        self.state: ConnectionState = "streaming"
        self._close_code, self._close_reason = CLOSE_NORMAL, ""
        self._deadline = float("inf")  # draining: loop time by which to send ``end``
        self._vanished = False  # the client went away while streaming (no stop, no close)
        self._stopped = False  # the client sent stop
        self._wake = asyncio.Event()
        self._control: deque[ServerMessage] = deque(maxlen=MAX_QUEUED_CONTROL)
        self._replay: list[WindowMessage] = []  # bounded by the stream's max_unsent
        self._resampler: StreamResampler | None = None
        self._reader: asyncio.Task[None] | None = None
        self._resumed = False
        self._started_at = 0.0
        self._base_samples = 0
        self._dropped_errors = 0  # control messages pushed out of the full queue
        self._acks = False  # send an ``ack`` with a resume token after each batch of results
        self._rejoin = Replay()  # a token resume: the client's audio replay
        self._given = False  # a newer connection of its client took the stream

    # ---- state ------------------------------------------------------------------------------
    def _move(self, to: ConnectionState) -> None:
        """The one place the state changes."""
        if to not in NEXT[self.state]:
            raise RuntimeError(
                f"connection: expected a move to one of {NEXT[self.state]} from "
                f"{self.state!r}, but got {to!r}"
            )
        self.state = to
        self._wake.set()

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    def _request_close(self, code: int, reason: str, drain_s: float | None) -> None:
        """The one close path. ``drain_s``: finish the stream, send what is classified within
        that many seconds, then ``end``, then close; ``None``: send the queued errors and close
        at once. The first request's code stands; a later one may only bring the deadline
        forward. Idempotent."""
        if self.state in ("closing", "closed"):
            return
        deadline = asyncio.get_running_loop().time() + (drain_s or 0.0)
        if drain_s is None:
            self._close_code, self._close_reason = code, reason
            self._move("closing")
        elif self.state == "draining":
            self._deadline = min(self._deadline, deadline)
            self._wake.set()
        else:
            self._close_code, self._close_reason, self._deadline = code, reason, deadline
            self.stream.finish()  # nothing more is accepted
            self._move("draining")

    def shutdown(self, drain_s: float) -> None:
        """Server shutdown. A live stream with acks moves (what is ready, ``ack``, ``moving``,
        close 1012 at once); others finish: what is buffered classified within ``drain_s``,
        ``end``, close 1001. Idempotent."""
        if self._acks and self.state == "streaming":
            return self._request_close(CLOSE_SERVICE_RESTART, "service restart", None)
        self._request_close(CLOSE_GOING_AWAY, "server shutting down", drain_s)

    def fail(self, message: str) -> None:
        """A worker failed: an ``internal_error``, then close 1011 at once. Idempotent."""
        if self.state not in ("closing", "closed"):
            self._error("internal_error", message)
        self._request_close(CLOSE_INTERNAL_ERROR, "internal error", None)

    def handing(self, stream_id: str) -> tuple[Stream, StreamHooks] | None:
        """Its stream, if that is ``stream_id`` and still streaming (it may be handed over)."""
        live = self.state == "streaming" and self.id == stream_id and not self._given
        return (self.stream, self.hooks) if live else None

    def hand_over(self) -> None:
        """A newer connection of this client took the stream with a fresh token (this one is
        likely half-open): forget the stream, unfinished, and close without ``end``."""
        self._given = True
        self._move("closed")
        if self._reader is not None:
            self._reader.cancel()

    # ---- entry point ------------------------------------------------------------------------
    async def run(self) -> None:
        client = self.ws.client.host if self.ws.client else "unknown"  # behind a proxy: its XFF
        self._allowance = self.service.sources.open(client)
        try:
            await self._run()
        finally:
            self._allowance.close()

    async def _run(self) -> None:
        service, registry = self.service, self.service.registry
        if not await handshake.origin_allowed(self.ws, service):
            return
        await self.ws.accept()
        try:
            preset = parse_query(dict(self.ws.query_params), DEFAULT_FORMAT)
            self.order = MessageOrder(DEFAULT_FORMAT, preset)
            early: list[Event] = []
            if preset is not None:
                handshake.check_token(service.settings, preset)
            elif service.settings.token:
                authenticated = await handshake.authenticate(
                    self.ws, self.order, self._allowance, service
                )
                if authenticated is None:  # the client left before authenticating
                    return
                early = authenticated
        except ClientError as exc:
            close_code = exc.close_code or handshake.CLOSE_POLICY
            return await handshake.refuse(self.ws, service, exc.code, exc.message, close_code)
        # Admitted only now: a client without the token never holds a stream slot.
        refusal = registry.admit(service.status)
        if refusal is not None:
            return await handshake.refuse(
                self.ws, service, *refusal[:2], CLOSE_TRY_AGAIN, refusal.retry_after_ms
            )
        resumed = self._resume(preset) if preset is not None else None
        self._adopt(*(resumed or self._new_stream()), resumed=resumed is not None)
        self._resampler = StreamResampler(self.stream.config.sample_rate)
        if preset is not None and preset.lossless:  # never shed; live streams' windows go first
            self.stream.lossless = self.stream.background = True
        self._acks = preset is not None and preset.acks
        registry.opened(self)
        if preset is not None:
            self._queue(self._ready_message())
        for event in early:
            self._handle(event)
        try:
            async with asyncio.TaskGroup() as tasks:
                self._reader = tasks.create_task(self._read(), name="voxlive-read")
                tasks.create_task(self._send_loop(), name="voxlive-send")
        finally:
            stream = None if self._given else self.stream  # handed over: not this one's to end
            registry.leave(self, stream, self.hooks, vanished=self._vanished and service.ready)

    def _new_stream(self) -> tuple[Stream, StreamHooks]:
        assert self.service.pipeline is not None
        return self.service.pipeline.open_stream(self.id)

    def _adopt(self, stream: Stream, hooks: StreamHooks, *, resumed: bool) -> None:
        self.stream, self.hooks, self.id, self._resumed = stream, hooks, stream.id, resumed
        self._base_samples = stream.samples_received
        hooks.on_results = self._wake.set
        self._wake.set()  # a resumed stream may hold results already

    def _resume(self, started: Started) -> tuple[Stream, StreamHooks] | None:
        """The stream ``started`` asks to resume, or None (and a ``resume_failed``); queues what
        to replay. The registry and :mod:`voxlive.server.resume` decide."""
        if not (started.stream_id or started.resume_token):
            return None
        loop = asyncio.get_running_loop()
        got = self.service.registry.take_back(started, loop.time(), int(time.time() * 1000))
        for error in got.errors:
            self.service.metrics.client_errors.labels(error["code"]).inc()
            self._queue(error)
        self._replay.extend(got.replay)
        if got.rejoin is not None:
            self._rejoin = got.rejoin
            self.order.audio_rate = got.rejoin.input_rate  # WAV frames at another rate: refused
        return got.stream

    # ---- reading ----------------------------------------------------------------------------
    async def _read(self) -> None:
        """Read until ``stop``, a fatal error, a time-out or the client going away."""
        settings = self.service.settings
        limit = settings.max_frame_bytes
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        while True:
            try:
                async with asyncio.timeout(
                    pacing.receive_timeout(loop.time(), self._started_at, settings)
                ):
                    msg = await self.ws.receive()
            except TimeoutError:
                exc = pacing.timed_out(loop.time(), self._started_at, settings)
                self._error(exc.code, exc.message)
                self._request_close(CLOSE_GOING_AWAY, exc.code, TIMEOUT_DRAIN_S)
                return
            if msg["type"] == "websocket.disconnect":
                self._vanished = self.state == "streaming"
                if self.state != "closed":
                    self._move("closed")
                return
            data, text = msg.get("bytes"), msg.get("text")
            size = len(data) if data is not None else len(text or "")
            try:
                if size > limit:
                    raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {limit} bytes")
                events = self.order.receive_bytes(data) if data is not None else (
                    self.order.receive_text(text or "")
                )  # fmt: skip
                for event in events:
                    self._handle(event)
            except ClientError as exc:
                self._error(exc.code, exc.message)
                if exc.close_code is None and self._allowance.budget.bad(
                    loop.time(), authenticated=True
                ):
                    exc = handshake.too_many_errors(self._allowance.budget)
                    self._error(exc.code, exc.message)
                if exc.close_code is not None:
                    self._request_close(exc.close_code, exc.code, None)
                    return
            if self._stopped:
                return
            await handshake.pace(self._allowance, size)
            await self._throttle()
            await self.hooks.wait_for_room(self.stream)  # a lossless stream's back-pressure

    async def _throttle(self) -> None:
        """Hold the reader while the stream is ahead of its pace (:mod:`.pacing`)."""
        settings, loop = self.service.settings, asyncio.get_running_loop()
        received = self.stream.samples_received - self._base_samples  # on this connection
        allowed_at = pacing.read_at(
            started_at=self._started_at, lossless=self.stream.lossless,
            received_s=received / self.stream.config.sample_rate - self._rejoin.credit_s,
            max_speed=settings.max_speed, live_ahead_s=settings.live_ahead_ms / 1000,
        )  # fmt: skip
        if allowed_at > loop.time():
            if (past := self._rejoin.past_credit(self.stream.lossless)) is not None:
                self._error(*past)
            await asyncio.sleep(allowed_at - loop.time())

    def _handle(self, event: Started | Audio | Stopped) -> None:
        if isinstance(event, Started):
            handshake.check_token(self.service.settings, event)
            # A stream's one Started comes before any audio, and a preset stream gets none.
            if event.stream_id or event.resume_token:
                found = self._resume(event)
                if found is not None:
                    self.service.registry.release(self.stream)
                    self._adopt(*found, resumed=True)
            if event.lossless:
                self.stream.lossless = self.stream.background = True
            self._acks = event.acks
            self._queue(self._ready_message())
        elif isinstance(event, Audio):
            if self.stream.finished:  # draining: nothing more is accepted
                return
            assert self._resampler is not None
            mono = self._rejoin.trim(to_mono(event.samples))  # what a resumed stream lacks
            self.stream.input_frames += len(mono)
            # Finite: decoding refuses NaN, Inf and peaks past 16, and resampling keeps it so.
            self.stream.push(self._resampler.process(mono, event.sample_rate))
        else:
            assert self._resampler is not None
            if not self.stream.finished:
                tail = self._resampler.flush()
                if len(tail):
                    self.stream.push(tail)
            self._stopped = True
            self._request_close(CLOSE_NORMAL, "stream ended", STOP_DRAIN_S)

    def _ready_message(self) -> ReadyMessage:
        rate, replay_from = self.order.format.sample_rate, self._rejoin.replay_from
        return handshake.ready_message(self.service, self.id, rate, self._resumed, replay_from)

    def _error(self, code: str, message: str) -> None:
        self.service.metrics.client_errors.labels(code).inc()
        self._queue(messages.error(code, message))

    def _queue(self, message: ServerMessage) -> None:
        if len(self._control) == self._control.maxlen:
            self._dropped_errors += 1  # the oldest queued message gives way; ``end`` counts it
        self._control.append(message)
        self._wake.set()

    # ---- sending ----------------------------------------------------------------------------
    async def _send_now(self, message: ServerMessage) -> None:
        await self.ws.send_text(messages.encode(message))

    async def _send_ready(self) -> None:
        """Send what is waiting: control messages, replays, new results, segments, a pace."""
        while self._control:
            await self._send_now(self._control.popleft())
        replay, self._replay = self._replay, []
        results = self.stream.pop_messages()
        self.hooks.results_taken()  # a lossless reader held back by unsent results may go on
        for message in (*replay, *results, *self.stream.pop_segments(), *self.stream.pop_pace()):
            await self._send_now(message)
        moving = self.state == "closing" and self._close_code == CLOSE_SERVICE_RESTART
        resumes, answered = self.service.registry.resumes, bool(results)
        if self._acks and not self.closed:  # where to replay from, should it drop; or move on
            for note in resumes.after(self.stream, self.order, answered, moving=moving):
                await self._send_now(note)

    async def _wait(self) -> None:
        """Until woken (or, draining, until the deadline)."""
        loop = asyncio.get_running_loop()
        timeout = max(self._deadline - loop.time(), 0.0) if self.state == "draining" else None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    async def _send_loop(self) -> None:
        try:
            while not self.closed:
                await self._wait()
                if self.closed:  # the client went away
                    return
                await self._send_ready()
                if self.state == "closing":
                    await self._close_ws(self._close_code, self._close_reason)
                elif self.state == "draining" and (
                    self.stream.drained or asyncio.get_running_loop().time() >= self._deadline
                ):
                    for segment in self.stream.pop_segments(final=True):
                        await self._send_now(segment)
                    await self._send_now(self.stream.end_message(self._dropped_errors))
                    await self._close_ws(self._close_code, self._close_reason)
        except CLIENT_GONE as exc:  # the client went away mid-send: the reader sees it too
            log.debug("a stream's client went away mid-send: %r", exc)
        except Exception:
            log.exception("a stream's sending failed; closing it with 1011")
            with contextlib.suppress(*CLIENT_GONE):
                await self._close_ws(CLOSE_INTERNAL_ERROR, "internal error")

    async def _close_ws(self, code: int, reason: str) -> None:
        if self.state != "closed":
            self._move("closed")
        try:
            if self.ws.application_state != WebSocketState.DISCONNECTED:
                await self.ws.close(code, reason)
        finally:
            if self._reader is not None:
                self._reader.cancel()  # the socket is closed: nothing more to read


async def audio_endpoint(ws: WebSocket) -> None:
    service: Service = ws.app.state.service
    await Connection(ws, service).run()
