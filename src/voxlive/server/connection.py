"""One WebSocket stream: a reader that never waits on the model, and a sender.

The reader decodes frames, resamples, pushes into the stream and returns to ``receive()`` at
once. The sender wakes when results are ready and writes them in order. Client mistakes produce
``error`` messages; only errors that leave the stream unusable close it, with a close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque

from starlette.websockets import WebSocket, WebSocketState

from voxlive.audio.resample import StreamResampler, to_mono
from voxlive.errors import AuthError, ClientError, FrameTooLarge, StreamTimeout
from voxlive.pipeline.batcher import Wiring
from voxlive.pipeline.stream import Stream
from voxlive.protocol import messages
from voxlive.protocol.frames import DEFAULT_FORMAT
from voxlive.protocol.messages import ReadyMessage, ServerMessage, WindowMessage
from voxlive.protocol.session import Audio, Session, Started, Stopped, parse_query
from voxlive.server.access import origin_ok, token_ok
from voxlive.server.service import Service

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013
MAX_QUEUED_CONTROL = 64
STOP_DRAIN_S = 30.0
THROTTLE_BURST_S = 1.0  # audio a stream may send ahead of max_speed at once


class Connection:
    def __init__(self, ws: WebSocket, service: Service) -> None:
        self.ws = ws
        self.service = service
        self.id = secrets.token_hex(8)
        self._wake = asyncio.Event()
        self._control: deque[ServerMessage] = deque(maxlen=MAX_QUEUED_CONTROL)
        self._close: tuple[int, str] | None = None
        self._stopping = False
        self._resampler: StreamResampler | None = None
        self._drain_s = 0.0
        self._resumed = False
        self._started_at = 0.0
        self._base_samples = 0
        self._replay: list[WindowMessage] = []  # bounded by the stream's max_unsent

    # ---- entry point ------------------------------------------------------------------------
    async def run(self) -> None:
        service = self.service
        await self.ws.accept()
        refusal = self._admission()
        if refusal is not None:
            code, message = refusal
            service.metrics.streams_refused.labels(code).inc()
            await self._send_now(messages.error(code, message))
            await self.ws.close(CLOSE_TRY_AGAIN, code)
            return
        try:
            self._check_origin()
            preset = parse_query(dict(self.ws.query_params), DEFAULT_FORMAT)
            if preset is not None:
                self._check_token(preset)
        except ClientError as exc:
            service.metrics.streams_refused.labels(exc.code).inc()
            await self._send_now(messages.error(exc.code, exc.message))
            await self.ws.close(exc.close_code or 1008, exc.code)
            return
        self.session = Session(DEFAULT_FORMAT, preset)
        resumed = self._resume(preset) if preset is not None else None
        self._adopt(resumed or self._new_stream(), resumed=resumed is not None)
        self._resampler = StreamResampler(self.stream.config.sample_rate)
        service.opened(self)
        if preset is not None:
            self._queue(self._ready_message())
        sender = asyncio.create_task(self._send_loop(), name=f"voxlive-send-{self.id}")
        outcome = "error"
        try:
            outcome = await self._read_loop()
            if outcome == "disconnect":
                sender.cancel()
            else:  # stop or a fatal client error: let the sender finish and close
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STOP_DRAIN_S):
                        await asyncio.shield(sender)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            vanished = outcome == "disconnect" and not self.stream.finished
            if vanished and service.ready and service.settings.resume_grace_ms > 0:
                service.detach(self.stream)  # the client may come back for it
            else:
                service.release(self.stream)
            service.closed(self)

    def _new_stream(self) -> Stream:
        assert self.service.pipeline is not None
        stream, _ = self.service.pipeline.open_stream(self.id)
        return stream

    def _adopt(self, stream: Stream, *, resumed: bool) -> None:
        assert self.service.batcher is not None
        self.stream, self.id, self._resumed = stream, stream.id, resumed
        self._base_samples = stream.samples_received
        assert isinstance(stream.listener, Wiring)
        stream.listener.on_results = self._wake.set
        self.service.batcher.add(stream)
        self._wake.set()  # a resumed stream may hold results already

    def _resume(self, started: Started) -> Stream | None:
        """The detached stream named by ``started.stream_id``, or None (and a warning) when it
        is gone. Results after ``started.last_seq`` that the old connection may have lost in
        flight are queued again."""
        stream_id = started.stream_id
        if not stream_id:
            return None
        stream = self.service.resume(stream_id)
        if stream is not None and started.last_seq is not None:
            self._replay.extend(stream.replay(started.last_seq))  # sent right after ready
        if stream is None:
            self._error(
                "resume_failed",
                f"expected a stream to resume, but {stream_id[:32]!r} is unknown or expired; "
                "starting a new stream",
            )
        return stream

    def _check_origin(self) -> None:
        origin, host = self.ws.headers.get("origin"), self.ws.headers.get("host")
        if not origin_ok(origin, host, self.service.settings.allowed_origins):
            raise AuthError(
                f"origin {origin!r} is not allowed; expected the server's own origin, localhost, "
                "or one listed in VOXLIVE_ALLOWED_ORIGINS",
                code="origin_not_allowed",
            )

    def _check_token(self, started: Started) -> None:
        if not token_ok(self.service.settings.token, started.token):
            given = "no token" if started.token is None else "a wrong token"
            raise AuthError(f"expected the server's token (start 'token' or ?token=), got {given}")

    def _admission(self) -> tuple[str, str] | None:
        service = self.service
        if not service.ready:
            return (
                "not_ready",
                f"expected a ready server, got status {service.status!r}; retry later",
            )
        limit = service.settings.max_streams
        if len(service.connections) >= limit:
            return "too_many_streams", f"server is at its limit of {limit} streams; retry later"
        return None

    def shutdown(self, drain_s: float) -> None:
        """Server shutdown: classify what is buffered (for at most ``drain_s``), send it and
        ``end``, then close 1001. Idempotent."""
        if self._close is None:
            self._drain_s = drain_s
            self._close = (CLOSE_GOING_AWAY, "server shutting down")
            self._wake.set()

    # ---- reading ----------------------------------------------------------------------------
    async def _read_loop(self) -> str:
        settings = self.service.settings
        limit = settings.max_frame_bytes
        idle_s = settings.idle_timeout_ms / 1000 or None
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        ends_at = (
            self._started_at + settings.max_stream_ms / 1000 if settings.max_stream_ms else None
        )
        while True:
            timeout = idle_s
            if ends_at is not None:
                timeout = max(0.0, min(timeout or float("inf"), ends_at - loop.time()))
            try:
                async with asyncio.timeout(timeout):
                    msg = await self.ws.receive()
            except TimeoutError:
                if ends_at is not None and loop.time() >= ends_at:
                    exc = StreamTimeout(
                        f"stream reached the limit of {settings.max_stream_ms} ms; closing it",
                        code="max_duration",
                    )
                else:
                    exc = StreamTimeout(f"no message for {idle_s:g} s; closing the stream")
                self._error(exc.code, exc.message)
                self._drain_s = 2.0  # send what is already classified, then end and close
                self._close = (CLOSE_GOING_AWAY, exc.code)
                self._wake.set()
                return "fatal"
            if msg["type"] == "websocket.disconnect":
                return "disconnect"
            try:
                data, text = msg.get("bytes"), msg.get("text")
                size = len(data) if data is not None else len(text or "")
                if size > limit:
                    raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {limit} bytes")
                events = self.session.receive_bytes(data) if data is not None else (
                    self.session.receive_text(text or "")
                )  # fmt: skip
                for event in events:
                    self._handle(event)
            except ClientError as exc:
                self._error(exc.code, exc.message)
                if exc.close_code is not None:
                    self._close = (exc.close_code, exc.code)
                    self._wake.set()
                    return "fatal"
            if self._stopping:
                return "stop"
            await self._throttle()

    async def _throttle(self) -> None:
        """Hold the reader while the stream is ahead of ``max_speed`` × real time. Not reading
        is TCP back-pressure: a flooding client slows down, nothing is dropped, and other
        streams keep their share."""
        speed = self.service.settings.max_speed
        if not speed:
            return
        received = self.stream.samples_received - self._base_samples  # on this connection
        received_s = received / self.stream.config.sample_rate
        loop = asyncio.get_running_loop()
        allowed_at = self._started_at + (received_s - THROTTLE_BURST_S) / speed
        if allowed_at > loop.time():
            await asyncio.sleep(allowed_at - loop.time())

    def _handle(self, event: Started | Audio | Stopped) -> None:
        if isinstance(event, Started):
            self._check_token(event)
            if event.stream_id and not self._resumed and not self.stream.samples_received:
                resumed = self._resume(event)
                if resumed is not None:
                    self.service.release(self.stream)
                    self._adopt(resumed, resumed=True)
            self._queue(self._ready_message())
        elif isinstance(event, Audio):
            if self.stream.finished:  # shutting down: nothing more is accepted
                return
            assert self._resampler is not None
            samples = self._resampler.process(to_mono(event.samples), event.sample_rate)
            self.stream.push(samples)
        else:
            assert self._resampler is not None
            tail = self._resampler.flush()
            if len(tail):
                self.stream.push(tail)
            self.stream.finish()
            self._stopping = True
            self._wake.set()

    def _ready_message(self) -> ReadyMessage:
        assert self.service.classifier is not None
        info, s = self.service.classifier.info, self.service.settings
        return messages.ready(
            stream_id=self.id,
            model=info.name,
            backend=info.backend,
            labels=info.labels,
            fallback=info.fallback,
            window_ms=s.window_ms,
            hop_ms=s.hop_ms,
            sample_rate=self.session.format.sample_rate,
            resumed=self._resumed,
            model_sample_rate=info.sample_rate,
        )

    def _error(self, code: str, message: str) -> None:
        self.service.metrics.client_errors.labels(code).inc()
        self._queue(messages.error(code, message))

    def _queue(self, message: ServerMessage) -> None:
        self._control.append(message)
        self._wake.set()

    # ---- sending ----------------------------------------------------------------------------
    async def _send_now(self, message: ServerMessage) -> None:
        await self.ws.send_text(messages.encode(message))

    async def _send_ready(self) -> None:
        """Send what is waiting: control messages (ready, errors), replays, then new results."""
        while self._control:
            await self._send_now(self._control.popleft())
        replay, self._replay = self._replay, []
        for message in replay + self.stream.pop_messages():
            await self._send_now(message)

    async def _send_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._send_ready()
                if self._close is not None:
                    if self._close[0] == CLOSE_GOING_AWAY:
                        self.stream.finish()
                        await self._drain(self._drain_s)
                    await self._close_ws(*self._close)
                    return
                if self._stopping and self.stream.drained:
                    await self._send_now(self.stream.end_message())
                    await self._close_ws(CLOSE_NORMAL, "stream ended")
                    return
        except Exception as exc:  # the client went away mid-send: the reader will see it
            log.debug("stream %s: send failed: %s", self.id, exc)

    async def _drain(self, timeout_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self.stream.drained:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            self._wake.clear()
            await self._send_ready()
        await self._send_now(self.stream.end_message())

    async def _close_ws(self, code: int, reason: str) -> None:
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            await self.ws.close(code, reason)


async def audio_endpoint(ws: WebSocket) -> None:
    service: Service = ws.app.state.service
    await Connection(ws, service).run()
