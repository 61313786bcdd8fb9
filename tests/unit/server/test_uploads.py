"""``POST /classify`` answer by answer, without sockets: each refusal's exact status, code,
message and headers; the upload slot given back on every path; a client that leaves, a shutdown
that cuts, a pipeline that fails. The classifier is a stand-in pipeline here (the HTTP side is
under test); test_app.py runs the same endpoint through the real pipeline."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from starlette.requests import Request
from starlette.responses import Response

from tests.helpers import MS, eventually, wav
from voxlive.audio.decode import Control
from voxlive.inference.base import ModelInfo
from voxlive.pipeline.offline import Classified
from voxlive.protocol import messages
from voxlive.server import uploads as uploads_module
from voxlive.server.uploads import Uploads, _answer, classify_upload
from voxlive.settings import Settings

INFO = ModelInfo("m", "onnx", ("zeta", "alpha"), 16_000, fallback="no hub")
END = messages.end(stream_id="file-7", duration_ms=12.3125, windows=2, results=2, gated=0,
                   failed=0, dropped_windows=0, dropped_ms=0)  # fmt: skip


class _Classifier:
    info = INFO


class _Pipeline:
    """Answers with ``timeline`` (or raises ``fails``) once ``release`` is set."""

    def __init__(self, timeline: list[dict[str, Any]] | None = None, fails: BaseException | None = None,
                 wait: bool = False) -> None:  # fmt: skip
        self.classifier = _Classifier()
        self.timeline = timeline or []
        self.fails = fails
        self.release = asyncio.Event()
        if not wait:
            self.release.set()
        self.seen: list[int] = []
        self.cancelled = False

    async def classify(self, samples: np.ndarray) -> Classified:
        self.seen.append(len(samples))
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.fails is not None:
            raise self.fails
        return Classified(self.timeline, END)


class _Host:
    def __init__(self, pipeline: _Pipeline | None = None, status: str = "ready", **changes: Any) -> None:  # fmt: skip
        self.settings = Settings(window_ms=200, hop_ms=100).replace(**changes)
        self.pipeline = pipeline if pipeline is not None else _Pipeline()
        self.uploads = Uploads(self.settings)
        self.status = status

    @property
    def ready(self) -> bool:
        return self.status in ("ready", "degraded")


def _request(body: bytes, *, headers: dict[str, str] | None = None, query: str = "",
             chunks: int = 1, disconnect: asyncio.Event | None = None,
             stall: bool = False, after: int = 0) -> Request:  # fmt: skip
    """A request whose body arrives in ``chunks`` pieces, then ``after`` empty body messages;
    then ``receive`` waits for ``disconnect`` (forever when None) and says the client left."""
    size = -(-len(body) // chunks) if body else 0
    parts = [body[i : i + size] for i in range(0, len(body), size)] if body else [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
                for i, p in enumerate(parts)]  # fmt: skip
    messages += [{"type": "http.request", "body": b"", "more_body": False}] * after

    async def receive() -> dict[str, Any]:
        if stall:
            await asyncio.Event().wait()
        if messages:
            return messages.pop(0)
        await (disconnect or asyncio.Event()).wait()
        return {"type": "http.disconnect"}

    scope = {
        "type": "http", "method": "POST", "path": "/classify", "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }  # fmt: skip
    return Request(scope, receive)


def _json(response: Response) -> Any:
    return json.loads(bytes(response.body))


def _run(request: Request, host: _Host) -> Response:
    async def go() -> Response:
        return await classify_upload(request, host)

    return asyncio.run(go())


def _refused(response: Response, status: int, code: str, message: str) -> None:
    assert response.status_code == status
    assert _json(response) == {"error": {"code": code, "message": message}}


def test_a_file_gets_its_stream_s_messages_with_the_model_it_ran_on() -> None:
    """The stream's own ready (its id, the model, window and hop), its results and segments
    apart, and its own end; the model also on top for clients that read only that."""
    timeline = [
        {"type": "result", "start_ms": 0, "label": "alpha"},
        {"type": "segment", "start_ms": 0, "end_ms": 200, "label": "alpha"},
        {"type": "result", "start_ms": 100, "label": "zeta"},
    ]
    host = _Host(_Pipeline(timeline))
    r = _run(_request(wav(197 / 16_000), chunks=3), host)
    assert r.status_code == 200
    assert _json(r) == {
        "model": "m", "backend": "onnx", "fallback": "no hub", "labels": ["zeta", "alpha"],
        "duration_ms": 12.312, "window_ms": 200, "hop_ms": 100,
        "ready": {
            "type": "ready", "stream_id": "file-7", "model": "m", "backend": "onnx",
            "labels": ["zeta", "alpha"], "fallback": "no hub", "window_ms": 200, "hop_ms": 100,
            "sample_rate": 16_000, "model_sample_rate": 16_000, "smoothing": 4, "resumed": False,
        },
        "results": [timeline[0], timeline[2]], "segments": [timeline[1]], "end": END,
    }  # fmt: skip
    assert host.pipeline is not None and host.pipeline.seen == [197]
    assert host.uploads.active == 0


def _vector(name: str) -> Any:
    """spec/vectors/<name>, found above this file wherever its folder lies."""
    root = next(p for p in Path(__file__).resolve().parents if (p / "spec" / "vectors").is_dir())
    return json.loads((root / "spec" / "vectors" / name).read_text())


def _rebuild(message: dict[str, Any]) -> Any:
    """``message`` made again by the protocol's builder for its type."""
    fields = {k: v for k, v in message.items() if k not in ("type", "class")}
    if message["type"] == "error":
        return messages.error(fields.pop("code"), fields.pop("message"), **fields)
    builder = {"result": messages.result, "segment": messages.segment, "end": messages.end}
    return builder[message["type"]](**fields)


