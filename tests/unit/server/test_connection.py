"""A connection end to end without a socket: a fake WebSocket (the ASGI messages Starlette's
WebSocket would give) in front of a real Service with the fake classifier. Fast enough to run
for every mutant of server/connection.py; tests/integration covers the same over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from starlette.websockets import WebSocketDisconnect, WebSocketState

from tests.fakes import FakeClassifier
from tests.helpers import eventually
from voxlive.bench.load import pcm16
from voxlive.inference.base import Classifier
from voxlive.server.connection import Connection
from voxlive.server.service import Service
from voxlive.settings import Settings

RATE = 16_000


class FakeSocket:
    """What Connection uses of a Starlette WebSocket. Feed it frames with :meth:`text`,
    :meth:`audio` and :meth:`vanish`; it records what the server sent and how it closed."""

    def __init__(self, headers: dict[str, str] | None = None, query: dict[str, str] | None = None):
        self.headers = headers or {}
        self.query_params = query or {}
        self.application_state = WebSocketState.CONNECTING
        self.sent: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.denied: tuple[int, dict[str, Any]] | None = None
        self.closed = asyncio.Event()
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def accept(self) -> None:
        self.application_state = WebSocketState.CONNECTED

    async def receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def send_text(self, text: str) -> None:
        if self.application_state is WebSocketState.DISCONNECTED:
            raise WebSocketDisconnect(1006)
        self.sent.append(json.loads(text))

    async def send_denial_response(self, response: Any) -> None:
        """A refusal before the upgrade: recorded as the HTTP status and the JSON body."""
        self.denied = (response.status_code, json.loads(response.body))
        self.application_state = WebSocketState.DISCONNECTED
        self.closed.set()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.close_code, self.close_reason = code, reason
        self.application_state = WebSocketState.DISCONNECTED
        self.closed.set()

    def text(self, obj: Any) -> None:
        self._inbox.put_nowait(
            {"type": "websocket.receive", "text": obj if isinstance(obj, str) else json.dumps(obj)}
        )

    def audio(self, data: bytes) -> None:
        self._inbox.put_nowait({"type": "websocket.receive", "bytes": data})

    def vanish(self) -> None:
        self._inbox.put_nowait({"type": "websocket.disconnect", "code": 1006})

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]


@contextlib.asynccontextmanager
async def service(classifier: Classifier | None = None, **changes: Any) -> AsyncIterator[Service]:
    settings = Settings(model="pitch", web_dir="/nonexistent", window_ms=200, hop_ms=100,
                        gate="none", max_speed=0).replace(**changes)  # fmt: skip
    svc = Service(settings, classifier=classifier or FakeClassifier(sample_rate=RATE))
    await svc.start()
    await eventually(lambda: svc.ready, "a ready service")
    try:
        yield svc
    finally:
        await svc.stop()


async def run(svc: Service, ws: FakeSocket) -> Connection:
    conn = Connection(ws, svc)  # type: ignore[arg-type]
    await asyncio.wait_for(conn.run(), 10)
    return conn


def tone(ms: int, level: float = 0.25) -> bytes:
    return pcm16(np.full(RATE * ms // 1000, level, np.float32))


async def test_start_audio_stop_gives_ready_results_in_order_end_and_1000() -> None:
    async with service() as svc:
        ws = FakeSocket()
        ws.text({"type": "start", "sample_rate": RATE})
        ws.audio(tone(500))
        ws.text({"type": "stop"})
        conn = await run(svc, ws)
    [ready] = ws.of("ready")
    assert ready == {
        "type": "ready", "stream_id": conn.id, "model": "fake", "backend": "fake",
        "labels": ["a", "b"], "fallback": None, "window_ms": 200, "hop_ms": 100,
        "sample_rate": RATE, "model_sample_rate": RATE, "resumed": False,
    }  # fmt: skip
    results = ws.of("result")
    assert [(r["seq"], r["start_ms"], r["end_ms"]) for r in results] == [
        (0, 0, 200), (1, 100, 300), (2, 200, 400), (3, 300, 500)
    ]  # fmt: skip
    assert all(abs(r["scores"]["b"] - 0.25) < 1e-4 for r in results)
    assert ws.sent[0]["type"] == "ready" and ws.sent[-1]["type"] == "end"
    [end] = ws.of("end")
    assert end == {
        "type": "end", "stream_id": conn.id, "duration_ms": 500.0, "windows": 4, "results": 4,
        "gated": 0, "failed": 0, "dropped_windows": 0, "dropped_ms": 0.0,
        "dropped_results": 0, "dropped_errors": 0,
    }  # fmt: skip
    assert (ws.close_code, ws.close_reason) == (1000, "stream ended")
    assert conn.state == "closed"
    assert not svc.connections and not svc.sessions.detached


async def test_the_resampler_tail_is_flushed_on_stop() -> None:
    async with service() as svc:
        ws = FakeSocket()
        ws.text({"type": "start", "sample_rate": 8_000})
        ws.audio(pcm16(np.full(4_000, 0.25, np.float32)))  # 500 ms at 8 kHz
        ws.text({"type": "stop"})
        await run(svc, ws)
    [end] = ws.of("end")
    assert end["duration_ms"] == 500.0  # every resampled sample, the filter's tail included
    assert ws.of("ready")[0]["sample_rate"] == 8_000


async def test_audio_first_starts_with_the_default_format_and_query_parameters_preset_it() -> None:
    async with service() as svc:
        ws = FakeSocket()
        ws.audio(tone(200))
        ws.text({"type": "stop"})
        await run(svc, ws)
        queried = FakeSocket(query={"sample_rate": "8000"})
        queried.audio(pcm16(np.full(1_600, 0.25, np.float32)))
        queried.text({"type": "stop"})
        await run(svc, queried)
    assert [m["type"] for m in ws.sent] == ["ready", "result", "segment", "end"]
    assert queried.sent[0]["type"] == "ready" and queried.sent[0]["sample_rate"] == 8_000
    assert queried.of("end")[0]["duration_ms"] == 200.0


async def test_a_bad_frame_is_an_error_and_the_stream_goes_on() -> None:
    async with service() as svc:
        ws = FakeSocket()
        ws.text({"type": "start", "sample_rate": RATE})
        ws.audio(b"\x00")  # odd length for pcm_s16le
        ws.text("not json")
        ws.audio(tone(200))
        ws.text({"type": "stop"})
        await run(svc, ws)
        errors = svc.metrics.client_errors
    assert [(e["code"], e["message"]) for e in ws.of("error")] == [
        ("bad_frame", "expected a multiple of 2 bytes (1 channel(s) of pcm_s16le), got 1 bytes"),
        ("bad_json", "expected a JSON object, got text that is not JSON (8 chars)"),
    ]
    assert errors.labels("bad_frame")._value.get() == 1
    assert len(ws.of("result")) == 1 and ws.close_code == 1000


async def test_a_fatal_error_closes_at_once_with_its_code() -> None:
    async with service() as svc:
        ws = FakeSocket()
        ws.text({"type": "start", "sample_rate": 4_000})
        ws.audio(tone(200))
        conn = await run(svc, ws)
    [err] = ws.of("error")
    assert err["code"] == "unsupported_format"
    assert (ws.close_code, ws.close_reason) == (1003, "unsupported_format")
    assert not ws.of("end") and conn.state == "closed"


async def test_a_frame_over_max_frame_bytes_closes_1009() -> None:
    async with service(max_frame_bytes=1024) as svc:
        ws = FakeSocket()
        ws.audio(b"\x00" * 1024)  # exactly the limit: accepted
        ws.audio(b"\x00" * 1026)
        await run(svc, ws)
    [err] = ws.of("error")
    assert err == {
        "type": "error", "code": "frame_too_large",
        "message": "frame of 1026 bytes exceeds the limit of 1024 bytes",
    }  # fmt: skip
    assert ws.close_code == 1009


async def test_token_and_origin_are_checked_before_anything_streams() -> None:
    async with service(token="s3cret") as svc:
        none = FakeSocket()
        none.text({"type": "start"})
        wrong = FakeSocket(query={"token": "guess"})
        right = FakeSocket(query={"token": "s3cret"})
        right.text({"type": "stop"})
        for ws in (none, wrong, right):
            await run(svc, ws)
        origin = FakeSocket(headers={"origin": "https://evil.example", "host": "voxlive.example"})
        await run(svc, origin)
        refused = svc.metrics.streams_refused
        assert refused.labels("unauthorized")._value.get() == 2  # both refused before admission
        assert refused.labels("origin_not_allowed")._value.get() == 1
    assert none.close_code == 1008 and "got no token" in none.of("error")[0]["message"]
    assert not none.of("ready")  # refused before admission: no stream was opened
    assert wrong.close_code == 1008 and wrong.sent == [
        {"type": "error", "code": "unauthorized",
         "message": "expected the server's token (start 'token' or ?token=), got a wrong token"},
    ]  # fmt: skip
    assert right.close_code == 1000 and right.of("end")
    # refused before the upgrade: a 403 whose JSON body says why, and no WebSocket at all
    assert origin.denied is not None and origin.denied[0] == 403
    assert origin.denied[1]["code"] == "origin_not_allowed" and origin.sent == []


async def test_streams_past_max_streams_or_before_ready_are_refused_with_1013() -> None:
    async with service(max_streams=1, max_connections=1) as svc:
        first = FakeSocket()
        task = asyncio.create_task(run(svc, first))
        await eventually(lambda: bool(svc.connections), "the first stream open")
        second = FakeSocket()
        await run(svc, second)
        first.text({"type": "stop"})
        await task
        svc.status = "loading"
        third = FakeSocket()
        await run(svc, third)
        svc.status = "ready"
    assert (second.close_code, second.close_reason) == (1013, "too_many_streams")
    assert second.sent[0]["code"] == "too_many_streams"
    assert (third.close_code, third.close_reason) == (1013, "not_ready")
    assert first.close_code == 1000


async def test_an_idle_stream_gets_its_results_then_end_and_1001() -> None:
    async with service(idle_timeout_ms=100) as svc:
        ws = FakeSocket()
        ws.audio(tone(300))
        await run(svc, ws)
    [err] = ws.of("error")
    assert (
        err["code"] == "idle_timeout"
        and err["message"] == "no message for 0.1 s; closing the stream"
    )
    assert len(ws.of("result")) == 2 and ws.sent[-1]["type"] == "end"
    assert (ws.close_code, ws.close_reason) == (1001, "idle_timeout")


async def test_a_stream_past_max_stream_ms_is_flushed_and_closed() -> None:
    async with service(max_stream_ms=150, idle_timeout_ms=0) as svc:
        ws = FakeSocket()
        ws.audio(tone(300))
        await run(svc, ws)
    [err] = ws.of("error")
    assert err == {
        "type": "error", "code": "max_duration",
        "message": "stream reached the limit of 150 ms; closing it",
    }  # fmt: skip
    assert ws.sent[-1]["type"] == "end" and ws.close_code == 1001


async def test_shutdown_drains_sends_end_and_closes_1001() -> None:
    async with service() as svc:
        ws = FakeSocket()
        ws.audio(tone(300))
        conn = Connection(ws, svc)  # type: ignore[arg-type]
        task = asyncio.create_task(conn.run())
        await eventually(lambda: len(ws.of("result")) == 2, "two results")
        await svc.drain(2.0)
        await asyncio.wait_for(task, 5)
        assert svc.status == "stopping"
    assert ws.sent[-1]["type"] == "end" and ws.of("end")[0]["windows"] == 2
    assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")
    assert conn.state == "closed"


async def test_a_vanished_client_resumes_its_stream_with_the_results_it_missed() -> None:
    async with service(resume_grace_ms=5_000) as svc:
        first = FakeSocket()
        first.audio(tone(300))
        conn = Connection(first, svc)  # type: ignore[arg-type]
        task = asyncio.create_task(conn.run())
        await eventually(lambda: len(first.of("result")) == 2, "two results")
        first.vanish()
        await asyncio.wait_for(task, 5)
        stream_id = first.of("ready")[0]["stream_id"]
        assert list(svc.sessions.detached) == [stream_id]
        again = FakeSocket()
        again.text({"type": "start", "stream_id": stream_id, "last_seq": 0})
        again.audio(tone(100))
        again.text({"type": "stop"})
        await run(svc, again)
        unknown = FakeSocket()
        unknown.text({"type": "start", "stream_id": stream_id})
        unknown.text({"type": "stop"})
        await run(svc, unknown)
    assert first.close_code is None  # nobody closes a socket that is gone
    ready = again.of("ready")[0]
    assert ready["resumed"] is True and ready["stream_id"] == stream_id
    assert [m["seq"] for m in again.of("result")] == [1, 2]  # seq 1 replayed, then seq 2
    assert [m["start_ms"] for m in again.of("result")] == [100, 200]  # stream time goes on
    assert again.of("end")[0]["windows"] == 3
    assert [m["type"] for m in unknown.sent] == ["error", "ready", "end"]
    assert unknown.of("error")[0]["code"] == "resume_failed"
    assert unknown.of("ready")[0]["resumed"] is False
    assert unknown.of("ready")[0]["stream_id"] != stream_id


async def test_a_client_gone_while_streaming_without_resume_is_released() -> None:
    async with service(resume_grace_ms=0) as svc:
        ws = FakeSocket()
        ws.audio(tone(200))
        ws.vanish()
        conn = await run(svc, ws)
    assert conn.state == "closed" and not svc.sessions.detached and not svc.connections
