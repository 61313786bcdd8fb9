"""The HAProxy agent (server/agent.py): its line for each state of the front, the weight from
the headroom, and the socket answering one line per connection."""

from __future__ import annotations

import asyncio

import pytest

from voxlive.server.agent import Agent, reply, weight_percent


@pytest.mark.parametrize(
    ("status", "draining", "load", "line"),
    [
        ("ready", False, 0.0, "up ready 100%"),
        ("ready", False, 0.45, "up ready 50%"),  # half the headroom below 0.9 is left
        ("ready", False, 0.899, "up ready 1%"),  # never 0 %: that is what drain is for
        ("ready", False, 0.9, "up drain #full 0.90"),
        ("ready", False, 1.7, "up drain #full 1.70"),  # overloaded
        ("ready", True, 0.0, "up drain #stopping"),  # SIGTERM heard, still ready
        ("stopping", False, 0.0, "up drain #stopping"),
        ("loading", False, 0.0, "down #loading"),
        ("failed", False, 0.0, "down #failed"),
    ],
)
def test_the_line_for_each_state(status: str, draining: bool, load: float, line: str) -> None:
    assert reply(status, draining, load, drain_at=0.9) == line


def test_the_weight_falls_with_the_load_from_100_to_1_percent() -> None:
    weights = [weight_percent(load / 10, 1.0) for load in range(11)]
    assert weights == [100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 1]


class _Gauge:
    status, draining, value = "ready", False, 0.2

    def load(self) -> float:
        return self.value


async def test_each_connection_gets_the_current_line_and_is_closed() -> None:
    gauge = _Gauge()
    agent = Agent(gauge, "127.0.0.1", 0, drain_at=0.8)
    await agent.start()

    async def ask() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
        try:
            async with asyncio.timeout(2):
                return await reader.read()  # until the agent closes
        finally:
            writer.close()

    try:
        assert await ask() == b"up ready 75%\n"
        gauge.value = 0.85
        assert await ask() == b"up drain #full 0.85\n"
        gauge.draining = True
        assert await ask() == b"up drain #stopping\n"
    finally:
        await agent.stop()
    await agent.stop()  # idempotent
    with pytest.raises(OSError):
        await ask()
