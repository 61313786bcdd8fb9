"""A connection end to end without a socket (server/connection.py): a fake WebSocket (the ASGI
messages Starlette's WebSocket would give) in front of a real Service with the fake classifier.
Fast enough to run for every mutant of server/connection.py; tests/integration covers the same
over real sockets.

Its states and their moves; a stream from start to ``end``; what it makes of its client's input
(the token in ``start``, admission and refusals to the letter, resume, ``lossless``,
``max_speed``, bad messages up to and past the allowance, a client that reads nothing); and how
it ends (deadlines, shutdown, closes requested twice, clients that stop reading or go away
mid-send, sends or closes that fail)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from typing import Any

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

from tests.fakes import FakeClassifier, FakeWebSocket, VirtualClock
from tests.helpers import MS, eventually, pcm16, service, tone
from voxlive.inference.base import ModelInfo
from voxlive.server.budget import Budget
from voxlive.server.connection import NEXT, TIMEOUT_DRAIN_S, Connection
from voxlive.server.service import Service
from voxlive.server.sources import Sources

RATE = 16_000


async def run(svc: Service, ws: FakeWebSocket) -> Connection:
    conn = Connection(ws, svc)  # type: ignore[arg-type]
    await asyncio.wait_for(conn.run(), 10_000 * MS)
    return conn


# ---- a stream from start to end ------------------------------------------------------------------
async def test_start_audio_stop_gives_ready_results_in_order_end_and_1000() -> None:
    async with service() as svc:
        ws = FakeWebSocket()
        ws.text({"type": "start", "sample_rate": RATE})
        ws.audio(tone(500))
        ws.text({"type": "stop"})
        conn = await run(svc, ws)
    [ready] = ws.of("ready")
    assert ready == {
        "type": "ready", "stream_id": conn.id, "model": "fake", "backend": "fake",
        "labels": ["a", "b"], "fallback": None, "window_ms": 200, "hop_ms": 100,
        "sample_rate": RATE, "model_sample_rate": RATE, "smoothing": 4, "resumed": False,
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
    assert not svc.connections and not svc.registry.detached


async def test_the_resampler_tail_is_flushed_on_stop() -> None:
    async with service() as svc:
        ws = FakeWebSocket()
        ws.text({"type": "start", "sample_rate": 8_000})
        ws.audio(pcm16(np.full(4_000, 0.25, np.float32)))  # 500 ms at 8 kHz
        ws.text({"type": "stop"})
        await run(svc, ws)
    [end] = ws.of("end")
    assert end["duration_ms"] == 500.0  # every resampled sample, the filter's tail included
    assert ws.of("ready")[0]["sample_rate"] == 8_000


async def test_audio_first_starts_with_the_default_format_and_query_parameters_preset_it() -> None:
    async with service() as svc:
        ws = FakeWebSocket()
        ws.audio(tone(200))
        ws.text({"type": "stop"})
        await run(svc, ws)
        queried = FakeWebSocket(query={"sample_rate": "8000"})
        queried.audio(pcm16(np.full(1_600, 0.25, np.float32)))
        queried.text({"type": "stop"})
        await run(svc, queried)
    assert [m["type"] for m in ws.sent] == ["ready", "result", "segment", "end"]
    assert queried.sent[0]["type"] == "ready" and queried.sent[0]["sample_rate"] == 8_000
    assert queried.of("end")[0]["duration_ms"] == 200.0


async def test_a_bad_frame_is_an_error_and_the_stream_goes_on() -> None:
    async with service() as svc:
        ws = FakeWebSocket()
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
        ws = FakeWebSocket()
        ws.text({"type": "start", "sample_rate": 4_000})
        ws.audio(tone(200))
        conn = await run(svc, ws)
    [err] = ws.of("error")
    assert err["code"] == "unsupported_format"
    assert (ws.close_code, ws.close_reason) == (1003, "unsupported_format")
    assert not ws.of("end") and conn.state == "closed"


async def test_a_frame_over_max_frame_bytes_closes_1009() -> None:
    async with service(max_frame_bytes=1024) as svc:
        ws = FakeWebSocket()
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
        none = FakeWebSocket()
        none.text({"type": "start"})
        wrong = FakeWebSocket(query={"token": "guess"})
        right = FakeWebSocket(query={"token": "s3cret"})
        right.text({"type": "stop"})
        for ws in (none, wrong, right):
            await run(svc, ws)
        origin = FakeWebSocket(
            headers={"origin": "https://evil.example", "host": "voxlive.example"}
        )
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
        first = FakeWebSocket()
        task = asyncio.create_task(run(svc, first))
        await eventually(lambda: bool(svc.connections), "the first stream open")
        second = FakeWebSocket()
        await run(svc, second)
        first.text({"type": "stop"})
        await task
        svc.status = "loading"
        third = FakeWebSocket()
        await run(svc, third)
        svc.status = "ready"
    assert (second.close_code, second.close_reason) == (1013, "too_many_streams")
    assert second.sent[0]["code"] == "too_many_streams"
    assert (third.close_code, third.close_reason) == (1013, "not_ready")
    assert first.close_code == 1000


async def test_an_idle_stream_gets_its_results_then_end_and_1001() -> None:
    async with service(idle_timeout_ms=100) as svc:
        ws = FakeWebSocket()
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
        ws = FakeWebSocket()
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
        ws = FakeWebSocket()
        ws.audio(tone(300))
        conn = Connection(ws, svc)  # type: ignore[arg-type]
        task = asyncio.create_task(conn.run())
        await eventually(lambda: len(ws.of("result")) == 2, "two results")
        await svc.drain(2.0)
        await asyncio.wait_for(task, 5_000 * MS)
        assert svc.status == "stopping"
    assert ws.sent[-1]["type"] == "end" and ws.of("end")[0]["windows"] == 2
    assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")
    assert conn.state == "closed"


async def test_shutdown_moves_a_stream_with_acks_ack_moving_and_1012_without_end() -> None:
    async with service() as svc:
        ws = FakeWebSocket()
        ws.text({"type": "start", "sample_rate": RATE, "acks": True})
        ws.audio(tone(300))
        conn = Connection(ws, svc)  # type: ignore[arg-type]
        task = asyncio.create_task(conn.run())
        await eventually(lambda: len(ws.of("result")) == 2, "two results")
        await svc.drain(2.0)
        await asyncio.wait_for(task, 5_000 * MS)
    kinds = [m["type"] for m in ws.sent]
    assert kinds[-2:] == ["ack", "moving"] and "end" not in kinds
    assert ws.sent[-1] == {"type": "moving", "reason": "shutdown", "retry_after_ms": 0}
    assert ws.sent[-2]["seq"] == 1 and ws.sent[-2]["samples"] == 2 * RATE // 10  # next window
    assert (ws.close_code, ws.close_reason) == (1012, "service restart")


async def test_shutdown_after_stop_finishes_a_stream_with_acks_as_usual() -> None:
    async with service() as svc:
        ws = FakeWebSocket()
        ws.text({"type": "start", "sample_rate": RATE, "acks": True})
        ws.audio(tone(300))
        ws.text({"type": "stop"})
        conn = Connection(ws, svc)  # type: ignore[arg-type]
        task = asyncio.create_task(conn.run())
        await eventually(lambda: conn.state != "streaming", "the stop read")
        await svc.drain(2.0)
        await asyncio.wait_for(task, 5_000 * MS)
    assert not ws.of("moving") and ws.of("end") and ws.close_code == 1000


async def _vanished_after_two_results(svc: Service, audio: np.ndarray) -> tuple[FakeWebSocket, str]:
    """A client that sent ``audio``, got two results and vanished: its socket and stream id."""
    first = FakeWebSocket()
    first.audio(audio)
    task = asyncio.create_task(Connection(first, svc).run())  # type: ignore[arg-type]
    await eventually(lambda: len(first.of("result")) == 2, "two results")
    first.vanish()
    await asyncio.wait_for(task, 5_000 * MS)
    return first, str(first.of("ready")[0]["stream_id"])


async def test_a_vanished_client_resumes_its_stream_with_the_results_it_missed() -> None:
    async with service(resume_grace_ms=5_000) as svc:
        first, stream_id = await _vanished_after_two_results(svc, tone(300))
        assert list(svc.registry.detached) == [stream_id]
        again = FakeWebSocket()
        again.text({"type": "start", "stream_id": stream_id, "last_seq": 0})
        again.audio(tone(100))
        again.text({"type": "stop"})
        await run(svc, again)
        unknown = FakeWebSocket()
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


def _busy(svc: Service, level: int = 1) -> None:
    """As if the server had been busy: live streams are cut at the pace's wider hop."""
    assert svc.pipeline is not None and svc.pipeline.batcher.pace is not None
    svc.pipeline.batcher.pace.policy.level = level


