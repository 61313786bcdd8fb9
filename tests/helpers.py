"""Shared test helpers: a real server on a free loopback port, a real WebSocket client, a real
Service in-process, audio, waiting for asynchronous state. Fakes are in fakes.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import websockets

from tests.fakes import FakeClassifier
from voxlive import cli
from voxlive.bench.load import pcm16 as pcm16
from voxlive.bench.options import Options, options
from voxlive.bench.serving import InProcess, serve_in_process
from voxlive.bench.serving import free_port as free_port  # written once, re-exported here
from voxlive.bench.serving import wait_ready as wait_ready
from voxlive.inference.base import Classifier
from voxlive.server.service import Service
from voxlive.settings import Settings
from voxlive.settings_sources import build

ROOT = Path(__file__).resolve().parents[1]  # the repository
DATA = ROOT / "tests" / "data"  # the recordings (see data/README.md)
MS = 0.001  # the single timing unit of the tests


def load(name: str) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(DATA / name, dtype="float32")
    return samples, int(rate)


def load_chunks(name: str, chunks: int | None = None, chunk: int = 512) -> np.ndarray:
    """A 16 kHz recording cut to whole VAD chunks of ``chunk`` samples: the first ``chunks`` of
    them, or all it holds (``None``)."""
    samples, rate = load(name)
    assert rate == 16_000, rate
    n = len(samples) // chunk if chunks is None else chunks
    return samples[: n * chunk]


def golden_messages(side: str) -> list[dict[str, Any]]:
    """The golden messages that ``side`` ("server" or "client") sends, from
    spec/vectors/messages.json (read by the Python and the web tests alike)."""
    vectors = json.loads((ROOT / "spec" / "vectors" / "messages.json").read_text())
    return list(vectors[side])


@contextlib.asynccontextmanager
async def running_server(
    settings: Settings | None = None,
    classifier: Classifier | None = None,
    port: int = 0,
    uvicorn_changes: dict[str, Any] | None = None,
    **changes: Any,
) -> AsyncIterator[InProcess]:
    """Serve create_app() on a loopback port (free by default) in this event loop, from when it
    is ready until the block ends. Default settings: the pitch model, no web app."""
    settings = (settings or Settings(model="pitch", web_dir="/nonexistent")).replace(**changes)
    async with serve_in_process(settings, classifier, port, uvicorn_changes) as server:
        yield server


@contextlib.asynccontextmanager
async def service(classifier: Classifier | None = None, **changes: Any) -> AsyncIterator[Service]:
    """A started Service in this event loop, ready (no server, no socket: hand it a fake
    WebSocket); stopped when the block ends. Default: the fake classifier at 16 kHz, 200 ms
    windows every 100 ms, no gate, no pacing."""
    settings = Settings(model="pitch", web_dir="/nonexistent", window_ms=200, hop_ms=100,
                        gate="none", max_speed=0).replace(**changes)  # fmt: skip
    svc = Service(settings, classifier=classifier or FakeClassifier(sample_rate=16_000))
    await svc.start()
    await eventually(lambda: svc.ready, "a ready service")
    try:
        yield svc
    finally:
        await svc.stop()


def tone(ms: int, level: float = 0.25, rate: int = 16_000) -> bytes:
    """``ms`` milliseconds of a constant ``level`` as PCM16 at ``rate`` Hz: a client's frame."""
    return pcm16(np.full(rate * ms // 1000, level, np.float32))


def wav(seconds: float, rate: int = 16_000, level: float = 0.25) -> bytes:
    """A WAV file of ``seconds`` of a constant ``level``: an upload's body."""
    buf = io.BytesIO()
    sf.write(buf, np.full(int(rate * seconds), level, np.float32), rate, format="WAV")
    return buf.getvalue()


async def eventually(
    check: Callable[[], bool], what: str, within_s: float = 5_000 * MS, every_s: float = 10 * MS
) -> None:
    """Wait until ``check()`` holds (instead of sleeping a fixed time before asserting state the
    server reaches asynchronously); fail after ``within_s`` seconds, saying ``what`` was
    expected."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {what} within {within_s:g} s")
        await asyncio.sleep(every_s)


@dataclass
class StreamRun:
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    @property
    def results(self) -> list[dict[str, Any]]:
        return self.of("result")


async def collect(ws: Any, run: StreamRun) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in ws:
            run.messages.append(json.loads(raw))
    run.close_code, run.close_reason = ws.close_code, ws.close_reason


async def stream_audio(
    url: str,
    samples: np.ndarray,
    rate: int,
    *,
    chunk_ms: int = 100,
    speed: float = 1.0,
    start: dict[str, Any] | None = None,
    stop: bool = True,
    send_start: bool = True,
) -> StreamRun:
    """Stream mono float samples as PCM16 chunks, paced at ``speed`` × real time (0: flat out).
    ``send_start=False``: no start message (the URL's query parameters carry it)."""
    run = StreamRun()
    async with websockets.connect(url, max_size=None) as ws:
        reader = asyncio.create_task(collect(ws, run))
        if send_start:
            await ws.send(json.dumps(start or {"type": "start", "sample_rate": rate}))
        chunk = rate * chunk_ms // 1000
        t0 = time.monotonic()
        for i, begin in enumerate(range(0, len(samples), chunk)):
            await ws.send(pcm16(samples[begin : begin + chunk]))
            if speed > 0:
                due = t0 + (i + 1) * chunk_ms * MS / speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        if stop:
            await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 60_000 * MS)
    return run


def majority(labels: list[str]) -> str:
    values, counts = np.unique(labels, return_counts=True)
    return str(values[int(np.argmax(counts))])


def bench_options(*argv: str) -> Options:
    """``voxlive bench --audio a.wav`` with ``argv``, parsed by the CLI's own parser, with
    VOXLIVE_TOKEN set."""
    full = ["bench", "--audio", "a.wav", *argv]
    args = vars(cli._parser().parse_args(full))
    return options(args, build(args, {}), {"VOXLIVE_TOKEN": "s3cret"}, full)
