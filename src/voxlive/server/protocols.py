"""uvicorn's HTTP and WebSocket protocols with voxlive's bounds on what a socket may cost.

uvicorn leaves a few doors open that a hostile client walks through (every bound and where it
is enforced: docs/architecture.md, "Limits"):
- a socket that never completes a request is kept forever (idle and half-open sockets, headers
  sent a byte at a time): here the request's headers must arrive within ``header_timeout_s``
  of the connection (or of the previous response), else the socket is aborted;
- any number of sockets is accepted until the process runs out of file descriptors, and then
  every client fails: here a connection past ``max_connections`` is aborted at once;
- pings are answered whether or not the peer reads its pongs, so a client that pings and never
  reads grows the server's write buffer without bound: here a peer whose unread pongs pass
  ``max_pong_backlog_bytes`` is dropped;
- a close is flushed with ``transport.close()``, which waits for the peer to read what is
  buffered (forever, for a peer that never reads): here a close that cannot be written within
  ``close_timeout`` aborts the socket instead;
- every frame of a read (up to 256 KiB) is parsed at once, and every complete message in it
  queued, before reading pauses: 40,000 empty continuation frames are one read, ~1 s of loop.
  Here a read is parsed in slices of ``FEED_BYTES``, each frame is charged to a
  :class:`~voxlive.server.budget.FrameBudget` (a rate for every kind of frame, and fragment
  rules) as it is dispatched, and dispatching stops while a message waits for the app or the
  frame rate is spent (the rest of the slice, the read and the socket wait too): at most one
  message is queued per connection, at most one slice of frames is parsed ahead;
- the keepalive's pong deadline runs while the server itself is not reading the socket (a
  lossless stream held back), so a client that did answer is closed 1011: here the deadline
  waits while reading is held, and a keepalive close is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

from voxlive.server.budget import FrameBudget

log = logging.getLogger("voxlive")
FEED_BYTES = 4096  # parsed at a time: ~680 of the smallest frames


class GuardedHttp(H11Protocol):
    """h11 with a header deadline and connection budgets, in all and per source (class
    attributes set by :func:`guarded_protocols`).

    A connection past a budget first pushes out the oldest *idle* socket it competes with (no
    request in progress: a partial request line, or keep-alive between requests), and is
    refused only when there is none. So sockets that never finish a request cannot lock out
    anyone, a liveness probe included: they are the first to go."""

    header_timeout_s = 10.0
    max_connections = 512
    max_per_source = 64  # 0: no limit
    trusted: tuple[IPv4Network | IPv6Network, ...] = ()  # proxies: not counted per source
    # Open sockets per peer address, shared with the WebSocket class (an upgraded socket stays
    # counted until it closes). Counters (``cls._refused += 1``) write on the configured class.
    per_source: ClassVar[Counter[str]] = Counter()
    _refused = 0
    _evicted = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._source = self.client[0] if self.client else ""
        self._counted = self._going = False
        if not self._admit():
            cls = type(self)
            cls._refused += 1
            if cls._refused & (cls._refused - 1) == 0:
                log.warning(
                    "refused a connection from %s: %d open (limit %d), %d from it (limit %d); "
                    "%d so far", self._source, len(self.connections) - 1, self.max_connections,
                    self.per_source[self._source], self.max_per_source, cls._refused,
                )  # fmt: skip
            transport.abort()  # its descriptor is free again at once
            return
        self._counted = True
        self.per_source[self._source] += 1
        self._arm_deadline()

    def _admit(self) -> bool:
        """Room for this connection, pushing out the oldest idle socket it competes with."""
        over_all = len(self.connections) - 1 >= self.max_connections
        over_source = (
            self.max_per_source > 0
            and not _within(self._source, self.trusted)
            and self.per_source[self._source] >= self.max_per_source
        )
        if not (over_all or over_source):
            return True
        http = [c for c in self.connections if isinstance(c, GuardedHttp) and c is not self]
        idle = [
            c for c in http
            if c._counted and not c._going and c._between_requests()
            and c.conn.their_state is h11.IDLE and (not over_source or c._source == self._source)
        ]  # fmt: skip
        if not idle:
            return False
        victim = min(idle, key=lambda c: c._opened_at)
        victim._going = True  # its connection_lost comes on the next loop turn
        victim.transport.abort()
        cls = type(self)
        cls._evicted += 1
        if cls._evicted & (cls._evicted - 1) == 0:
            log.warning("closed an idle socket to make room for a new one; %d so far", cls._evicted)
        return True

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_deadline(self) -> None:
        self._opened_at = self.loop.time()  # of the connection, or since its last answer
        self._deadline = self.loop.call_later(self.header_timeout_s, self._on_deadline)

    def _on_deadline(self) -> None:
        self._deadline = None
        # After an upgrade the transport belongs to the WebSocket protocol: not ours to close.
        if self.transport.get_protocol() is self and self.conn.their_state is h11.IDLE:
            self.transport.abort()

    def handle_events(self) -> None:
        super().handle_events()
        if self._deadline is not None and self.conn.their_state is not h11.IDLE:
            self._deadline.cancel()  # the request's headers are in
            self._deadline = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._deadline is not None:  # armed after an earlier answer (pipelined requests)
            self._deadline.cancel()
        self._arm_deadline()  # the next request on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:  # set in connection_made, which asyncio calls first
            self._deadline.cancel()
        if self._counted:
            _uncount(self.per_source, self._source)
        super().connection_lost(exc)


def _within(address: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:  # a Unix socket's peer
        return False
    return any(ip in net for net in networks)


def _uncount(per_source: Counter[str], source: str) -> None:
    per_source[source] -= 1
    if per_source[source] <= 0:
        del per_source[source]  # the table holds open sockets' addresses only


class GuardedWebSocket(WebSocketsSansIOProtocol):
    """The websockets (sans-I/O) protocol with every frame charged, reads parsed in slices,
    bounded pongs, a keepalive that waits while the server holds the reader, and closes that
    cannot hang."""

    max_pong_backlog_bytes = 1 << 20
    close_timeout_s = 5.0
    per_source: ClassVar[Counter[str]] = Counter()  # shared with the HTTP class
    _refused = 0  # connections closed for their frames, logged every power of two

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unparsed = bytearray()  # at most one read (256 KiB): reading pauses while any
        self._events: deque[Request | Frame] = deque()  # parsed, at most one slice's frames
        self._frames = FrameBudget()
        self._held: asyncio.TimerHandle | None = None  # the frame rate holds the socket
        self._refused_frames = False  # closed for breaking the frame rules: parse no more

    # ---- reading in slices, one message at a time -------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._unparsed += data
        self._feed()

    def handle_events(self) -> None:
        for event in self.conn.events_received():  # a slice's worth, dispatched by _feed
            if isinstance(event, Request | Frame):
                self._events.append(event)

    def _feed(self) -> None:
        """Dispatch what is parsed, then parse a slice more, while nothing holds reading (a
        message waiting for the app, the frame rate); the socket is paused while anything is
        left."""
        while not self.transport.is_closing():
            while self._events and not self._holding():
                self._dispatch(self._events.popleft())
            if self._events or not self._unparsed or self._holding():
                break
            chunk = bytes(self._unparsed[:FEED_BYTES])
            del self._unparsed[:FEED_BYTES]
            super().data_received(chunk)  # parses it into self._events
        if self._unparsed or self._events or self._held is not None:
            self.transport.pause_reading()
        elif not self.read_paused and not self.transport.is_closing():
            self.transport.resume_reading()

    def _dispatch(self, event: Request | Frame) -> None:
        if isinstance(event, Request):
            self.handle_connect(event)
        elif event.opcode is Opcode.CONT:
            self.handle_cont(event)
        elif event.opcode is Opcode.TEXT:
            self.handle_text(event)
        elif event.opcode is Opcode.BINARY:
            self.handle_bytes(event)
        elif event.opcode is Opcode.PING:
            self.handle_ping()
        elif event.opcode is Opcode.PONG:
            self.handle_pong(event)
        else:
            self.handle_close(event)

    def _holding(self) -> bool:
        # A message waits for the app (uvicorn's read_paused), or the frame rate is spent.
        return (self.read_paused and not self.close_sent) or self._held is not None

    async def receive(self) -> Any:
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            self._feed()  # what was read and parsed first, then the socket
        return message

    def _release(self) -> None:
        self._held = None
        self._feed()

    # ---- charging frames --------------------------------------------------------------------
    def _charge(self, frame: Frame | None = None, *, first: bool = False) -> bool:
        """Charge one frame; False when the connection was closed for it (or before)."""
        if self._refused_frames:
            return False
        wait_s = self._frames.charge(self.loop.time())
        if wait_s > 0 and self._held is None:
            self._held = self.loop.call_later(wait_s, self._release)
        if frame is not None:
            broken = self._frames.data_frame(len(frame.data), first=first, fin=frame.fin)
            if broken is not None:
                self._close_for_frames(*broken)
                return False
        return True

    def _close_for_frames(self, code: int, reason: str) -> None:
        cls = type(self)
        cls._refused += 1
        if cls._refused & (cls._refused - 1) == 0:
            log.warning("closed a WebSocket client (%d): %s; %d so far", code, reason, cls._refused)
        self._refused_frames = True
        self._unparsed.clear()
        self._events.clear()
        self.conn.fail(code, reason[:120])  # a close reason fits in 123 bytes
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()
        self.loop.call_later(self.close_timeout_s, self.transport.abort)

    def handle_text(self, event: Frame) -> None:
        if self._charge(event, first=True):
            super().handle_text(event)

    def handle_bytes(self, event: Frame) -> None:
        if self._charge(event, first=True):
            super().handle_bytes(event)

    def handle_cont(self, event: Frame) -> None:
        if self._charge(event):
            super().handle_cont(event)

    def handle_ping(self) -> None:
        if not self._charge():
            return
        super().handle_ping()
        if self.transport.get_write_buffer_size() > self.max_pong_backlog_bytes:
            log.warning("dropped a WebSocket client that pings without reading its pongs")
            self.transport.abort()

    def handle_pong(self, event: Frame) -> None:
        if self._charge():
            super().handle_pong(event)

    def handle_close(self, event: Frame) -> None:
        if self._charge():
            super().handle_close(event)

    # ---- keepalive --------------------------------------------------------------------------
    def keepalive_timeout(self) -> None:
        if self._unparsed or self.read_paused or self._held is not None:
            # The pong may be in what the server has not read yet: wait for the reader.
            assert self.ping_timeout is not None  # the pong timer runs only with a timeout
            self.pong_timer = self.loop.call_later(self.ping_timeout, self.keepalive_timeout)
            return
        if not self.close_sent and not self.transport.is_closing():
            log.warning(
                "closed a WebSocket stream: no pong within %g s of a keepalive ping (1011)",
                self.ping_timeout,
            )
        super().keepalive_timeout()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._held is not None:
            self._held.cancel()
            self._held = None
        if self.client:  # counted by the HTTP protocol it was upgraded from
            _uncount(self.per_source, self.client[0])
        super().connection_lost(exc)

    # ---- closing ----------------------------------------------------------------------------
    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.close" and not self.writable.is_set():
            try:  # the peer does not read: give it close_timeout_s, then cut the socket
                await asyncio.wait_for(self.writable.wait(), self.close_timeout_s)
            except TimeoutError:
                self.transport.abort()
                return
        await super().send(message)
        if message["type"] == "websocket.close":
            self._feed()  # the peer's close reply may be in what is not parsed yet
            if self.close_timer is not None:
                # uvicorn would transport.close() here, which waits for the peer to read
                self.close_timer.cancel()
                self.close_timer = self.loop.call_later(self.close_timeout_s, self.transport.abort)


def guarded_protocols(
    *,
    header_timeout_s: float,
    max_connections: int,
    max_per_source: int = 64,
    trusted: tuple[str, ...] = (),
) -> tuple[type[GuardedHttp], type[GuardedWebSocket]]:
    """The protocol classes to hand to ``uvicorn.Config(http=..., ws=...)``: one pair per
    server, sharing one table of open sockets per address."""
    per_source: Counter[str] = Counter()
    http = type("VoxliveHttp", (GuardedHttp,), {
        "header_timeout_s": header_timeout_s, "max_connections": max_connections,
        "max_per_source": max_per_source, "per_source": per_source,
        "trusted": tuple(ip_network("::/0" if t == "*" else t, strict=False) for t in trusted)
        + ((ip_network("0.0.0.0/0"),) if "*" in trusted else ()),
    })  # fmt: skip
    ws = type("VoxliveWebSocket", (GuardedWebSocket,), {"per_source": per_source})
    return http, ws