def test_the_answer_is_the_golden_one_the_page_reads() -> None:
    """spec/vectors/classify.json (the page's parser reads it too) is what the answer is made of:
    its items are what the protocol's builders make, and the answer around them is this one."""
    golden = _vector("classify.json")["answer"]
    done = Classified(
        [_rebuild(m) for m in golden["results"] + golden["segments"]], _rebuild(golden["end"])
    )
    info = ModelInfo("pitch", "pitch", ("male", "female"), 16_000)
    answer = _answer(Settings(window_ms=1000, hop_ms=500), info, 32_000, done)
    assert json.loads(bytes(answer.body)) == golden


def test_duration_is_rounded_to_the_microsecond() -> None:
    # 1 sample at 16 kHz is 62.5 µs: three decimals keep 0.062 (banker's rounding), not 0.0625
    r = _run(_request(wav(1 / 16_000)), _Host())
    assert _json(r)["duration_ms"] == 0.062


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 401),
        ({"Authorization": "Bearer nope"}, "", 401),
        ({}, "token=nope", 401),
        ({"Authorization": "Bearer s3cret"}, "", 200),
        ({}, "token=s3cret", 200),
    ],
)
def test_the_token_comes_from_the_header_or_the_query(headers: dict[str, str], query: str,
                                                      status: int) -> None:  # fmt: skip
    host = _Host(token="s3cret")
    r = _run(_request(wav(0.01), headers=headers, query=query), host)
    if status == 401:
        _refused(r, 401, "unauthorized", "expected 'Authorization: Bearer <token>' or ?token=")
        assert host.pipeline is not None and host.pipeline.seen == []
    else:
        assert r.status_code == 200
    assert host.uploads.active == 0


def test_a_stopping_server_takes_no_new_file() -> None:
    r = _run(_request(wav(0.01)), _Host(status="stopping"))
    _refused(r, 503, "shutting_down", "the server is shutting down; retry elsewhere")


@pytest.mark.parametrize("status", ["loading", "failed"])
def test_a_server_not_ready_says_its_status(status: str) -> None:
    host = _Host(status=status)
    r = _run(_request(wav(0.01)), host)
    _refused(r, 503, "not_ready", f"expected a ready server, got status {status!r}")


def test_a_ready_status_without_a_pipeline_is_not_ready() -> None:
    host = _Host()
    host.pipeline = None
    _refused(_run(_request(wav(0.01)), host), 503, "not_ready",
             "expected a ready server, got status 'ready'")  # fmt: skip


def test_a_degraded_server_classifies() -> None:
    assert _run(_request(wav(0.01)), _Host(status="degraded")).status_code == 200


def test_past_max_uploads_the_next_is_busy_with_retry_after() -> None:
    host = _Host(max_uploads=1)
    assert host.uploads.enter()  # another upload holds the only slot
    r = _run(_request(wav(0.01)), host)
    _refused(r, 503, "busy", "expected at most 1 uploads at once; retry shortly")
    assert r.headers["retry-after"] == "1"
    assert host.uploads.active == 1  # a refused upload does not give back a slot it never took