async def test_a_busy_server_paces_a_live_stream_and_says_so_before_its_first_wide_window() -> None:
    async with service() as svc:  # windows of 200 ms every 100 ms; paced: 200, 400, 800
        _busy(svc)
        ws = FakeWebSocket()
        ws.text({"type": "start", "sample_rate": RATE})
        ws.audio(tone(600))
        ws.text({"type": "stop"})
        await run(svc, ws)
        files = FakeWebSocket()
        files.text({"type": "start", "sample_rate": RATE, "lossless": True})
        files.audio(tone(600))
        files.text({"type": "stop"})
        await run(svc, files)
    assert [m["type"] for m in ws.sent] == [
        "ready",
        "pace",
        "result",
        "result",
        "result",
        "segment",
        "end",
    ]
    assert ws.of("pace") == [
        {"type": "pace", "hop_ms": 200, "normal_hop_ms": 100, "reason": "busy"}
    ]
    assert ws.of("ready")[0]["hop_ms"] == 100  # ready names the normal hop; pace the one in force
    assert [(r["start_ms"], r["end_ms"]) for r in ws.of("result")] == [
        (0, 200),
        (200, 400),
        (400, 600),
    ]
    assert ws.of("end")[0]["windows"] == 3
    assert not files.of("pace") and len(files.of("result")) == 5  # a lossless stream: never paced


