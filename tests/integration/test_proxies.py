"""The front proxies' per-client limits, run for real: Debian's nginx with the image's config and
HAProxy with deploy/haproxy's, each in front of real back ends on loopback. Clients come from
their own loopback addresses (127.0.0.x), so each is a client of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.helpers import MS, StreamRun, collect, eventually, load, pcm16, running_server
from tests.integration.test_deploy import NGINX, ROOT, render_nginx
from voxlive.bench.serving import free_port

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


async def _until_up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                await client.get(url + "/healthz")
                return
            await asyncio.sleep(50 * MS)
    raise AssertionError(f"expected the proxy at {url} to answer")


@contextlib.asynccontextmanager
async def _process(*cmd: str) -> AsyncIterator[None]:
    proc = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.PIPE)
    try:
        yield
    finally:
        proc.terminate()
        await proc.wait()


async def _upgrade_status(url: str, source: str) -> int:
    """The HTTP status of one WebSocket upgrade from ``source`` (101: opened, then closed)."""
    try:
        async with websockets.connect(url, local_addr=(source, 0)) as ws:
            await ws.close()
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


async def _stream_from(url: str, source: str, seconds: float = 2.0) -> StreamRun:
    female, rate = load("female_speech.wav")
    run = StreamRun()
    async with websockets.connect(url + f"?sample_rate={rate}", local_addr=(source, 0)) as ws:
        reader = asyncio.create_task(collect(ws, run))
        await ws.send(pcm16(female[: int(seconds * rate)]))
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 10_000 * MS)
    return run


async def test_nginx_limits_new_streams_per_client_and_names_the_client(tmp_path: Path) -> None:
    if not Path(NGINX).exists():
        pytest.fail("expected Debian's nginx: apt-get install nginx (.ci/run does)")
    async with running_server(trusted_proxies=("127.0.0.1",)) as srv:
        port = free_port()
        conf = render_nginx(tmp_path, srv.url, port)
        async with _process(NGINX, "-c", str(conf)):
            url = f"http://127.0.0.1:{port}"
            await _until_up(url)
            statuses = await asyncio.gather(
                *(_upgrade_status(url.replace("http", "ws") + "/audio", "127.0.0.4")
                  for _ in range(30))
            )  # fmt: skip
            # one at once plus a burst of 20, at 2 a second: most of 30 at once are refused
            assert 21 <= statuses.count(101) <= 23 and statuses.count(429) == 30 - statuses.count(
                101
            )
            seen: set[str] = set()
            srv.service.sources.open = _spy(srv.service.sources.open, seen)
            run = await _stream_from(url.replace("http", "ws") + "/audio", "127.0.0.3")
    assert run.close_code == 1000 and run.results
    assert seen == {"127.0.0.3"}  # the back end counted the client, not the proxy


async def _socket_from(port: int, source: str) -> asyncio.StreamWriter | None:
    """A socket to the proxy from ``source``; None when the proxy closes (or resets) it."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        async with asyncio.timeout(50 * MS):  # the proxy's threads decide within this
            await reader.read(1)
    except TimeoutError:
        return writer  # still open
    except OSError:
        return None
    writer.close()
    return None


def _spy(open_: Any, seen: set[str]) -> Any:
    def spy(source: str) -> Any:
        seen.add(source)
        return open_(source)

    return spy


async def test_haproxy_balances_streams_and_caps_connections_per_client(tmp_path: Path) -> None:
    if not Path(HAPROXY).exists():
        pytest.fail("expected Debian's haproxy: apt-get install haproxy (.ci/run does)")
    async with contextlib.AsyncExitStack() as stack:
        fronts = [await stack.enter_async_context(running_server(trusted_proxies=("127.0.0.1",)))
                  for _ in range(2)]  # fmt: skip
        port = free_port()
        cfg = subprocess.run(
            [str(ROOT / "deploy/haproxy/render.sh"), f"127.0.0.1:{port}",
             *(f.url.removeprefix("http://") for f in fronts)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (tmp_path / "haproxy.cfg").write_text(cfg)
        check = subprocess.run([HAPROXY, "-c", "-f", str(tmp_path / "haproxy.cfg")],
                               capture_output=True, text=True)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
        await stack.enter_async_context(_process(HAPROXY, "-f", str(tmp_path / "haproxy.cfg")))
        url = f"http://127.0.0.1:{port}"
        await _until_up(url)
        ws_url = url.replace("http", "ws") + "/audio"
        # Two streams at once: one on each front (leastconn), each front counts its client.
        seen: list[set[str]] = [set(), set()]
        for front, names in zip(fronts, seen, strict=True):
            front.service.sources.open = _spy(front.service.sources.open, names)
        async with (
            websockets.connect(ws_url + "?sample_rate=16000", local_addr=("127.0.0.5", 0)),
            websockets.connect(ws_url + "?sample_rate=16000", local_addr=("127.0.0.6", 0)),
        ):
            await eventually(
                lambda: all(f.service.registry.connections for f in fronts), "a stream on each"
            )
        assert sorted(map(sorted, seen)) == [["127.0.0.5"], ["127.0.0.6"]]
        run = await _stream_from(ws_url, "127.0.0.5")  # and results flow through it
        assert run.close_code == 1000 and run.results
        # 64 sockets from one client are its share: of 70, six are closed before any request.
        opened = [await _socket_from(port, "127.0.0.7") for _ in range(70)]
        assert sum(w is not None for w in opened) == 64
        async with httpx.AsyncClient() as client:  # another client is not affected
            assert (await client.get(url + "/healthz")).status_code == 200
        for w in opened:
            if w is not None:
                w.close()
