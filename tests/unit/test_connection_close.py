"""How a connection ends, without a socket (the fake WebSocket of test_connection.py in front of
a real Service): deadlines that a later request brings forward, shutdown with nothing left to
wait for, closes requested twice, clients that stop reading or go away mid-send, and sends or
closes that fail."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

from fakes import FakeClassifier, VirtualClock
from helpers import eventually
from unit.test_connection import RATE, FakeSocket, run, service, tone
from voxlive.server.connection import TIMEOUT_DRAIN_S, Connection
from voxlive.server.service import Service

LOGGER = "voxlive.server.connection"


class SlowTail(FakeClassifier):
    """Answers at once, except for a batch holding a window with a sample louder than 0.6:
    that one takes ``slow_s`` (a tail still being classified when ``end`` is due)."""

    def __init__(self, slow_s: float) -> None:
        super().__init__(sample_rate=RATE)
        self.slow_s = slow_s

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if (batch.max(axis=1) > 0.6).any():
            time.sleep(self.slow_s)
        return super().predict(batch)


class SlowReader(FakeSocket):
    """A client that reads nothing until :attr:`reads` is set: every send waits for it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reads = asyncio.Event()
        self.waiting = False  # a send waits for the client to read

    async def send_text(self, text: str) -> None:
        self.waiting = True
        await self.reads.wait()
        await super().send_text(text)


def start(svc: Service, ws: FakeSocket) -> tuple[Connection, asyncio.Task[None]]:
    """A connection running in a task of its own, while the test goes on."""
    conn = Connection(ws, svc)  # type: ignore[arg-type]
    return conn, asyncio.create_task(conn.run())


@pytest.mark.parametrize("drain_s", [0.0, 0.1])
async def test_shutdown_after_stop_brings_the_end_forward_but_keeps_the_stops_close(
    drain_s: float,
) -> None:
    async with service(classifier=SlowTail(slow_s=0.6), hop_ms=200) as svc:
        ws = FakeSocket()
        ws.audio(tone(400))  # two windows
        ws.audio(tone(100, level=0.9))  # cut as a tail window at stop, and slow to classify
        conn, task = start(svc, ws)
        await eventually(lambda: len(ws.of("result")) == 2, "the two full windows' results")
        ws.text({"type": "stop"})  # draining, for up to 30 s
        await eventually(lambda: conn.state == "draining", "draining after stop")
        conn.shutdown(drain_s)  # end is due long before the tail's result
        await asyncio.wait_for(task, 5)
    # the open segment is closed and sent with end, though the stream has not drained
    assert [m["type"] for m in ws.sent] == ["ready", "result", "result", "segment", "end"]
    assert (ws.of("segment")[0]["start_ms"], ws.of("segment")[0]["end_ms"]) == (0, 400)
    assert (ws.close_code, ws.close_reason) == (1000, "stream ended")  # the first close stands


async def test_a_close_requested_while_closing_or_closed_changes_nothing() -> None:
    async with service(max_frame_bytes=1024) as svc:
        ws = SlowReader()
        ws.audio(b"\x00" * 1026)  # fatal: closing, but the client reads nothing yet
        conn, task = start(svc, ws)
        await eventually(lambda: conn.state == "closing", "closing")
        conn.shutdown(0)
        ws.reads.set()
        await asyncio.wait_for(task, 5)
        conn.shutdown(0)  # and once closed
    assert [m["type"] for m in ws.sent] == ["error"]
    assert (ws.close_code, ws.close_reason) == (1009, "frame_too_large")
    assert conn.state == "closed"


async def test_nothing_sent_after_stop_is_read() -> None:
    async with service() as svc:
        ws = FakeSocket()
        ws.audio(tone(200))
        ws.text({"type": "stop"})
        ws.text({"type": "stop"})  # would be "expected nothing after stop" if it were read
        ws.audio(tone(100))
        await run(svc, ws)
    assert not ws.of("error") and ws.of("end")[0]["duration_ms"] == 200.0
    assert ws.close_code == 1000


class AnsweredClose(FakeSocket):
    """Like uvicorn: closing queues the client's disconnect for the reader at once."""

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await super().close(code, reason)
        self.vanish()
        await asyncio.sleep(0)  # the reader, still reading, sees it before it is cancelled


async def test_a_disconnect_read_while_the_server_closes_is_no_error() -> None:
    async with service() as svc:
        ws = AnsweredClose()
        ws.audio(tone(200))
        conn, task = start(svc, ws)
        await eventually(lambda: bool(ws.of("result")), "a result")
        conn.shutdown(0)
        await asyncio.wait_for(task, 5)  # raises if the reader's disconnect broke a state move
    assert ws.sent[-1]["type"] == "end" and (ws.close_code, ws.close_reason) == (
        1001,
        "server shutting down",
    )
    assert conn.state == "closed" and not svc.sessions.detached