async def test_a_resumed_client_hears_the_pace_again_and_then_its_return_to_normal() -> None:
    async with service(resume_grace_ms=5_000) as svc:
        _busy(svc)
        first, stream_id = await _vanished_after_two_results(svc, tone(400))
        again = FakeWebSocket()
        again.text({"type": "start", "stream_id": stream_id, "last_seq": 1})
        again.audio(tone(200))  # a window at 400, still paced
        conn = Connection(again, svc)  # type: ignore[arg-type]
        task = asyncio.create_task(conn.run())
        await eventually(lambda: len(again.of("result")) == 1, "a result")
        assert svc.pipeline is not None and svc.pipeline.batcher.pace is not None
        svc.pipeline.batcher.pace.policy.level = 0
        svc.pipeline.batcher.pace.join(conn.stream)  # what the pace does when the step changes
        again.audio(tone(300))  # windows at 500, 600, 700 (the last ending at 900)
        again.text({"type": "stop"})
        await asyncio.wait_for(task, 5_000 * MS)
    assert [m["type"] for m in first.sent[:2]] == ["ready", "pace"]
    told = [m["hop_ms"] if m["type"] == "pace" else m["start_ms"] for m in again.sent
            if m["type"] in ("pace", "result")]  # fmt: skip
    assert told == [200, 400, 100, 500, 600, 700]
    assert again.of("pace")[-1]["reason"] == "normal"


async def test_a_client_gone_while_streaming_without_resume_is_released() -> None:
    async with service(resume_grace_ms=0) as svc:
        ws = FakeWebSocket()
        ws.audio(tone(200))
        ws.vanish()
        conn = await run(svc, ws)
    assert conn.state == "closed" and not svc.registry.detached and not svc.connections


# ---- its states and the moves it allows ----------------------------------------------------------
def _connection() -> Connection:
    none: Any = None  # no socket or service needed to change state
    return Connection(none, none)


def test_every_state_but_closed_can_end_closed_and_closed_is_final() -> None:
    assert all("closed" in NEXT[state] for state in ("streaming", "draining", "closing"))
    assert NEXT["closed"] == ()


