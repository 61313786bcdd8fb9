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
  ``close_timeout`` aborts the socket instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger("voxlive")


class GuardedHttp(H11Protocol):
    """h11 with a header deadline and a connection budget (class attributes set by
    :func:`guarded_protocols`)."""

    header_timeout_s = 10.0
    max_connections = 512
    # Connections refused for the budget, logged every power of two. ``cls._refused += 1`` writes
    # on the configured class, so each class made by guarded_protocols counts its own.
    _refused = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            cls = type(self)
            cls._refused += 1
            if cls._refused & (cls._refused - 1) == 0:
                log.warning(
                    "refused a connection: %d open, the limit is %d (max_connections); %d so far",
                    len(self.connections) - 1, self.max_connections, cls._refused,
                )  # fmt: skip
            transport.abort()  # its descriptor is free again at once
            return
        self._arm_deadline()

    def _arm_deadline(self) -> None:
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
        super().connection_lost(exc)


class GuardedWebSocket(WebSocketsSansIOProtocol):
    """The websockets (sans-I/O) protocol with bounded pongs and closes that cannot hang."""

    max_pong_backlog_bytes = 1 << 20
    close_timeout_s = 5.0

    def handle_ping(self) -> None:
        super().handle_ping()
        if self.transport.get_write_buffer_size() > self.max_pong_backlog_bytes:
            log.warning("dropped a WebSocket client that pings without reading its pongs")
            self.transport.abort()

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.close" and not self.writable.is_set():
            try:  # the peer does not read: give it close_timeout_s, then cut the socket
                await asyncio.wait_for(self.writable.wait(), self.close_timeout_s)
            except TimeoutError:
                self.transport.abort()
                return
        await super().send(message)
        if message["type"] == "websocket.close" and self.close_timer is not None:
            # uvicorn would transport.close() here, which waits for the peer to read
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout_s, self.transport.abort)


def guarded_protocols(
    *, header_timeout_s: float, max_connections: int
) -> tuple[type[GuardedHttp], type[GuardedWebSocket]]:
    """The protocol classes to hand to ``uvicorn.Config(http=..., ws=...)``."""
    http = type("VoxliveHttp", (GuardedHttp,), {
        "header_timeout_s": header_timeout_s, "max_connections": max_connections,
    })  # fmt: skip
    return http, GuardedWebSocket