def test_empty_and_oversized_bodies_are_refused_and_give_the_slot_back() -> None:
    host = _Host(max_upload_bytes=1024)
    _refused(_run(_request(b""), host), 400, "empty_body",
             "expected an audio file in the request body, got 0 bytes")  # fmt: skip
    _refused(_run(_request(b"x" * 1025, chunks=4), host), 413, "too_large",
             "body exceeds the limit of 1024 bytes")  # fmt: skip
    assert host.uploads.active == 0
    assert host.uploads.enter()  # the slot is free again


def test_a_body_that_does_not_arrive_in_time_is_408() -> None:
    host = _Host(upload_timeout_ms=1000)
    r = _run(_request(wav(0.01), stall=True), host)
    _refused(r, 408, "upload_timeout", "expected the body within 1 s")
    assert host.uploads.active == 0


def test_undecodable_audio_is_a_400_with_the_decoder_s_reason() -> None:
    host = _Host()
    r = _run(_request(b"RIFF not really a wav"), host)
    assert r.status_code == 400
    error = _json(r)["error"]
    assert error["code"] == "bad_audio_file" and error["message"]
    too_long = _run(_request(wav(1.5)), _Host(max_upload_ms=1000))
    assert too_long.status_code == 400 and _json(too_long)["error"]["code"] == "too_long"
    assert host.uploads.active == 0


@pytest.mark.parametrize("rate", [48_000, 8_000])
def test_the_duration_limit_counts_at_the_file_s_own_sample_rate(rate: int) -> None:
    """2 s is 96,000 samples at 48 kHz and 16,000 at 8 kHz: neither is counted at the model's
    16 kHz (which would refuse 1.9 s at 48 kHz and let 3.9 s through at 8 kHz)."""
    host = _Host(max_upload_ms=2000)
    fits = _run(_request(wav(1.9, rate)), host)
    assert fits.status_code == 200 and _json(fits)["duration_ms"] == 1900.0
    assert host.pipeline.seen == [1.9 * 16_000]  # resampled to the model's rate after the check
    too_long = _run(_request(wav(2.1, rate)), _Host(max_upload_ms=2000))  # one loop per host
    assert too_long.status_code == 400
    assert _json(too_long)["error"]["code"] == "too_long"
    assert "at most 2 s of audio, got 2.1 s" in _json(too_long)["error"]["message"]


def test_a_client_that_leaves_cancels_the_work_and_gets_499() -> None:
    async def go() -> tuple[Response, _Host]:
        host = _Host(_Pipeline(wait=True))
        gone = asyncio.Event()
        task = asyncio.create_task(classify_upload(_request(wav(0.01), disconnect=gone), host))
        await asyncio.sleep(10 * MS)
        assert not task.done() and host.uploads.active == 1
        gone.set()
        return await asyncio.wait_for(task, 5_000 * MS), host

    r, host = asyncio.run(go())
    assert r.status_code == 499
    assert host.pipeline is not None and host.pipeline.cancelled
    assert host.uploads.active == 0


def test_other_messages_from_the_client_do_not_count_as_leaving() -> None:
    async def go() -> Response:
        host = _Host(_Pipeline(wait=True))
        task = asyncio.create_task(classify_upload(_request(wav(0.01), after=3), host))
        await asyncio.sleep(20 * MS)
        assert not task.done()
        assert host.pipeline is not None
        host.pipeline.release.set()
        return await asyncio.wait_for(task, 5_000 * MS)

    assert asyncio.run(go()).status_code == 200


def test_a_shutdown_that_cuts_the_upload_answers_503() -> None:
    async def go() -> tuple[Response, _Host]:
        host = _Host(_Pipeline(wait=True))
        task = asyncio.create_task(classify_upload(_request(wav(0.01)), host))
        await asyncio.sleep(10 * MS)
        await host.uploads.drain(0.01)  # nothing finishes in time: the rest are cut
        return await asyncio.wait_for(task, 5_000 * MS), host

    r, host = asyncio.run(go())
    _refused(r, 503, "shutting_down", "the server shut down before the file was classified")
    assert host.pipeline is not None and host.pipeline.cancelled
    assert host.uploads.active == 0


