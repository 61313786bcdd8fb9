"""What a WebSocket peer that does not read may cost, without sockets: uvicorn's sans-I/O
WebSocket protocol with voxlive's bounds (pongs, closes) driven through a fake transport, with a
real websockets client protocol on the other side to read what the server wrote.
(tests/integration/test_attacks.py does the same over real sockets.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from fakes import Transport
from voxlive.server.protocols import GuardedWebSocket

CLOSE_S = 0.1  # the close time-out these tests run with
PING = b"p" * 123  # its pong is a 125-byte frame (2 bytes of header, unmasked)


@dataclass
class Peer:
    """The server's protocol, its transport, and the client at the other end."""

    server: GuardedWebSocket
    transport: Transport
    client: ClientProtocol

    def feed(self) -> None:
        """The client sends what it has queued."""
        self.server.data_received(b"".join(self.client.data_to_send()))

    def frames(self) -> list[Frame]:
        """The client reads what the server wrote since it last read."""
        self.client.receive_data(self.transport.peer_reads())
        return [e for e in self.client.events_received() if isinstance(e, Frame)]


@contextlib.asynccontextmanager
async def accepted() -> AsyncIterator[Peer]:
    """A WebSocket the app accepted and holds open until the block ends; the test sends on the
    app's behalf with ``peer.server.send``."""
    done = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await done.wait()

    config = uvicorn.Config(app, log_level="critical")
    config.load()
    server = GuardedWebSocket(config=config, server_state=ServerState(), app_state={})
    server.close_timeout_s = CLOSE_S
    transport = Transport()
    transport.protocol = server
    server.connection_made(transport)
    client = ClientProtocol(parse_uri("ws://localhost/audio"))
    client.send_request(client.connect())
    peer = Peer(server, transport, client)
    peer.feed()
    while client.handshake_exc is None and client.state.name == "CONNECTING":
        await asyncio.sleep(0)
        client.receive_data(transport.peer_reads())
    assert client.state.name == "OPEN"
    try:
        yield peer
    finally:
        done.set()
        await asyncio.sleep(0)


async def test_pings_are_answered_until_unread_pongs_pass_the_backlog_then_the_peer_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with accepted() as peer:
        peer.server.max_pong_backlog_bytes = 2 * 125
        for _ in range(3):  # a reading client pings as often as it likes
            peer.client.send_ping(PING)
            peer.feed()
            assert [(f.opcode, f.data) for f in peer.frames()] == [(Opcode.PONG, PING)]
        with caplog.at_level(logging.WARNING, logger="voxlive"):
            for _ in range(2):  # 250 bytes of unread pongs: exactly the backlog, still fine
                peer.client.send_ping(PING)
                peer.feed()
            assert not peer.transport.aborted and not caplog.records
            peer.client.send_ping(PING)
            peer.feed()
        assert peer.transport.aborted
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("WARNING", "dropped a WebSocket client that pings without reading its pongs")
        ]


async def test_a_close_to_a_peer_that_does_not_read_is_cut_after_the_close_time_out() -> None:
    async with accepted() as peer:
        peer.server.pause_writing()  # the transport's buffer is full: the peer does not read
        await asyncio.wait_for(peer.server.send({"type": "websocket.close", "code": 1000}), 1)
        assert peer.transport.aborted
        assert peer.frames() == []  # no close frame was queued behind the unread data


async def test_a_close_waits_for_a_slow_reader_then_is_sent() -> None:
    async with accepted() as peer:
        peer.server.pause_writing()
        closing = asyncio.create_task(
            peer.server.send({"type": "websocket.close", "code": 1001, "reason": "bye"})
        )
        await asyncio.sleep(CLOSE_S / 10)
        peer.server.resume_writing()  # the peer caught up within the time-out
        await asyncio.wait_for(closing, 1)
        [frame] = peer.frames()
        assert Close.parse(frame.data) == Close(1001, "bye") and not peer.transport.aborted


async def test_a_close_the_peer_does_not_answer_is_cut_and_one_it_answers_is_closed() -> None:
    async with accepted() as silent:
        await silent.server.send({"type": "websocket.close", "code": 1000})
        assert [f.opcode for f in silent.frames()] == [Opcode.CLOSE]
        await asyncio.sleep(2 * CLOSE_S)
        assert silent.transport.aborted  # not transport.close(), which waits for a reader
    async with accepted() as polite:
        await polite.server.send({"type": "websocket.close", "code": 1000})
        assert [f.opcode for f in polite.frames()] == [Opcode.CLOSE]
        polite.feed()  # the client's websockets protocol answered the close
        await asyncio.sleep(2 * CLOSE_S)
        assert polite.transport.closing and not polite.transport.aborted


async def test_a_data_message_to_a_slow_reader_waits_and_is_never_cut() -> None:
    async with accepted() as peer:
        peer.server.pause_writing()
        sending = asyncio.create_task(peer.server.send({"type": "websocket.send", "text": "hi"}))
        await asyncio.sleep(2 * CLOSE_S)  # longer than a close may wait: back-pressure, not a cut
        assert not sending.done() and not peer.transport.aborted
        peer.server.resume_writing()
        await asyncio.wait_for(sending, 1)
        [frame] = peer.frames()
        assert (frame.opcode, frame.data) == (Opcode.TEXT, b"hi")


async def test_a_close_that_crosses_the_peers_close_ends_quietly() -> None:
    """The peer's close came first: uvicorn echoed it and is closing the transport, so the app's
    own close (sent before the connection is lost) writes nothing and arms no timer."""
    async with accepted() as peer:
        peer.client.send_close(1000, "bye")
        peer.feed()
        await peer.server.send({"type": "websocket.close", "code": 1001})
        [frame] = peer.frames()
        assert Close.parse(frame.data) == Close(1000, "bye")  # the echo, and nothing after it
        assert peer.server.close_timer is None and not peer.transport.aborted
