"""What a socket may cost, without sockets: uvicorn's HTTP protocol with voxlive's connection
budget and header deadline driven through a fake transport, the uvicorn configuration's bounds,
and query strings kept out of the logs. (tests/integration/test_attacks.py does the same over
real sockets.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from tests.fakes import Transport
from tests.helpers import eventually
from voxlive.server.protocols import GuardedHttp, GuardedWebSocket, guarded_protocols
from voxlive.server.runner import MAX_HEADER_BYTES, RedactQuery, uvicorn_config
from voxlive.settings import Settings


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
    await asyncio.sleep(0.2)
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
    await asyncio.sleep(0.1)
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
    await asyncio.sleep(0.1)  # the deadline armed after the first answer has passed
    assert not transport.aborted
    release.set()
    await eventually(lambda: transport.aborted, "the idle connection aborted")
    assert b"/slow" in (transport.written_at_abort or b"")
    proto.connection_lost(None)


class Timers:
    """The running loop, but with a clock that moves only when told: timers set with
    ``call_later`` run in :meth:`advance`."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._now = 0.0
        self._timers: list[asyncio.TimerHandle] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    def time(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        timer = asyncio.TimerHandle(self._now + delay, callback, args, self._loop)
        self._timers.append(timer)
        return timer

    def advance(self, to: float) -> None:
        self._now = to
        for timer in sorted(self._timers, key=lambda t: t.when()):
            if timer.when() <= to:
                self._timers.remove(timer)
                if not timer.cancelled():
                    timer._run()


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


def test_uvicorn_is_configured_with_every_bound() -> None:
    settings = Settings(model="pitch", max_frame_bytes=4096, header_timeout_ms=1500,
                        max_connections=70, port=8123)  # fmt: skip
    config = uvicorn_config(object(), settings)
    assert (config.ws_max_size, config.ws_per_message_deflate) == (4096, False)
    assert config.h11_max_incomplete_event_size == MAX_HEADER_BYTES == 16 * 1024
    assert (config.host, config.port) == ("127.0.0.1", 8123)
    assert config.http.header_timeout_s == 1.5 and config.http.max_connections == 70  # type: ignore[union-attr]
    assert config.ws is GuardedWebSocket
    assert uvicorn_config(object(), settings, port=9).port == 9
    filters = logging.getLogger("uvicorn.access").filters
    assert sum(isinstance(f, RedactQuery) for f in filters) == 1  # added once, however often


def test_query_strings_are_redacted_from_log_lines() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s"',
                               ("127.0.0.1", "GET", "/audio?token=s3cret&x=1"), None)  # fmt: skip
    assert RedactQuery().filter(record)
    assert record.args == ("127.0.0.1", "GET", "/audio?…")
    plain = logging.LogRecord("x", logging.INFO, "", 0, "%d", (5,), None)
    assert RedactQuery().filter(plain) and plain.args == (5,)
