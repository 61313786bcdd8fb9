"""The VAD runner (pipeline/vad.py): with a scripted VAD it wakes for new audio on its own
thread, survives a failing VAD and forgets removed streams; with Silero VAD, ambient audio
never reaches the model."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import numpy as np
import pytest

from tests.fakes import FakeClassifier
from tests.helpers import MS, load_chunks
from voxlive.audio.vad import SileroVad, VadState
from voxlive.pipeline.batcher import Batcher
from voxlive.pipeline.config import StreamConfig
from voxlive.pipeline.hooks import StreamHooks
from voxlive.pipeline.stream import Stream

RATE = 16_000
CHUNK = 512
VAD_CFG = StreamConfig(sample_rate=RATE, window_ms=256, hop_ms=256, buffer_ms=2048,
                       labels=("a", "b"), gate="vad", vad_min_speech_ms=64, smoothing=1)  # fmt: skip


# ---- the VAD runner, with a scripted VAD ------------------------------------------------------
class ScriptedVad:
    """Stands in for SileroVad: every chunk gets ``self.prob``; ``fail`` calls raise. Records
    the threads it ran on and the chunks it saw."""

    def __init__(self, prob: float = 0.9, fail: int = 0) -> None:
        self.prob = prob
        self.fail = fail
        self.threads: set[str] = set()
        self.chunks = 0

    def run(self, jobs: list[tuple[VadState, np.ndarray]]) -> list[np.ndarray]:
        self.threads.add(threading.current_thread().name)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("vad broke")
        self.chunks += sum(len(audio) // CHUNK for _, audio in jobs)
        return [np.full(len(audio) // CHUNK, self.prob, np.float32) for _, audio in jobs]


async def _vad_batcher(vad: ScriptedVad) -> tuple[Batcher, Stream, asyncio.Event]:
    batcher = Batcher(
        FakeClassifier(sample_rate=RATE),
        max_batch=4,
        max_wait_ms=0,
        vad=vad,  # type: ignore[arg-type]
    )
    ready = asyncio.Event()
    stream = Stream("s", VAD_CFG, listener=StreamHooks(batcher, ready.set))
    batcher.add(stream)
    batcher.start()
    await asyncio.sleep(10 * MS)  # both tasks idle, asleep on their events
    return batcher, stream, ready


async def _messages(stream: Stream, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(5_000 * MS):
        while len(out) < n:
            out.extend(stream.pop_messages())
            await asyncio.sleep(2 * MS)
    return out


async def test_the_vad_runner_wakes_for_new_audio_and_runs_on_its_own_thread() -> None:
    vad = ScriptedVad()
    batcher, stream, _ = await _vad_batcher(vad)
    try:
        assert {"voxlive-model", "voxlive-vad"} <= {t.get_name() for t in asyncio.all_tasks()}
        stream.push(np.zeros(8 * CHUNK, np.float32))
        [first] = await _messages(stream, 1)
        await asyncio.sleep(10 * MS)  # idle again
        vad.prob = 0.1
        stream.push(np.zeros(8 * CHUNK, np.float32))
        [second] = await _messages(stream, 1)
    finally:
        await batcher.close()
    assert (first["gated"], second["gated"]) == (False, True)
    assert len(vad.threads) == 1 and vad.threads.pop().startswith("voxlive-vad")


async def test_when_the_vad_fails_its_windows_go_to_the_model_and_it_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    vad = ScriptedVad(prob=0.1, fail=1)
    batcher, stream, _ = await _vad_batcher(vad)
    try:
        stream.push(np.zeros(8 * CHUNK, np.float32))
        [first] = await _messages(stream, 1)
        stream.push(np.zeros(8 * CHUNK, np.float32))
        [second] = await _messages(stream, 1)
    finally:
        await batcher.close()
    assert (first["gated"], second["gated"]) == (False, True)  # speech by default, then ambient
    [record] = [r for r in caplog.records if r.name == "voxlive.pipeline.vad"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "VAD failed; its windows go to the classifier"


async def test_a_stream_removed_from_the_batcher_gets_no_more_vad_work() -> None:
    vad = ScriptedVad()
    batcher, stream, _ = await _vad_batcher(vad)
    try:
        stream.push(np.zeros(8 * CHUNK, np.float32))
        await _messages(stream, 1)
        seen = vad.chunks
        batcher.remove(stream)
        batcher.remove(stream)  # idempotent (closing a stream twice removes it twice)
        stream.push(np.zeros(8 * CHUNK, np.float32))
        await asyncio.sleep(100 * MS)  # time enough for the VAD runner to look at it
    finally:
        await batcher.close()
    assert seen == 8 and vad.chunks == 8 and stream.gating == 1


# ---- with Silero VAD and a recording -------------------------------------------------------------
async def test_the_batcher_runs_the_vad_and_ambient_never_reaches_the_model() -> None:
    clf = FakeClassifier(row=(0.4, 0.6), sample_rate=RATE)
    batcher = Batcher(clf, max_batch=4, max_wait_ms=1, vad=SileroVad(RATE))
    cfg = StreamConfig(sample_rate=RATE, window_ms=1000, hop_ms=500, buffer_ms=20_000,
                       labels=("a", "b"), gate="vad", smoothing=1)  # fmt: skip
    settled = asyncio.Event()
    speech = Stream("speech", cfg, listener=StreamHooks(batcher, settled.set))
    ambient = Stream("ambient", cfg, listener=StreamHooks(batcher, settled.set))
    batcher.add(speech)
    batcher.add(ambient)
    batcher.start()
    try:
        speech.push(load_chunks("female_speech.wav", 140))  # 4.48 s: 7 windows and a tail
        ambient.push(np.zeros(140 * CHUNK, np.float32))
        for s in (speech, ambient):
            s.finish()
        async with asyncio.timeout(30_000 * MS):
            while any(s.gating or s.pending or s.inflight for s in (speech, ambient)):
                settled.clear()
                await settled.wait()
        labels = {s.id: [m["label"] for m in s.pop_messages()] for s in (speech, ambient)}
    finally:
        await batcher.close()
    assert set(labels["ambient"]) == {"ambient"} and len(labels["ambient"]) == 8
    assert len(labels["speech"]) == 8 and labels["speech"].count("b") >= 6
    assert clf.windows == len(labels["speech"]) - labels["speech"].count("ambient")
