"""What a socket may cost, without sockets: uvicorn's HTTP protocol with voxlive's connection
budget and header deadline driven through a fake transport, the uvicorn configuration's bounds,
and query strings kept out of the logs. (tests/integration/test_attacks.py does the same over
real sockets.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from voxlive.server.protocols import GuardedHttp, GuardedWebSocket, guarded_protocols
from voxlive.server.runner import MAX_HEADER_BYTES, RedactQuery, uvicorn_config
from voxlive.settings import Settings


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False
        self.closing = False
        self.written = b""
        self.protocol: Any = None

    def abort(self) -> None:
        self.aborted = True
        self.closing = True

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: Any) -> None:
        self.written += bytes(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def get_protocol(self) -> Any:
        return self.protocol

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _connect(http: type[GuardedHttp], state: ServerState) -> tuple[GuardedHttp, Transport]:
    config = uvicorn.Config(_app, log_level="critical")
    config.load()
    proto = http(config=config, server_state=state, app_state={})
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