def test_a_closed_connection_refuses_to_move_and_says_why() -> None:
    conn = _connection()
    conn._move("closing")
    conn._move("closed")
    assert conn.closed
    with pytest.raises(RuntimeError, match=r"expected a move to one of \(\) from 'closed'"):
        conn._move("draining")


def test_draining_cannot_go_back_to_streaming() -> None:
    conn = _connection()
    conn._move("draining")
    with pytest.raises(RuntimeError, match="but got 'streaming'"):
        conn._move("streaming")


# ---- what it makes of its client's input ---------------------------------------------------------
NOT_JSON = "expected a JSON object, got text that is not JSON ({} chars)"


async def test_a_token_in_start_admits_the_stream_and_starts_it() -> None:
    async with service(token="s3cret") as svc:
        ws = FakeWebSocket()
        ws.text({"type": "start", "sample_rate": RATE, "token": "s3cret"})
        ws.audio(tone(200))
        ws.text({"type": "stop"})
        await run(svc, ws)
    assert [m["type"] for m in ws.sent] == ["ready", "result", "segment", "end"]
    assert re.fullmatch("[0-9a-f]{16}", ws.sent[0]["stream_id"])  # 64 random bits
    assert (ws.close_code, ws.close_reason) == (1000, "stream ended")


async def test_refusals_say_why_in_the_error_the_close_and_the_metrics() -> None:
    async with service(token="s3cret", max_streams=1) as svc:
        wrong = FakeWebSocket(query={"token": "guess"})
        await run(svc, wrong)
        rate = FakeWebSocket(query={"token": "s3cret", "sample_rate": "4000"})
        await run(svc, rate)
        first = FakeWebSocket(query={"token": "s3cret"})
        task = asyncio.create_task(run(svc, first))
        await eventually(lambda: bool(svc.connections), "the first stream open")
        second = FakeWebSocket(query={"token": "s3cret"})
        await run(svc, second)
        first.text({"type": "stop"})
        await task
        refused = svc.metrics.streams_refused
        counts = {c: refused.labels(c)._value.get() for c in ("unauthorized", "too_many_streams")}
    assert (wrong.close_code, wrong.close_reason) == (1008, "unauthorized")
    assert (rate.close_code, rate.close_reason) == (1003, rate.sent[0]["code"])
    assert second.sent == [
        {"type": "error", "code": "too_many_streams",
         "message": "server is at its limit of 1 streams; retry in 1000 ms",
         "retry_after_ms": 1000},
    ]  # fmt: skip
    assert (second.close_code, second.close_reason) == (1013, "too_many_streams")
    assert counts == {"unauthorized": 1, "too_many_streams": 1}


async def test_a_stream_resumes_through_the_query_and_an_unknown_one_is_named() -> None:
    async with service(resume_grace_ms=5_000) as svc:
        first = FakeWebSocket()
        first.audio(tone(300))
        conn, task = start(svc, first)
        await eventually(lambda: len(first.of("result")) == 2, "two results")
        first.vanish()
        await asyncio.wait_for(task, 5_000 * MS)
        again = FakeWebSocket(query={"stream_id": conn.id, "last_seq": "0"})
        again.audio(tone(100))
        again.text({"type": "stop"})
        await run(svc, again)
        unknown_id = "f" * 40
        unknown = FakeWebSocket(query={"stream_id": unknown_id})
        unknown.text({"type": "stop"})
        await run(svc, unknown)
    assert again.sent[0]["type"] == "ready" and again.sent[0]["resumed"] is True
    assert again.sent[0]["stream_id"] == conn.id
    assert [m["seq"] for m in again.of("result")] == [1, 2]
    assert unknown.sent[0] == {
        "type": "error", "code": "resume_failed", "reason": "unknown",
        "message": f"expected a stream to resume, but {unknown_id[:32]!r} is unknown or expired; "
        "starting a new stream",
    }  # fmt: skip
    assert unknown.of("ready")[0]["resumed"] is False


