"""``voxlive.client.stream``: send audio to a voxlive server and read what it says, resuming on
its own when the connection drops (on the same front, another front of the list, or whichever
front a load balancer picks).

The stream asks for ``acks``; the client keeps the audio sent since the newest ack
(:class:`~voxlive.client.replay.ReplayBuffer`, ``max_replay_ms``) and the newest resume token.
After a drop it reconnects (:class:`~voxlive.client.replay.Backoff`: at once to the same URL,
then at once to each next URL in turn, then round after round, waiting longer each round, never
before a refusal's ``retry_after_ms``), sends ``start`` with ``resume_token``, ``last_seq`` and
``replay_from``, replays the audio it kept and goes on.
Each window's message reaches the caller once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from voxlive.client.replay import DEFAULT_REPLAY_MS, Backoff, ReplayBuffer
from voxlive.client.tally import ClientMessage, ReconnectingEvent, ResumedEvent, Tally

FATAL_CODES = frozenset({"unauthorized", "unsupported_format", "frame_too_large"})
REFUSALS = frozenset({"too_many_streams", "not_ready"})
QUEUE_MESSAGES = 256  # messages waiting for the caller; past it the socket is not read


@dataclass(frozen=True)
class StreamOptions:
    """How :func:`stream` streams. ``lossless``: every window is classified, however late, and
    the audio goes as fast as the server takes it (the sender also waits for an ack rather than
    let the replay buffer overflow); false: live, at real-time pace (the server may shed
    windows, and a long outage may lose audio). ``token``: the server's shared secret
    (``None``: none). ``sample_rate``: the rate a file is decoded to and sent at, Hz.
    ``chunk_ms``: audio per binary frame. ``max_replay_ms``: audio kept for a resume.
    ``open_timeout_ms``: a connection attempt that takes longer fails."""

    lossless: bool = True
    token: str | None = None
    sample_rate: int = 16_000
    chunk_ms: int = 100
    max_replay_ms: int = DEFAULT_REPLAY_MS
    open_timeout_ms: int = 5_000
    backoff: Backoff = field(default_factory=Backoff)


class _Closed(Exception):
    """A connection ended without the stream's ``end``; ``moving``: its front said it is
    shutting down (go elsewhere)."""

    def __init__(
        self, reason: str, retry_after_ms: int | None = None, moving: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason, self.retry_after_ms, self.moving = reason, retry_after_ms, moving


class _Fatal(Exception):
    """The server refused the stream for good (a bad token or format)."""


def _pcm16(samples: np.ndarray) -> bytes:
    pcm: bytes = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    return pcm


def _abort_on_failure(task: asyncio.Task[None], ws: Any) -> None:
    """A sender that failed (not for the connection's sake) ends the reader's wait too; the
    failure is raised when the sender is awaited."""
    if not task.cancelled() and not isinstance(
        task.exception(), websockets.ConnectionClosed | None
    ):
        ws.transport.abort()


class _Run:
    """One client stream over as many connections as it takes."""

    def __init__(
        self, urls: Sequence[str], audio: np.ndarray, rate: int, opts: StreamOptions,
        out: asyncio.Queue[ClientMessage | None],
    ) -> None:  # fmt: skip
        self.urls, self.audio, self.rate, self.opts, self.out = list(urls), audio, rate, opts, out
        self.buffer = ReplayBuffer(max(opts.max_replay_ms * rate // 1000, 1))
        self.tally = Tally()
        self.chunk = max(opts.chunk_ms * rate // 1000, 1)
        self.next_frame = 0  # the next frame never sent
        self.room = asyncio.Event()
        self.t0: float | None = None  # the real-time clock's start (loop time)
        self.stopped = False
        self.replay_start = 0  # the input frame this connection's audio starts at
        self.offset_ms = 0.0  # where the current server stream's time 0 lies in the source

    async def main(self) -> None:
        try:
            summary = await self._loop()
            await self.out.put(summary.event())
        finally:
            await self.out.put(None)

    async def _loop(self) -> Any:
        home, attempt, retry_after, reason = 0, 0, None, ""
        down_since: float | None = None  # since when no stream has been up (None: not yet)
        while True:
            url = self.urls[(home + attempt) % len(self.urls)]
            if down_since is not None:
                # each URL once at once, then a round of them a little later each time
                delay = self.opts.backoff.delay_ms(attempt // len(self.urls), retry_after)
                await self.out.put(ReconnectingEvent(type="reconnecting", url=url,
                    reason=reason, attempt=attempt, delay_ms=round(delay, 1)))  # fmt: skip
                await asyncio.sleep(delay / 1000)
            try:
                await self._connection(url, down_since)
                return self.tally.summary(ok=True)
            except _Fatal as exc:
                return self.tally.summary(ok=False, failure=str(exc))
            except _Closed as exc:
                reason, retry_after, moving = exc.reason, exc.retry_after_ms, exc.moving
            now = time.monotonic()
            if moving:  # the front is leaving: the next URL (the same one: a balancer), at once
                self.tally.up = False
                home, attempt = (self.urls.index(url) + 1) % len(self.urls), 0
                down_since = now
            elif self.tally.up:  # it was streaming: the same front first (it may have it), at once
                self.tally.up = False
                home, attempt, down_since = self.urls.index(url), 0, now
            else:  # the next URL, a little later each time
                attempt += 1
                down_since = down_since or now
            if (now - down_since) * 1000 > self.opts.backoff.give_up_ms:
                return self.tally.summary(ok=False, failure=f"gave up reconnecting: {reason}")

    def _start(self) -> dict[str, Any]:
        start: dict[str, Any] = {"type": "start", "sample_rate": self.rate,
                                 "encoding": "pcm_s16le", "channels": 1, "acks": True}  # fmt: skip
        if self.opts.lossless:
            start["lossless"] = True
        if self.opts.token is not None:
            start["token"] = self.opts.token
        if self.tally.token is not None:
            start |= {"resume_token": self.tally.token, "replay_from": self.buffer.kept_from}
            if self.tally.last_seq is not None:
                start["last_seq"] = self.tally.last_seq
        return start

    async def _connection(self, url: str, down_since: float | None) -> None:
        """Stream on ``url`` until ``end`` (returns) or the connection ends (:class:`_Closed`)."""
        try:
            ws = await websockets.connect(
                url, open_timeout=self.opts.open_timeout_ms / 1000, close_timeout=1, max_size=2**20
            )
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            if status in (429, 502, 503, 504):
                raise _Closed(f"HTTP {status}", 1000) from None
            raise _Fatal(f"the server refused the connection: HTTP {status}") from None
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise _Closed(f"cannot connect: {exc or type(exc).__name__}") from None
        start = self._start()
        resuming = "resume_token" in start
        self.tally.fresh_restart = not resuming and self.buffer.kept_from == 0
        self.stopped = False
        sender: asyncio.Task[None] | None = None
        try:
            with contextlib.suppress(websockets.ConnectionClosed):  # the reader says why
                await ws.send(json.dumps(start))
            self.replay_start, replay = self.buffer.take()  # the start's replay_from
            sender = asyncio.create_task(self._send(ws, replay))
            sender.add_done_callback(lambda task: _abort_on_failure(task, ws))
            await self._read(ws, url, start, down_since)
        finally:
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                    await sender
            await ws.close()

    async def _send(self, ws: Any, replay: np.ndarray) -> None:
        loop = asyncio.get_running_loop()
        self.t0 = loop.time() if self.t0 is None else self.t0
        for at in range(0, len(replay), self.chunk):
            piece = replay[at : at + self.chunk]
            self.buffer.push(piece)
            await ws.send(_pcm16(piece))
        while self.next_frame < len(self.audio):
            piece = self.audio[self.next_frame : self.next_frame + self.chunk]
            if self.opts.lossless:
                while self.buffer.room() < len(piece):  # wait for an ack: never overflow
                    self.room.clear()
                    await self.room.wait()
            else:
                await asyncio.sleep(max(self.t0 + self.next_frame / self.rate - loop.time(), 0))
            self.buffer.push(piece)
            self.next_frame += len(piece)
            await ws.send(_pcm16(piece))
        self.stopped = True
        await ws.send(json.dumps({"type": "stop"}))

    async def _read(
        self, ws: Any, url: str, start: dict[str, Any], down_since: float | None
    ) -> None:
        retry_after: int | None = None
        moving = False
        held: list[dict[str, Any]] = []  # segments, until the ack after them (or the end)
        try:
            async for raw in ws:
                if not isinstance(raw, str):
                    continue
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "error":
                    retry_after = self._error(msg, start, retry_after)
                elif kind == "ready":
                    self.tally.up = True
                    # a lossless sender waits for acks: it must be able to send a whole window
                    need = (msg["window_ms"] + 2 * msg["hop_ms"]) * self.rate // 1000
                    self.buffer.max_frames = max(self.buffer.max_frames, need + self.chunk)
                    self.room.set()
                elif kind == "segment":
                    held.append(msg)
                    continue
                elif kind == "moving":  # close 1012 follows; the ack before it is the newest
                    moving, retry_after = True, int(msg.get("retry_after_ms", 0))
                    continue
                elif kind == "ack" or (kind == "end" and self.stopped):
                    await self._release(held)
                elif kind == "end":  # the front ended the stream (it is stopping), not the client:
                    held.clear()  # its last segment is cut short; the stream goes on elsewhere
                    continue
                had_stream = bool(self.tally.epochs)
                if not self.tally.read(msg):
                    if kind == "ack":
                        self.buffer.acked(msg["samples"])
                        self.room.set()
                    continue
                await self.out.put(msg)
                if kind == "ready" and had_stream and down_since is not None:
                    if not msg["resumed"]:  # a new stream: its time 0 is where it began
                        self.offset_ms = self.replay_start * 1000 / self.rate
                    await self.out.put(ResumedEvent(type="resumed", url=url,
                        stream_id=msg["stream_id"], same_stream=bool(msg["resumed"]),
                        replay_from=self.replay_start, offset_ms=round(self.offset_ms, 3),
                        outage_ms=round((time.monotonic() - down_since) * 1000, 1)))  # fmt: skip
                    self.tally.resumes += 1
                if kind == "end":
                    return
        except websockets.ConnectionClosed:
            pass
        await self._release(held)
        code = ws.close_code
        if moving:
            raise _Closed(f"moving: the front is shutting down (closed {code})", retry_after, True)
        raise _Closed(f"closed {code}" if code else "connection lost", retry_after)

    async def _release(self, held: list[dict[str, Any]]) -> None:
        for segment in held:
            if self.tally.read(segment):
                await self.out.put(segment)  # type: ignore[arg-type]
        held.clear()

    def _error(self, msg: dict[str, Any], start: dict[str, Any], retry_after: int | None) -> Any:
        code = msg.get("code")
        if code in FATAL_CODES:
            raise _Fatal(f"{code}: {msg.get('message')}")
        if code in REFUSALS:
            self.tally.refusals += 1
            return msg.get("retry_after_ms", retry_after)
        if code == "resume_failed" and msg.get("reason") == "busy":  # a resume storm: not now
            raise _Closed("resume_failed: busy", 1_000)
        if code == "resume_failed":  # a new stream from the replay on: what it misses is lost
            lost = max(int(start.get("replay_from", 0)) - self.tally.acked_samples, 0)
            self.tally.resume_failed(lost, self.rate)
        return retry_after


async def stream(
    urls: str | Sequence[str],
    source: str | Path | np.ndarray,
    sample_rate: int | None = None,
    options: StreamOptions | None = None,
) -> AsyncIterator[ClientMessage]:
    """Stream ``source`` (an audio file voxlive can decode, or mono float32 samples in [-1, 1]
    at ``sample_rate`` Hz) to ``urls`` (one ``ws://…/audio`` URL, a load balancer's say, or the
    fronts to try in turn) and yield what comes back: the server's messages
    (:mod:`voxlive.protocol.messages`; acks, ``moving`` and repeats after a resume are left
    out), the client's ``reconnecting`` and ``resumed`` events, and last a ``summary``
    (:class:`voxlive.client.tally.Summary`). Raises ``FrameError`` or ``OSError`` for a file it
    cannot read, ``ValueError`` for a URL that is not ``ws://`` or ``wss://``.
    Safe to stop early (``break``): the connection is closed."""
    from voxlive.audio.decode import decode_file

    opts = options or StreamOptions()
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls or any(not u.startswith(("ws://", "wss://")) for u in urls):
        raise ValueError(f"urls: expected ws://HOST:PORT/audio or wss://…, got {urls!r}")
    if isinstance(source, str | Path):
        audio = await asyncio.to_thread(decode_file, source, opts.sample_rate)
        rate = opts.sample_rate
    else:
        audio, rate = np.asarray(source, np.float32).reshape(-1), sample_rate or opts.sample_rate
    out: asyncio.Queue[ClientMessage | None] = asyncio.Queue(QUEUE_MESSAGES)
    run = _Run(urls, audio, rate, opts, out)
    task = asyncio.create_task(run.main())
    try:
        while (msg := await out.get()) is not None:
            yield msg
        await task  # its exception, if any
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