def test_a_failed_worker_answers_running_uploads_at_once_and_not_later_ones() -> None:
    """The file's windows will never come back from a crashed batcher: 503 now, not a hang."""

    async def go() -> tuple[Response, _Host, asyncio.Task[Response]]:
        host = _Host(_Pipeline(wait=True))
        task = asyncio.create_task(classify_upload(_request(wav(0.01)), host))
        await asyncio.sleep(0.01)
        host.uploads.fail_all()
        failed = await asyncio.wait_for(task, 5)
        later = asyncio.create_task(classify_upload(_request(wav(0.01)), host))
        await asyncio.sleep(0.01)
        assert not later.done()  # a later upload is not failed by the earlier crash
        host.pipeline.release.set()
        await asyncio.wait_for(later, 5)
        return failed, host, later

    r, host, later = asyncio.run(go())
    _refused(r, 503, "internal_error", "the server's model worker failed; retry shortly")
    assert host.pipeline is not None and host.pipeline.cancelled
    assert later.result().status_code == 200
    assert host.uploads.active == 0


def test_a_drain_waits_for_uploads_that_finish_in_time() -> None:
    async def go() -> tuple[Response, _Host]:
        host = _Host(_Pipeline(wait=True))
        task = asyncio.create_task(classify_upload(_request(wav(0.01)), host))
        await asyncio.sleep(10 * MS)
        drain = asyncio.create_task(host.uploads.drain(5))
        await asyncio.sleep(10 * MS)
        assert not drain.done()
        assert host.pipeline is not None
        host.pipeline.release.set()
        await asyncio.wait_for(drain, 5_000 * MS)
        assert not host.uploads.cut.is_set()
        return await task, host

    r, _host = asyncio.run(go())
    assert r.status_code == 200


def test_a_pipeline_failure_is_raised_not_hidden() -> None:
    host = _Host(_Pipeline(fails=RuntimeError("model broke")))
    with pytest.raises(RuntimeError, match="model broke"):
        _run(_request(wav(0.01)), host)
    assert host.uploads.active == 0


def test_the_upload_count_is_bounded_and_idle_only_at_zero() -> None:
    async def go() -> None:
        uploads = Uploads(Settings(max_uploads=2))
        assert uploads.enter() and uploads.enter()
        assert not uploads.enter()
        assert uploads.active == 2
        uploads.leave()
        drain = asyncio.create_task(uploads.drain(5))
        await asyncio.sleep(10 * MS)
        assert not drain.done()  # one still running
        uploads.leave()
        await asyncio.wait_for(drain, 1_000 * MS)
        assert not uploads.cut.is_set()

    asyncio.run(go())


# ---- round two (#23): origin, a slot only for a whole body, work, decodes that stop ------------


@pytest.mark.parametrize(
    ("headers", "allowed", "status"),
    [
        ({"Origin": "https://evil.example", "Content-Type": "text/plain"}, (), 403),
        ({"Origin": "null"}, (), 403),
        ({"Origin": "http://127.0.0.1:8000", "Host": "127.0.0.1:8000"}, (), 200),  # same origin
        ({"Origin": "http://localhost:5173", "Host": "127.0.0.1:8000"}, (), 200),  # localhost
        ({"Origin": "https://app.example", "Host": "api.example"}, ("https://app.example",), 200),
        ({"Origin": "https://evil.example"}, ("https://app.example",), 403),
        ({"Content-Type": "text/plain"}, (), 200),  # no Origin: curl, scripts
    ],
)
def test_a_foreign_page_is_refused_before_its_body_is_read(
    headers: dict[str, str], allowed: tuple[str, ...], status: int
) -> None:
    host = _Host(allowed_origins=allowed)
    if status == 200:
        assert _run(_request(wav(0.01), headers=headers), host).status_code == 200
        return

    async def go() -> Response:  # a body that never comes: refused without reading it
        return await asyncio.wait_for(
            classify_upload(_request(b"", headers=headers, stall=True), host), 1_000 * MS
        )

    origin = headers["Origin"]
    _refused(asyncio.run(go()), 403, "origin_not_allowed",
             f"origin {origin!r} is not allowed; expected the server's own origin, localhost, "
             "or one listed in VOXLIVE_ALLOWED_ORIGINS")  # fmt: skip
    assert host.pipeline is not None and host.pipeline.seen == []