class FailingSend(FakeSocket):
    """Sending a result raises ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def send_text(self, text: str) -> None:
        if json.loads(text)["type"] == "result":
            raise self.error
        await super().send_text(text)


async def test_an_unexpected_send_failure_is_logged_and_closes_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with service() as svc:
        ws = FailingSend(RuntimeError("boom"))
        ws.audio(tone(200))
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            conn = await run(svc, ws)
    assert [m["type"] for m in ws.sent] == ["ready"]
    assert (ws.close_code, ws.close_reason) == (1011, "internal error")
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert (record.levelname, record.getMessage()) == (
        "ERROR",
        "a stream's sending failed; closing it with 1011",
    )
    assert record.exc_info is not None and record.exc_info[1] is ws.error
    assert conn.state == "closed"


async def test_a_client_gone_mid_send_is_logged_at_debug_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with service() as svc:
        gone = WebSocketDisconnect(1006)
        ws = FailingSend(gone)
        ws.audio(tone(200))
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            conn, task = start(svc, ws)
            # the service's own "ready" line is captured too: wait for the connection's
            await eventually(
                lambda: any(r.name == LOGGER for r in caplog.records), "the connection's log"
            )
            ws.vanish()  # the reader sees the client go too
            await asyncio.wait_for(task, 5)
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER] == [
        ("DEBUG", f"a stream's client went away mid-send: {gone!r}")
    ]
    assert ws.close_code is None and conn.state == "closed"


class FailingClose(FakeSocket):
    """The first close raises; the next one works."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("close failed")
        await super().close(code, reason)


async def test_a_close_that_fails_is_logged_and_tried_again_as_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with service() as svc:
        ws = FailingClose()
        ws.audio(tone(200))
        ws.text({"type": "stop"})
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            conn = await run(svc, ws)
    assert ws.sent[-1]["type"] == "end"
    assert (ws.close_code, ws.close_reason) == (1011, "internal error")
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "a stream's sending failed; closing it with 1011"
    ]
    assert conn.state == "closed"


async def test_a_stream_within_max_stream_ms_ends_normally() -> None:
    async with service(max_stream_ms=5_000, idle_timeout_ms=0) as svc:
        ws = FakeSocket()
        ws.audio(tone(200))
        conn, task = start(svc, ws)
        await eventually(lambda: bool(ws.of("result")), "a result")
        ws.audio(tone(100))  # later, while the reader waits for the next message
        ws.text({"type": "stop"})
        await asyncio.wait_for(task, 5)
    assert not ws.of("error") and ws.of("end")[0]["duration_ms"] == 300.0
    assert (ws.close_code, ws.close_reason) == (1000, "stream ended")
    assert conn.state == "closed"


async def test_nothing_is_read_past_max_stream_ms() -> None:
    async with service(max_stream_ms=100, idle_timeout_ms=0) as svc:
        ws = FakeSocket()
        ws.audio(tone(50))
        conn, task = start(svc, ws)
        await asyncio.sleep(0.3)  # past the limit: the reader has stopped by now
        ws.audio(tone(100))
        await asyncio.wait_for(task, 5)
    assert [e["code"] for e in ws.of("error")] == ["max_duration"]
    assert ws.of("end")[0]["duration_ms"] == 50.0  # the late frame was never read
    assert (ws.close_code, ws.close_reason) == (1001, "max_duration")
    assert conn.state == "closed"


class Held(FakeClassifier):
    """Once :attr:`holding`, holds every call until :attr:`release` is set (warm-up is not
    held): the model is still busy when end is due."""

    def __init__(self) -> None:
        super().__init__(sample_rate=RATE)
        self.holding = False
        self.release = threading.Event()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self.holding:
            self.release.wait(10)
        return super().predict(batch)


class Timed(FakeSocket):
    """Records the loop's time of every message sent."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    async def send_text(self, text: str) -> None:
        self.at.append(asyncio.get_running_loop().time())
        await super().send_text(text)


async def test_on_a_virtual_clock_the_limit_and_the_drain_deadline_hold_to_the_instant() -> None:
    """max_duration comes exactly max_stream_ms after the stream started, and end exactly
    TIMEOUT_DRAIN_S after that, with the stream's two windows still in the model."""
    model = Held()
    async with service(model, max_stream_ms=1000, idle_timeout_ms=0,
                       inference_timeout_ms=600_000) as svc:  # fmt: skip
        ws, model.holding = Timed(), True
        ws.audio(tone(300))
        try:
            with VirtualClock() as clock:
                await run(svc, ws)
        finally:
            model.release.set()
    assert [m["type"] for m in ws.sent] == ["ready", "error", "end"]
    assert ws.sent[1]["code"] == "max_duration" and ws.sent[2]["windows"] == 2
    assert model.batches[-1:] == [2] and (ws.close_code, ws.close_reason) == (1001, "max_duration")
    started, told, ended = ws.at  # ready went out as the stream started
    assert (told - started, ended - told) == pytest.approx((1.0, TIMEOUT_DRAIN_S), abs=1e-9)
    assert ended == clock.now
