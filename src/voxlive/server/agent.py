"""The HAProxy agent: this front's headroom, told to the load balancer.

HAProxy's ``agent-check`` opens a TCP connection to each server's agent port every
``agent-inter`` (1 s in deploy/haproxy) and reads one line. The agent answers from the capacity
gauge and closes:

- ``up ready 73%``: ready, with 73 % of its configured weight: the headroom left before the
  drain threshold, so ``leastconn`` sends fewer new streams to a front that is busier;
- ``up drain``: ready but near full (the load reached ``agent_drain_at``), or shutting down
  (SIGTERM: said at once, before the listeners close): no new stream is routed here, the open
  ones carry on. ``ready`` in a later answer ends the drain;
- ``down #loading`` (or ``#failed``): not ready; HAProxy takes the front out until ``up``.

The load is the larger of the gauge's utilization (windows offered / windows the model can
serve, see :class:`voxlive.pipeline.overload.Capacity`) and the stream slots taken
(open streams / ``max_streams``). :func:`reply` is pure; :class:`Agent` is the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

log = logging.getLogger(__name__)
WRITE_TIMEOUT_S = 1.0  # an agent connection that does not take its line in this long is dropped


class Gauge(Protocol):
    """What the agent reads of the service."""

    @property
    def status(self) -> str: ...

    @property
    def draining(self) -> bool: ...

    def load(self) -> float:
        """0.0 idle … 1.0 full: the larger of model utilization and stream slots taken."""
        ...


def weight_percent(load: float, drain_at: float) -> int:
    """The share of its weight a front at ``load`` gets: the headroom left before ``drain_at``,
    in percent, at least 1 (0 % would be a drain by another name)."""
    headroom = max(0.0, drain_at - load) / drain_at
    return max(1, min(100, round(100 * headroom)))


def reply(status: str, draining: bool, load: float, drain_at: float) -> str:
    """The agent's line (without the newline) for a front in ``status``."""
    if draining or status == "stopping":
        return "up drain #stopping"
    if status != "ready":
        return f"down #{status}"
    if load >= drain_at:
        return f"up drain #full {load:.2f}"
    return f"up ready {weight_percent(load, drain_at)}%"


class Agent:
    """The agent's TCP server on ``host:port``; :meth:`start` and :meth:`stop` from the
    lifespan. Each connection gets one line and is closed; nothing is read from it."""

    def __init__(self, gauge: Gauge, host: str, port: int, drain_at: float) -> None:
        self.gauge, self.host, self.port, self.drain_at = gauge, host, port, drain_at
        self._server: asyncio.Server | None = None

    def line(self) -> str:
        g = self.gauge
        return reply(g.status, g.draining, g.load(), self.drain_at)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._answer, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("HAProxy agent on %s:%d", self.host, self.port)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write((self.line() + "\n").encode())
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await writer.drain()
        except (OSError, TimeoutError):
            pass  # the checker left; it asks again next interval
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await writer.wait_closed()

    async def stop(self) -> None:
        """Stop answering (last, after the drain: the agent says ``drain`` until then)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
