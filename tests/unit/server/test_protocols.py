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
from voxlive.server.budget import MAX_FRAGMENTS, MIN_FRAGMENT_BYTES, FrameBudget
from voxlive.server.protocols import (
    CONNECT_RATE_PER_S,
    FEED_BYTES,
    GuardedHttp,
    GuardedWebSocket,
    guarded_protocols,
)


# ---- HTTP: the connection budget and the header deadline -----------------------------------------
async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _connect(
    http: type[GuardedHttp],
    state: ServerState,
    app: Any = _app,
    loop: Any = None,
    peer: str = "127.0.0.1",
) -> tuple[GuardedHttp, Transport]:
    config = uvicorn.Config(app, log_level="critical")
    config.load()
    proto = http(config=config, server_state=state, app_state={}, _loop=loop)
    transport = Transport(peer)
    transport.protocol = proto
    proto.connection_made(transport)
    return proto, transport


async def _never_answers(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.Event().wait()  # a request in progress for as long as the test runs


async def test_past_the_budget_the_oldest_idle_socket_gives_way() -> None:
    http, ws = guarded_protocols(header_timeout_s=10.0, max_connections=2)
    assert issubclass(ws, GuardedWebSocket) and ws.per_source is http.per_source
    assert http.max_connections == 2 and http.header_timeout_s == 10.0
    state = ServerState()
    loop = asyncio.get_running_loop()
    old, old_t = _connect(http, state, loop=loop)
    await asyncio.sleep(MS)
    partial, partial_t = _connect(http, state, loop=loop)
    partial.data_received(b"GET /healthz HT")  # part of a request line: still idle
    new, new_t = _connect(http, state, loop=loop)
    assert (old_t.aborted, partial_t.aborted, new_t.aborted) == (True, False, False)
    assert http._evicted == 1 and http._refused == 0 and GuardedHttp._evicted == 0
    for proto in (old, partial, new):
        proto.connection_lost(None)
    assert not http.per_source  # the table holds open sockets only


async def test_past_the_budget_with_no_idle_socket_the_new_one_is_refused() -> None:
    http, _ = guarded_protocols(header_timeout_s=10.0, max_connections=2)
    state = ServerState()
    loop = asyncio.get_running_loop()
    busy = [_connect(http, state, _never_answers, loop) for _ in range(2)]
    for proto, _ in busy:
        proto.data_received(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await asyncio.sleep(MS)
    _, refused = _connect(http, state, loop=loop)
    assert refused.aborted and not any(t.aborted for _, t in busy)
    assert http._refused == 1 and GuardedHttp._refused == 0  # counted per configured class
    for proto, _ in busy:
        proto.connection_lost(None)
    _, again = _connect(http, state, loop=loop)
    assert not again.aborted


async def test_one_address_past_its_share_pushes_out_its_own_idle_sockets_only() -> None:
    http, _ = guarded_protocols(header_timeout_s=10.0, max_connections=10, max_per_source=2)
    state = ServerState()
    loop = asyncio.get_running_loop()
    other, other_t = _connect(http, state, loop=loop, peer="127.0.0.9")  # the oldest of all
    mine = [_connect(http, state, loop=loop, peer="127.0.0.2") for _ in range(3)]
    assert [t.aborted for _, t in mine] == [True, False, False] and not other_t.aborted
    assert http.per_source["127.0.0.2"] == 3  # the evicted one's connection_lost comes next
    mine[0][0].connection_lost(None)
    assert http.per_source == {"127.0.0.2": 2, "127.0.0.9": 1}
    for proto, _ in [*mine[1:], (other, other_t)]:
        proto.connection_lost(None)


async def test_new_connections_past_an_addresss_rate_are_refused_at_once() -> None:
    http, _ = guarded_protocols(header_timeout_s=10.0, max_connections=1000, max_per_source=60)
    state, timers = ServerState(), Timers()  # a clock that stands still: no refill
    conns = [_connect(http, state, loop=timers, peer="127.0.0.2") for _ in range(61)]
    assert [t.aborted for _, t in conns] == [False] * 60 + [True]  # a burst of max_per_source
    _, other = _connect(http, state, loop=timers, peer="127.0.0.3")
    assert not other.aborted  # another address has its own rate
    timers.advance(2 / CONNECT_RATE_PER_S)  # the refused one paid too: two connections' worth
    conns[0][0].connection_lost(None)  # (room under the per-address cap)
    _, later = _connect(http, state, loop=timers, peer="127.0.0.2")
    assert not later.aborted
    for proto, _ in conns[1:]:
        proto.connection_lost(None)
    assert http._refused == 1


async def test_a_trusted_proxy_is_not_capped_per_source() -> None:
    http, _ = guarded_protocols(
        header_timeout_s=10.0, max_connections=10, max_per_source=1, trusted=("10.0.0.0/8",)
    )
    state = ServerState()
    conns = [_connect(http, state, peer="10.1.2.3") for _ in range(3)]
    assert not any(t.aborted for _, t in conns)
    for proto, _ in conns:
        proto.connection_lost(None)


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
    loop = asyncio.get_running_loop()
    kept, _ = _connect(http, state, _never_answers, loop)
    kept.data_received(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await asyncio.sleep(MS)
    with caplog.at_level(logging.WARNING, logger="voxlive"):
        for _ in range(5):
            refused, transport = _connect(http, state, loop=loop)
            assert transport.aborted
            refused.connection_lost(None)  # what asyncio does next for an aborted socket
    assert [r.getMessage() for r in caplog.records] == [
        f"refused a connection from 127.0.0.1: 1 open (limit 1), 1 from it (limit 64), none idle; "
        f"{n} so far"
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


# ---- WebSocket: every frame charged, reads parsed in slices, a keepalive that waits -----------------
def _close_frame(peer: Peer) -> Close:
    closes = [Close.parse(f.data) for f in peer.frames() if f.opcode is Opcode.CLOSE]
    assert len(closes) == 1, closes
    return closes[0]


async def test_a_message_in_more_fragments_than_allowed_closes_the_connection_1009() -> None:
    async with accepted() as peer:
        peer.client.send_binary(b"x" * 512, fin=False)
        for _ in range(MAX_FRAGMENTS - 2):
            peer.client.send_continuation(b"x" * 512, fin=False)
        peer.client.send_continuation(b"x", fin=True)  # exactly MAX_FRAGMENTS: a message
        peer.feed()
        assert not peer.transport.closing and peer.server.queue.qsize() == 1
        await peer.server.receive()
        peer.client.send_binary(b"x" * 512, fin=False)
        for _ in range(MAX_FRAGMENTS):  # one more than allowed
            peer.client.send_continuation(b"x" * 512, fin=False)
        peer.feed()
        assert peer.transport.closing
        assert _close_frame(peer).code == 1009
        assert peer.server.queue.qsize() == 0  # nothing of it reached the app


async def test_an_empty_or_tiny_fragment_closes_the_connection_1008() -> None:
    for first in (b"", b"ab", b"x" * (MIN_FRAGMENT_BYTES - 1)):
        async with accepted() as peer:
            peer.client.send_binary(first, fin=False)
            peer.feed()
            assert peer.transport.closing
            close = _close_frame(peer)
            assert close.code == 1008
            assert close.reason == (
                f"expected fragments of at least {MIN_FRAGMENT_BYTES} bytes, got {len(first)}"
            )


async def test_frames_past_the_rate_hold_the_socket_until_the_budget_refills() -> None:
    async with accepted() as peer:
        peer.server._frames = FrameBudget(rate_per_s=500)
        for _ in range(1000):  # 6 bytes each: two slices of FEED_BYTES
            peer.client.send_ping(b"")
        peer.feed()
        answered = len(peer.frames())
        # websockets queues a pong as it parses a ping: the first slice's, then the rate held it
        assert answered == FEED_BYTES // 6
        assert peer.transport.paused and peer.server._held is not None
        pongs = [answered]
        await eventually(  # the deficit refills at 500 frames/s: about 1 s for the rest
            lambda: pongs.append(len(peer.frames())) or sum(pongs) == 1000, "every ping answered"
        )
        await eventually(lambda: not peer.transport.paused, "the socket read again")


async def test_one_message_at_a_time_waits_for_the_app_and_the_rest_of_the_read_with_it() -> None:
    async with accepted() as peer:
        for i in range(10):
            peer.client.send_binary(bytes([i]) * 100)
        peer.feed()  # one read carrying ten messages
        assert peer.server.queue.qsize() == 1 and peer.transport.paused
        got = [(await peer.server.receive())["bytes"][0] for _ in range(10)]
        assert got == list(range(10))  # in order, none lost
        assert not peer.transport.paused


async def test_the_keepalive_waits_while_the_server_holds_the_reader(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with accepted() as peer:
        server = peer.server
        server.ping_timeout = 0.05
        peer.client.send_binary(b"audio")
        peer.feed()  # a message the app has not read: the server holds the reader
        with caplog.at_level(logging.WARNING, logger="voxlive"):
            server.keepalive_timeout()
            assert not peer.transport.closing and server.pong_timer is not None
            server.pong_timer.cancel()
            await server.receive()  # the app reads: nothing is held any more
            server.keepalive_timeout()
        assert peer.transport.closing and _close_frame(peer).code == 1011
        assert [r.getMessage() for r in caplog.records] == [
            "closed a WebSocket stream: no pong within 0.05 s of a keepalive ping (1011)"
        ]
