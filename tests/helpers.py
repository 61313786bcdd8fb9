"""Shared test helpers: a real server on a free loopback port, a real WebSocket client, audio."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf
import uvicorn
import websockets

from voxlive.inference.base import Classifier
from voxlive.server.app import create_app
from voxlive.server.runner import Server as VoxliveServer
from voxlive.server.runner import uvicorn_config
from voxlive.settings import Settings

DATA = Path(__file__).resolve().parent / "data"  # the recordings (see data/README.md)
MS = 0.001  # the single timing unit of the tests


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for processes that must be told their port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(name: str) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(DATA / name, dtype="float32")
    return samples, int(rate)


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    app: Any
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/audio"

    @property
    def service(self) -> Any:
        return self.app.state.service


@contextlib.asynccontextmanager
async def running_server(
    settings: Settings | None = None,
    classifier: Classifier | None = None,
    port: int = 0,
    **changes: Any,
) -> AsyncIterator[Server]:
    """Serve create_app() on a loopback port (free by default) in this event loop; wait until
    ready."""
    settings = (settings or Settings(model="pitch", web_dir="/nonexistent")).replace(**changes)
    app = create_app(settings, classifier=classifier)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn_config(app, settings, log_level="warning", lifespan="on")
    server = VoxliveServer(config, app.state.service)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(url + "/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline or task.done():
                    raise RuntimeError("server did not become ready")
                await asyncio.sleep(20 * MS)
        yield Server(url, app, server, task)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


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
) -> StreamRun:
    """Stream mono float samples as PCM16 chunks, paced at ``speed`` × real time (0: flat out)."""
    run = StreamRun()
    async with websockets.connect(url, max_size=None) as ws:
        reader = asyncio.create_task(collect(ws, run))
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
        await asyncio.wait_for(reader, 60)
    return run


def majority(labels: list[str]) -> str:
    values, counts = np.unique(labels, return_counts=True)
    return str(values[int(np.argmax(counts))])
