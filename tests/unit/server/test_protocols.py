"""What a socket may cost, without sockets (server/protocols.py): uvicorn's HTTP protocol with
voxlive's connection budget and header deadline driven through a fake transport, and its
sans-I/O WebSocket protocol with voxlive's bounds (pongs, closes), with a real websockets client
protocol on the other side to read what the server wrote. (tests/integration/test_attacks.py
does the same over real sockets.)"""

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

from tests.fakes import Timers, Transport
from tests.helpers import MS, eventually
from voxlive.server.protocols import GuardedHttp, GuardedWebSocket, guarded_protocols


# ---- HTTP: the connection budget and the header deadline -----------------------------------------
async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _connect(
    http: type[GuardedHttp], state: ServerState, app: Any = _app, loop: Any = None
) -> tuple[GuardedHttp, Transport]:
    config = uvicorn.Config(app, log_level="critical")
    config.load()
    proto = http(config=config, server_state=state, app_state={}, _loop=loop)
    transport = Transport()
    transport.protocol = proto
    proto.connection_made(transport)
    return proto, transport


async def test_connections_past_the_budget_are_aborted_at_once() -> None:
    http, ws = guarded_protocols(header_timeout_s=10.0, max_connections=2)
    assert ws is GuardedWebSocket and http.max_connections == 2 and http.header_timeout_s == 10.0
    state = ServerState()
    conns = [_connect(http, state) for _ in range(3)]
    assert [t.aborted for _, t in conns] == [False, False, True]  # exactly the limit is fine
    assert http._refused == 1 and GuardedHttp._refused == 0  # counted per configured class
    for proto, _ in conns[:2]:
        proto.connection_lost(None)
    _, again = _connect(http, state)
    assert not again.aborted


async def test_a_socket_that_sends_no_complete_request_head_is_aborted_after_the_deadline() -> None:
    http, _ = guarded_protocols(header_timeout_s=0.05, max_connections=10)
    state = ServerState()
    idle, idle_t = _connect(http, state)
    trickle, trickle_t = _connect(http, state)
    trickle.data_received(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # no blank line yet
    done, done_t = _connect(http, state)
    assert trickle._deadline is not None  # a partial head does not stop the clock
    done.data_received(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert done._deadline is None  # the head is in: no deadline while the app answers
    await asyncio.sleep(200 * MS)
    assert idle_t.aborted and trickle_t.aborted
    assert b"200" in done_t.written
    assert done_t.aborted  # then idle on keep-alive: the next head is due within the deadline
    for proto in (idle, trickle, done):
        proto.connection_lost(None)


async def test_refused_connections_are_logged_at_every_power_of_two(
    caplog: pytest.LogCaptureFixture,
) -> None:
    http, _ = guarded_protocols(header_timeout_s=10.0, max_connections=1)
    state = ServerState()
    kept, _ = _connect(http, state)
    with caplog.at_level(logging.WARNING, logger="voxlive"):
        for _ in range(5):
            refused, transport = _connect(http, state)
            assert transport.aborted
            refused.connection_lost(None)  # what asyncio does next for an aborted socket
    assert [r.getMessage() for r in caplog.records] == [
        f"refused a connection: 1 open, the limit is 1 (max_connections); {n} so far"
        for n in (1, 2, 4)
    ]
    assert state.connections == {kept}
    kept.connection_lost(None)


async def test_a_connection_that_is_gone_is_not_aborted_by_its_deadline() -> None:
    http, _ = guarded_protocols(header_timeout_s=0.05, max_connections=10)
    state = ServerState()
    clean, clean_t = _connect(http, state)
    reset, reset_t = _connect(http, state)
    clean.connection_lost(None)
    reset.connection_lost(ConnectionResetError())
    await asyncio.sleep(100 * MS)
    assert clean_t.closing and not clean_t.aborted
    assert not reset_t.closing  # uvicorn closes only after a clean end; the error is passed on
    assert not state.connections


async def test_a_pipelined_request_is_not_cut_by_the_deadline_while_it_is_answered() -> None:
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await release.wait()  # longer than the header deadline
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    http, _ = guarded_protocols(header_timeout_s=0.05, max_connections=10)
    proto, transport = _connect(http, ServerState(), app)
    proto.data_received(
        b"GET /fast HTTP/1.1\r\nHost: localhost\r\n\r\nGET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    await eventually(lambda: b"/fast" in transport.written, "the first answer")
    await asyncio.sleep(100 * MS)  # the deadline armed after the first answer has passed
    assert not transport.aborted
    release.set()
    await eventually(lambda: transport.aborted, "the idle connection aborted")
    assert b"/slow" in (transport.written_at_abort or b"")
    proto.connection_lost(None)


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


async def test_each_answer_on_a_keep_alive_connection_restarts_the_header_deadline() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    http, _ = guarded_protocols(header_timeout_s=1.0, max_connections=10)
    timers = Timers()
    proto, transport = _connect(http, ServerState(), app, loop=timers)
    proto.data_received(_get("/a") + _get("/b"))  # pipelined: both answered at time 0
    await eventually(lambda: b"/b" in transport.written, "both answers")
    timers.advance(0.5)
    proto.data_received(_get("/c"))
    await eventually(lambda: b"/c" in transport.written, "the third answer")
    timers.advance(1.2)  # 1.2 s after the first two answers, 0.7 s after the last
    assert not transport.aborted
    timers.advance(1.6)
    assert transport.aborted
    proto.connection_lost(None)


async def test_a_slow_pipelined_answer_gets_the_whole_header_deadline_after_it() -> None:
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    http, _ = guarded_protocols(header_timeout_s=1.0, max_connections=10)
    timers = Timers()
    proto, transport = _connect(http, ServerState(), app, loop=timers)
    proto.data_received(_get("/a") + _get("/slow"))
    await eventually(lambda: b"/a" in transport.written, "the first answer")
    timers.advance(0.9)
    release.set()
    await eventually(lambda: b"/slow" in transport.written, "the slow answer")
    timers.advance(1.5)  # 1.5 s after the first answer, 0.6 s after the last
    assert not transport.aborted
    timers.advance(2.0)
    assert transport.aborted
    proto.connection_lost(None)


# ---- WebSocket: pongs a peer does not read, closes it does not answer ----------------------------
CLOSE_S = 100 * MS  # the close time-out these tests run with


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
        await asyncio.wait_for(
            peer.server.send({"type": "websocket.close", "code": 1000}), 1_000 * MS
        )
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
        await asyncio.wait_for(closing, 1_000 * MS)
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
        await asyncio.wait_for(sending, 1_000 * MS)
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