def test_a_body_still_arriving_holds_no_slot() -> None:
    """With one slot, an upload whose body stalls after its first bytes does not keep the next
    one out: the slot is taken only once a body is whole."""

    async def go() -> tuple[Response, Response, _Host]:
        host = _Host(max_uploads=1)
        release = asyncio.Event()
        body = wav(0.01)

        async def receive() -> dict[str, Any]:
            if not release.is_set():
                await release.wait()  # after its first bytes
                return {"type": "http.request", "body": body[4:], "more_body": False}
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        first_bytes = [{"type": "http.request", "body": body[:4], "more_body": True}]

        async def slow() -> dict[str, Any]:
            return first_bytes.pop() if first_bytes else await receive()

        scope = {"type": "http", "method": "POST", "path": "/classify", "headers": [],
                 "query_string": b""}  # fmt: skip
        trickling = asyncio.create_task(classify_upload(Request(scope, slow), host))
        await asyncio.sleep(20 * MS)
        assert host.uploads.active == 0 and host.uploads.receiving.held == 4
        honest = await asyncio.wait_for(classify_upload(_request(body), host), 5_000 * MS)
        release.set()
        return honest, await asyncio.wait_for(trickling, 5_000 * MS), host

    honest, slow, host = asyncio.run(go())
    assert honest.status_code == 200 and slow.status_code == 200
    assert host.uploads.active == 0 and host.uploads.receiving.held == 0


def test_a_file_over_the_work_limit_is_413_before_decoding() -> None:
    """0.1 s of 192 kHz × 8 channels is 153,600 samples × channels: more than 1 s at 48 kHz
    stereo."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros((19_200, 8), np.float32), 192_000, format="FLAC")
    host = _Host(max_upload_ms=1000)
    r = _run(_request(buf.getvalue()), host)
    _refused(r, 413, "too_much_audio",
             "expected at most 96000 samples × channels to decode (1 s at 48 kHz stereo), got "
             "153600 (0.1 s at 192000 Hz × 8 channels)")  # fmt: skip
    assert host.pipeline is not None and host.pipeline.seen == [] and host.uploads.active == 0


class _SlowDecode:
    """Stands in for decode_file: one 1 ms "block" per check of its control, for up to 10 s."""

    def __init__(self) -> None:
        self.controls: list[Control] = []

    def __call__(self, body: bytes, rate: int, max_ms: int, control: Control) -> np.ndarray:
        self.controls.append(control)
        try:
            for _ in range(10_000):
                control.check()
                control.blocks += 1
                time.sleep(1 * MS)
            return np.zeros(16, np.float32)
        finally:
            control.done.set()


def test_a_client_that_leaves_while_its_file_decodes_frees_the_slot_and_stops_the_decode(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    decode = _SlowDecode()
    monkeypatch.setattr(uploads_module, "decode_file", decode)

    async def go() -> tuple[Response, float, _Host]:
        host = _Host(max_uploads=1)
        gone = asyncio.Event()
        task = asyncio.create_task(classify_upload(_request(wav(0.01), disconnect=gone), host))
        await eventually(lambda: bool(decode.controls) and decode.controls[0].blocks > 5,
                         "the decode to run")  # fmt: skip
        assert host.uploads.active == 1 and len(host.uploads.decoders) == 1
        left = time.monotonic()
        gone.set()
        r = await asyncio.wait_for(task, 5_000 * MS)
        freed_s = time.monotonic() - left
        assert host.uploads.enter()  # the slot is free at once
        host.uploads.leave()
        await eventually(lambda: not host.uploads.decoders, "the decode thread to return")
        return r, freed_s, host

    with caplog.at_level(logging.DEBUG, logger=uploads_module.__name__):
        r, freed_s, host = asyncio.run(go())
    assert r.status_code == 499 and freed_s < 100 * MS
    control = decode.controls[0]
    assert control.stopped and control.done.is_set()
    blocks = control.blocks
    time.sleep(20 * MS)
    assert control.blocks == blocks < 1_000  # stopped, long before its 10,000 blocks
    assert host.pipeline is not None and host.pipeline.seen == []
    assert caplog.messages == ["upload: the client left while its file was decoded"]


def test_a_decode_past_the_upload_timeout_stops_and_answers_503(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decode = _SlowDecode()
    monkeypatch.setattr(uploads_module, "decode_file", decode)
    host = _Host(upload_timeout_ms=1000)
    r = _run(_request(wav(0.01)), host)
    _refused(r, 503, "decode_timeout",
             "expected the file decoded within 1 s; the server is busy, retry later")  # fmt: skip
    assert r.headers["retry-after"] == "1"
    assert decode.controls[0].done.is_set() and 100 < decode.controls[0].blocks < 2_000
    assert host.uploads.active == 0
