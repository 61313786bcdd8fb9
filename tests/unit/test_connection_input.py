"""What a connection makes of its client's input, without a socket (the fake WebSocket of
test_connection.py in front of a real Service): the token in ``start``, admission and refusals
to the letter, resume through the query, which vanished streams are kept, ``lossless``,
``max_speed``, bad messages up to and past the allowance, a client that reads nothing while its
errors pile up, and the ``/audio`` endpoint itself."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import numpy as np
from starlette.testclient import TestClient

from tests.fakes import FakeClassifier
from tests.helpers import eventually
from tests.unit.server.test_connection import RATE, FakeSocket, run, service, tone
from tests.unit.test_connection_close import SlowReader, start
from voxlive.bench.load import pcm16
from voxlive.inference.base import ModelInfo
from voxlive.server.app import create_app
from voxlive.server.budget import Budget
from voxlive.server.connection import Connection
from voxlive.settings import Settings

NOT_JSON = "expected a JSON object, got text that is not JSON ({} chars)"


async def test_a_token_in_start_admits_the_stream_and_starts_it() -> None:
    async with service(token="s3cret") as svc:
        ws = FakeSocket()
        ws.text({"type": "start", "sample_rate": RATE, "token": "s3cret"})
        ws.audio(tone(200))
        ws.text({"type": "stop"})
        await run(svc, ws)
    assert [m["type"] for m in ws.sent] == ["ready", "result", "segment", "end"]
    assert re.fullmatch("[0-9a-f]{16}", ws.sent[0]["stream_id"])  # 64 random bits
    assert (ws.close_code, ws.close_reason) == (1000, "stream ended")


async def test_refusals_say_why_in_the_error_the_close_and_the_metrics() -> None:
    async with service(token="s3cret", max_streams=1) as svc:
        wrong = FakeSocket(query={"token": "guess"})
        await run(svc, wrong)
        rate = FakeSocket(query={"token": "s3cret", "sample_rate": "4000"})
        await run(svc, rate)
        first = FakeSocket(query={"token": "s3cret"})
        task = asyncio.create_task(run(svc, first))
        await eventually(lambda: bool(svc.connections), "the first stream open")
        second = FakeSocket(query={"token": "s3cret"})
        await run(svc, second)
        first.text({"type": "stop"})
        await task
        refused = svc.metrics.streams_refused
        counts = {c: refused.labels(c)._value.get() for c in ("unauthorized", "too_many_streams")}
    assert (wrong.close_code, wrong.close_reason) == (1008, "unauthorized")
    assert (rate.close_code, rate.close_reason) == (1003, rate.sent[0]["code"])
    assert second.sent == [
        {"type": "error", "code": "too_many_streams",
         "message": "server is at its limit of 1 streams; retry later"},
    ]  # fmt: skip
    assert (second.close_code, second.close_reason) == (1013, "too_many_streams")
    assert counts == {"unauthorized": 1, "too_many_streams": 1}


async def test_a_stream_resumes_through_the_query_and_an_unknown_one_is_named() -> None:
    async with service(resume_grace_ms=5_000) as svc:
        first = FakeSocket()
        first.audio(tone(300))
        conn, task = start(svc, first)
        await eventually(lambda: len(first.of("result")) == 2, "two results")
        first.vanish()
        await asyncio.wait_for(task, 5)
        again = FakeSocket(query={"stream_id": conn.id, "last_seq": "0"})
        again.audio(tone(100))
        again.text({"type": "stop"})
        await run(svc, again)
        unknown_id = "f" * 40
        unknown = FakeSocket(query={"stream_id": unknown_id})
        unknown.text({"type": "stop"})
        await run(svc, unknown)
    assert again.sent[0]["type"] == "ready" and again.sent[0]["resumed"] is True
    assert again.sent[0]["stream_id"] == conn.id
    assert [m["seq"] for m in again.of("result")] == [1, 2]
    assert unknown.sent[0] == {
        "type": "error", "code": "resume_failed",
        "message": f"expected a stream to resume, but {unknown_id[:32]!r} is unknown or expired; "
        "starting a new stream",
    }  # fmt: skip
    assert unknown.of("ready")[0]["resumed"] is False


async def test_a_vanished_stream_is_kept_only_if_it_carried_audio_and_resume_is_on() -> None:
    kept: dict[str, bool] = {}
    for grace_ms, samples in ((1, 1), (5_000, 0), (0, 1_600)):
        async with service(resume_grace_ms=grace_ms) as svc:
            ws = FakeSocket()
            if samples:
                ws.audio(pcm16(np.full(samples, 0.25, np.float32)))
            ws.vanish()
            conn = Connection(ws, svc)  # type: ignore[arg-type]
            await conn.run()  # no turn of the loop after it: a 1 ms grace has not expired
            kept[f"grace {grace_ms} ms, {samples} samples"] = conn.id in svc.sessions.detached
    assert kept == {
        "grace 1 ms, 1 samples": True,
        "grace 5000 ms, 0 samples": False,
        "grace 0 ms, 1600 samples": False,
    }


def _overloaded(**changes: Any) -> Any:
    return service(classifier=FakeClassifier(sample_rate=RATE, latency_s=0.05), max_lag_ms=100,
                   buffer_ms=300, **changes)  # fmt: skip


async def test_a_lossless_stream_loses_no_window_where_a_live_one_sheds() -> None:
    ends = {}
    for how in ("live", "start", "query"):
        async with _overloaded() as svc:
            ws = FakeSocket(query={"lossless": "true"} if how == "query" else None)
            if how == "start":
                ws.text({"type": "start", "sample_rate": RATE, "lossless": True})
            for _ in range(10):
                ws.audio(tone(100))
            ws.text({"type": "stop"})
            await run(svc, ws)
            ends[how] = ws.of("end")[0]
    assert ends["live"]["dropped_windows"] > 0
    for how in ("start", "query"):
        assert (ends[how]["results"], ends[how]["dropped_windows"]) == (9, 0)


class Timed(FakeSocket):
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
        first = FakeSocket()
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
        within = FakeSocket()
        for _ in range(20):
            within.text("")
        within.audio(tone(200))
        within.text({"type": "stop"})
        await run(svc, within)
        past = FakeSocket()
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
        conn = Connection(ws, svc)  # type: ignore[arg-type]
        conn._budget = Budget(bad_limit=100)  # a client allowed more bad messages than 64
        task = asyncio.create_task(conn.run())
        await eventually(lambda: ws.waiting, "ready on its way")
        for n in range(1, 71):
            ws.text("x" * n)  # bad JSON of n chars
        ws.text({"type": "stop"})
        await eventually(lambda: conn.state != "streaming", "stop read")
        ws.reads.set()
        await asyncio.wait_for(task, 5)
    assert ws.sent[0]["type"] == "ready"  # it was on its way before the errors came
    assert [e["message"] for e in ws.of("error")] == [NOT_JSON.format(n) for n in range(7, 71)]
    assert ws.of("end")[0]["dropped_errors"] == 6


async def test_the_ready_message_says_why_a_fallback_model_serves() -> None:
    class Fallback(FakeClassifier):
        @property
        def info(self) -> ModelInfo:
            return ModelInfo("fake", "fake", ("a", "b"), RATE, fallback="no GPU")

    async with service(classifier=Fallback(sample_rate=RATE)) as svc:
        ws = FakeSocket()
        ws.text({"type": "stop"})
        await run(svc, ws)
    assert ws.of("ready")[0]["fallback"] == "no GPU"


def test_the_audio_endpoint_streams_over_the_app() -> None:
    settings = Settings(model="pitch", web_dir="/nonexistent", gate="none", window_ms=200,
                        hop_ms=100, max_speed=0)  # fmt: skip
    app = create_app(settings, classifier=FakeClassifier(sample_rate=RATE))
    with TestClient(app, base_url="http://localhost") as client:
        for _ in range(500):
            if client.get("/readyz").status_code == 200:
                break
        with client.websocket_connect("ws://localhost/audio") as ws:
            ws.send_json({"type": "start", "sample_rate": RATE})
            ws.send_bytes(tone(200))
            ws.send_json({"type": "stop"})
            kinds = [ws.receive_json()["type"] for _ in range(4)]
    assert kinds == ["ready", "result", "segment", "end"]