async def test_a_vanished_stream_is_kept_only_if_it_carried_audio_and_resume_is_on() -> None:
    kept: dict[str, bool] = {}
    for grace_ms, samples in ((1, 1), (5_000, 0), (0, 1_600)):
        async with service(resume_grace_ms=grace_ms) as svc:
            ws = FakeWebSocket()
            if samples:
                ws.audio(pcm16(np.full(samples, 0.25, np.float32)))
            ws.vanish()
            conn = Connection(ws, svc)  # type: ignore[arg-type]
            await conn.run()  # no turn of the loop after it: a 1 ms grace has not expired
            kept[f"grace {grace_ms} ms, {samples} samples"] = conn.id in svc.registry.detached
    assert kept == {
        "grace 1 ms, 1 samples": True,
        "grace 5000 ms, 0 samples": False,
        "grace 0 ms, 1600 samples": False,
    }


def _overloaded(**changes: Any) -> Any:
    return service(classifier=FakeClassifier(sample_rate=RATE, latency_s=50 * MS), max_lag_ms=100,
                   buffer_ms=300, **changes)  # fmt: skip


def _asking(how: str) -> FakeWebSocket:
    """A socket whose stream is live ("live") or asks to be lossless by "start" or "query"."""
    ws = FakeWebSocket(query={"lossless": "true"} if how == "query" else None)
    if how == "start":
        ws.text({"type": "start", "sample_rate": RATE, "lossless": True})
    return ws


async def test_a_lossless_stream_loses_no_window_where_a_live_one_sheds() -> None:
    ends = {}
    for how in ("live", "start", "query"):
        async with _overloaded() as svc:
            ws = _asking(how)
            for _ in range(10):
                ws.audio(tone(100))
            ws.text({"type": "stop"})
            await run(svc, ws)
            ends[how] = ws.of("end")[0]
    assert ends["live"]["dropped_windows"] > 0
    for how in ("start", "query"):
        assert (ends[how]["results"], ends[how]["dropped_windows"]) == (9, 0)


async def test_a_lossless_stream_is_background_work_and_a_live_one_is_not() -> None:
    kinds = {}
    for how in ("live", "start", "query"):
        async with service() as svc:
            ws = _asking(how)
            ws.audio(tone(100))
            conn = Connection(ws, svc)  # type: ignore[arg-type]
            task = asyncio.create_task(conn.run())
            await eventually(lambda conn=conn: hasattr(conn, "stream"), "the stream open")
            await eventually(lambda conn=conn: conn.stream.samples_received > 0, "audio read")
            kinds[how] = (conn.stream.lossless, conn.stream.background)
            ws.text({"type": "stop"})
            await asyncio.wait_for(task, 5_000 * MS)
    assert kinds == {"live": (False, False), "start": (True, True), "query": (True, True)}


