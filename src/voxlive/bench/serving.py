"""Servers to drive: a free loopback port, waiting until ``/readyz`` says ready, a server in
this process, and ``voxlive serve`` in a child process. Shared by the benchmarks and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxlive.inference.base import Classifier
from voxlive.settings import Settings


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (another process may take it before you do)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def wait_ready(
    http_url: str,
    *,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    what: str = "server",
    token: str | None = None,
) -> None:
    """Poll ``http_url + "/readyz"`` until it answers 200 (sending ``token`` as a Bearer token
    when given). Raises :class:`RuntimeError` when ``alive()`` turns false (the server exited)
    or after ``timeout_s`` seconds."""
    import httpx

    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=2, headers=headers) as client:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(http_url + "/readyz")).status_code == 200:
                    return
            if not alive():
                raise RuntimeError(f"{what} exited before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready after {timeout_s:g} s")
            await asyncio.sleep(0.02)


@dataclass
class InProcess:
    """A server running in this event loop."""

    url: str  # http://127.0.0.1:PORT
    app: Any  # the Starlette app
    server: Any  # the uvicorn server: set should_exit to shut down as on SIGTERM
    task: asyncio.Task[None]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/audio"

    @property
    def service(self) -> Any:
        return self.app.state.service


@contextlib.asynccontextmanager
async def serve_in_process(
    settings: Settings,
    classifier: Classifier | None = None,
    port: int = 0,
    uvicorn_changes: dict[str, Any] | None = None,
) -> AsyncIterator[InProcess]:
    """``create_app(settings)`` served on a loopback port (free by default) in this event loop,
    from when it is ready until the block ends (then shut down as on SIGTERM).
    ``uvicorn_changes``: uvicorn options to override (the keepalive's ``ws_ping_interval``)."""
    from voxlive.server.app import create_app
    from voxlive.server.runner import Server, uvicorn_config

    app = create_app(settings, classifier=classifier)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn_config(
        app, settings, log_level="warning", lifespan="on", **(uvicorn_changes or {})
    )
    server = Server(config, app.state.service)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        alive = lambda: not task.done()  # noqa: E731
        await wait_ready(url, timeout_s=60, alive=alive, token=settings.token or None)
        yield InProcess(url, app, server, task)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


@dataclass
class Target:
    """A server to drive, by name."""

    name: str
    url: str  # ws://host:port/audio
    process: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return self.url.replace("ws://", "http://").replace("wss://", "https://").rsplit("/", 1)[0]


def _spawn(cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


@contextlib.asynccontextmanager
async def serve_subprocess(
    name: str, flags: Sequence[str], log_path: Path, timeout_s: float = 900
) -> AsyncIterator[Target]:
    """``voxlive serve FLAGS`` on a free loopback port until ready (the first ONNX export takes
    a while: ``timeout_s``); stopped when the block ends."""
    port = free_port()
    cmd = [sys.executable, "-m", "voxlive", "serve", *flags, "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning"]  # fmt: skip
    proc = await asyncio.to_thread(_spawn, cmd, log_path)
    target = Target(name, f"ws://127.0.0.1:{port}/audio", proc)
    try:
        try:
            await wait_ready(
                target.http, timeout_s=timeout_s, alive=lambda: proc.poll() is None,
                what=f"bench: server {name!r}",
            )  # fmt: skip
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} (exit status {proc.poll()}); see {log_path}") from None
        yield target
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
