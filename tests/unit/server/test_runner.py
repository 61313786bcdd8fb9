"""Serving under uvicorn (server/runner.py): the configuration's bounds and fixed values, query
strings kept out of the logs of both of uvicorn's loggers, and the shutdown order (stop
listening, drain, then uvicorn's own)."""

from __future__ import annotations

import asyncio
import logging
import signal

from voxlive.server.protocols import GuardedWebSocket
from voxlive.server.runner import MAX_HEADER_BYTES, RedactQuery, Server, uvicorn_config
from voxlive.settings import Settings


def test_keep_alive_and_graceful_shutdown_are_five_seconds() -> None:
    app = object()
    config = uvicorn_config(app, Settings(model="pitch"))
    assert config.app is app
    assert (config.timeout_keep_alive, config.timeout_graceful_shutdown) == (5, 5)


def test_both_uvicorn_loggers_redact_query_strings() -> None:
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, RedactQuery)]:
            logger.removeFilter(f)
    uvicorn_config(object(), Settings(model="pitch"))
    for name in ("uvicorn.error", "uvicorn.access"):
        assert sum(isinstance(f, RedactQuery) for f in logging.getLogger(name).filters) == 1, name


def test_mapping_arguments_are_left_as_they_are() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "%(path)s",
                               ({"path": "/healthz"},), None)  # fmt: skip
    assert RedactQuery().filter(record)
    assert record.args == {"path": "/healthz"} and record.getMessage() == "/healthz"


class _Listener:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def close(self) -> None:
        self.log.append("listener closed")

    async def wait_closed(self) -> None:
        pass


class _Socket:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def close(self) -> None:
        self.log.append("socket closed")


class _Service:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.settings = Settings(model="pitch", drain_timeout_ms=2500)

    async def drain(self, timeout_s: float) -> None:
        self.log.append(f"drain {timeout_s}")

    def begin_drain(self) -> None:
        self.log.append("agent says drain")


def test_shutdown_stops_listening_drains_for_drain_timeout_ms_then_hands_over() -> None:
    log: list[str] = []
    server = Server(uvicorn_config(object(), Settings(model="pitch")), _Service(log))  # type: ignore[arg-type]
    server.servers = [_Listener(log)]  # type: ignore[list-item]
    server.force_exit = True  # no lifespan was started here

    async def go() -> None:
        await server.shutdown(sockets=[_Socket(log)])  # type: ignore[list-item]

    asyncio.run(go())
    # uvicorn's own shutdown closes the listener again (harmless) and the sockets it was given
    assert log == ["listener closed", "drain 2.5", "listener closed", "socket closed"]


def test_sigterm_turns_the_agent_to_drain_before_uvicorn_hears_it() -> None:
    log: list[str] = []
    server = Server(uvicorn_config(object(), Settings(model="pitch")), _Service(log))  # type: ignore[arg-type]
    server.handle_exit(signal.SIGTERM, None)
    assert log == ["agent says drain"] and server.should_exit  # the drain itself follows


# ---- the configuration's bounds and the log filter -----------------------------------------------
def test_uvicorn_is_configured_with_every_bound() -> None:
    settings = Settings(model="pitch", max_frame_bytes=4096, header_timeout_ms=1500,
                        max_connections=70, port=8123)  # fmt: skip
    config = uvicorn_config(object(), settings)
    assert (config.ws_max_size, config.ws_per_message_deflate) == (4096, False)
    assert config.h11_max_incomplete_event_size == MAX_HEADER_BYTES == 16 * 1024
    assert (config.host, config.port) == ("127.0.0.1", 8123)
    assert config.http.header_timeout_s == 1.5 and config.http.max_connections == 70  # type: ignore[union-attr]
    assert issubclass(config.ws, GuardedWebSocket)  # type: ignore[arg-type]
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