class Timed(FakeWebSocket):
    """Records the loop time of every ``receive()``: when the server asked for more."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked_at: list[float] = []

    async def receive(self) -> dict[str, Any]:
        self.asked_at.append(asyncio.get_running_loop().time())
        return await super().receive()


async def test_max_speed_holds_the_reader_once_a_burst_of_one_second_is_spent() -> None:
    async with service(max_speed=4) as svc:
        ws = Timed()
        for _ in range(4):
            ws.audio(tone(500))
        ws.text({"type": "stop"})
        await run(svc, ws)
    first, *_, stop = ws.asked_at
    # 2 s of audio is 1 s past the burst: at 4x real time that is 0.25 s of reading held
    assert 0.24 <= stop - first < 0.6
    assert ws.of("end")[0]["duration_ms"] == 2000.0


async def test_a_resumed_stream_is_paced_from_what_its_new_connection_sent() -> None:
    async with service(max_speed=10, resume_grace_ms=5_000) as svc:
        first = FakeWebSocket()
        first.audio(tone(3_000))  # 2 s past the burst: 0.2 s of reading held at 10x
        first.vanish()
        conn = await run(svc, first)
        again = Timed(query={"stream_id": conn.id})
        again.audio(tone(500))
        again.text({"type": "stop"})
        await run(svc, again)
    assert again.of("ready")[0]["resumed"] is True
    first_ask, *_, stop = again.asked_at
    assert stop - first_ask < 0.3  # 0.5 s on this connection is within its own burst (not 6.5 s)


async def test_bad_messages_are_answered_until_more_than_twenty_then_the_stream_closes() -> None:
    async with service() as svc:
        within = FakeWebSocket()
        for _ in range(20):
            within.text("")
        within.audio(tone(200))
        within.text({"type": "stop"})
        await run(svc, within)
        past = FakeWebSocket()
        for _ in range(21):
            past.text("")
        await run(svc, past)
    assert [e["message"] for e in within.of("error")] == [NOT_JSON.format(0)] * 20
    assert within.of("result") and within.close_code == 1000
    assert [e["code"] for e in past.of("error")] == ["bad_json"] * 21 + ["too_many_errors"]
    assert past.of("error")[-1]["message"] == (
        "expected valid messages, got more than 20 bad ones within 10 s "
        "(3 before authenticating); closing"
    )
    assert (past.close_code, past.close_reason) == (1008, "too_many_errors")


async def test_a_client_that_reads_nothing_gets_the_newest_64_errors_and_a_count() -> None:
    async with service() as svc:
        ws = SlowReader()
        ws.text({"type": "start", "sample_rate": RATE})
        svc.sources = Sources(new_budget=lambda: Budget(bad_limit=100))  # more than 64 bad ones
        conn = Connection(ws, svc)  # type: ignore[arg-type]
        task = asyncio.create_task(conn.run())
        await eventually(lambda: ws.waiting, "ready on its way")
        for n in range(1, 71):
            ws.text("x" * n)  # bad JSON of n chars
        ws.text({"type": "stop"})
        await eventually(lambda: conn.state != "streaming", "stop read")
        ws.reads.set()
        await asyncio.wait_for(task, 5_000 * MS)
    assert ws.sent[0]["type"] == "ready"  # it was on its way before the errors came
    assert [e["message"] for e in ws.of("error")] == [NOT_JSON.format(n) for n in range(7, 71)]
    assert ws.of("end")[0]["dropped_errors"] == 6


async def test_the_ready_message_says_why_a_fallback_model_serves() -> None:
    class Fallback(FakeClassifier):
        @property
        def info(self) -> ModelInfo:
            return ModelInfo("fake", "fake", ("a", "b"), RATE, fallback="no GPU")

    async with service(classifier=Fallback(sample_rate=RATE)) as svc:
        ws = FakeWebSocket()
        ws.text({"type": "stop"})
        await run(svc, ws)
    assert ws.of("ready")[0]["fallback"] == "no GPU"


# ---- how it ends ---------------------------------------------------------------------------------
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


class SlowReader(FakeWebSocket):
    """A client that reads nothing until :attr:`reads` is set: every send waits for it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reads = asyncio.Event()
        self.waiting = False  # a send waits for the client to read

    async def send_text(self, text: str) -> None:
        self.waiting = True
        await self.reads.wait()
        await super().send_text(text)


def start(svc: Service, ws: FakeWebSocket) -> tuple[Connection, asyncio.Task[None]]:
    """A connection running in a task of its own, while the test goes on."""
    conn = Connection(ws, svc)  # type: ignore[arg-type]
    return conn, asyncio.create_task(conn.run())


@pytest.mark.parametrize("drain_s", [0.0, 0.1])
async def test_shutdown_after_stop_brings_the_end_forward_but_keeps_the_stops_close(
    drain_s: float,
) -> None:
    async with service(classifier=SlowTail(slow_s=600 * MS), hop_ms=200) as svc:
        ws = FakeWebSocket()
        ws.audio(tone(400))  # two windows
        ws.audio(tone(100, level=0.9))  # cut as a tail window at stop, and slow to classify
        conn, task = start(svc, ws)
        await eventually(lambda: len(ws.of("result")) == 2, "the two full windows' results")
        ws.text({"type": "stop"})  # draining, for up to 30 s
        await eventually(lambda: conn.state == "draining", "draining after stop")
        conn.shutdown(drain_s)  # end is due long before the tail's result
        await asyncio.wait_for(task, 5_000 * MS)
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
        await asyncio.wait_for(task, 5_000 * MS)
        conn.shutdown(0)  # and once closed
    assert [m["type"] for m in ws.sent] == ["error"]
    assert (ws.close_code, ws.close_reason) == (1009, "frame_too_large")
    assert conn.state == "closed"


