"""Serving under uvicorn (server/runner.py): the configuration's fixed values, the log filter on
both of uvicorn's loggers, and the shutdown order (stop listening, drain, then uvicorn's own)."""

from __future__ import annotations

import asyncio
import logging

from voxlive.server.runner import RedactQuery, Server, uvicorn_config
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