async def test_nothing_sent_after_stop_is_read() -> None:
    async with service() as svc:
        ws = FakeWebSocket()
        ws.audio(tone(200))
        ws.text({"type": "stop"})
        ws.text({"type": "stop"})  # would be "expected nothing after stop" if it were read
        ws.audio(tone(100))
        await run(svc, ws)
    assert not ws.of("error") and ws.of("end")[0]["duration_ms"] == 200.0
    assert ws.close_code == 1000


class AnsweredClose(FakeWebSocket):
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
        await asyncio.wait_for(
            task, 5_000 * MS
        )  # raises if the reader's disconnect broke a state move
    assert ws.sent[-1]["type"] == "end" and (ws.close_code, ws.close_reason) == (
        1001,
        "server shutting down",
    )
    assert conn.state == "closed" and not svc.registry.detached


class FailingSend(FakeWebSocket):
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
            await asyncio.wait_for(task, 5_000 * MS)
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER] == [
        ("DEBUG", f"a stream's client went away mid-send: {gone!r}")
    ]
    assert ws.close_code is None and conn.state == "closed"


class FailingClose(FakeWebSocket):
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
        ws = FakeWebSocket()
        ws.audio(tone(200))
        conn, task = start(svc, ws)
        await eventually(lambda: bool(ws.of("result")), "a result")
        ws.audio(tone(100))  # later, while the reader waits for the next message
        ws.text({"type": "stop"})
        await asyncio.wait_for(task, 5_000 * MS)
    assert not ws.of("error") and ws.of("end")[0]["duration_ms"] == 300.0
    assert (ws.close_code, ws.close_reason) == (1000, "stream ended")
    assert conn.state == "closed"


async def test_nothing_is_read_past_max_stream_ms() -> None:
    async with service(max_stream_ms=100, idle_timeout_ms=0) as svc:
        ws = FakeWebSocket()
        ws.audio(tone(50))
        conn, task = start(svc, ws)
        await asyncio.sleep(300 * MS)  # past the limit: the reader has stopped by now
        ws.audio(tone(100))
        await asyncio.wait_for(task, 5_000 * MS)
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
            self.release.wait(10_000 * MS)
        return super().predict(batch)


class SendTimes(FakeWebSocket):
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
        ws, model.holding = SendTimes(), True
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


async def test_a_failed_worker_closes_the_stream_1011_with_an_internal_error_at_once() -> None:
    async with service() as svc:
        ws = FakeWebSocket()
        ws.audio(tone(300))
        conn, task = start(svc, ws)
        await eventually(lambda: len(ws.of("result")) == 2, "two results")
        conn.fail("the server's model worker failed")
        await asyncio.wait_for(task, 5_000 * MS)
        conn.fail("again")  # once closed: nothing more
    [error] = ws.of("error")
    assert error == {
        "type": "error", "code": "internal_error", "message": "the server's model worker failed"
    }  # fmt: skip
    assert ws.sent[-1] == error and not ws.of("end")  # at once: no drain, no end
    assert (ws.close_code, ws.close_reason) == (1011, "internal error")
    assert conn.state == "closed"
    assert svc.metrics.client_errors.labels("internal_error")._value.get() == 1


async def test_a_worker_failure_while_closing_keeps_the_first_close() -> None:
    async with service(max_frame_bytes=1024) as svc:
        ws = SlowReader()
        ws.audio(b"\x00" * 1026)  # fatal: closing, but the client reads nothing yet
        conn, task = start(svc, ws)
        await eventually(lambda: conn.state == "closing", "closing")
        conn.fail("the worker failed")
        ws.reads.set()
        await asyncio.wait_for(task, 5_000 * MS)
    assert [m["code"] for m in ws.of("error")] == ["frame_too_large"]
    assert (ws.close_code, ws.close_reason) == (1009, "frame_too_large")
