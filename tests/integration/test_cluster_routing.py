"""Routing across fronts, run for real: three fronts (pitch model, in this process, each with
its agent) behind Debian's HAProxy with deploy/haproxy's config and agent-check, on loopback.
Live streams spread evenly; a full front gets no new stream until it has room again; a front
that heard SIGTERM says drain at once and gets no new stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.helpers import MS, StreamRun, collect, running_server, tone
from tests.integration.test_deploy import ROOT
from voxlive.bench.balancer import HAPROXY, haproxy, render, states
from voxlive.bench.serving import InProcess, free_port, serve_subprocess

FRONTS = 3


async def _until(sock: Path, want: Any, what: str, within_s: float = 10.0) -> dict[str, str]:
    """HAProxy's view of the fronts, once ``want(view)`` holds (bounded)."""
    deadline = time.monotonic() + within_s
    view: dict[str, str] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            view = await states(sock)
            if want(view):
                return view
        await asyncio.sleep(50 * MS)
    raise AssertionError(f"expected HAProxy to see {what}, got {view}")


@contextlib.asynccontextmanager
async def _cluster(
    tmp_path: Path, last_in_a_process: bool = False, **changes: Any
) -> AsyncIterator[tuple[list[Any], list[int], str, Path]]:
    """Three fronts (in this process; the last one in a child process of its own when
    ``last_in_a_process``, so that it can be sent a real SIGTERM) behind HAProxy."""
    if not Path(HAPROXY).exists():
        pytest.fail("expected Debian's haproxy: apt-get install haproxy (.ci/run does)")
    async with contextlib.AsyncExitStack() as stack:
        fronts: list[Any] = []
        agents = [free_port() for _ in range(FRONTS)]
        for i, agent in enumerate(agents):
            if last_in_a_process and i == FRONTS - 1:
                flags = ["--model", "pitch", "--gate", "rms", "--agent-port", str(agent),
                         "--trusted-proxies", "127.0.0.1"]  # fmt: skip
                serving = serve_subprocess("front3", flags, tmp_path / "front3.log", 60)
            else:
                serving = running_server(
                    trusted_proxies=("127.0.0.1",), agent_port=agent, gate="rms", **changes
                )
            fronts.append(await stack.enter_async_context(serving))
        names = [f"{f.url.split('/')[2]}:{a}" for f, a in zip(fronts, agents, strict=True)]
        port, sock = free_port(), tmp_path / "haproxy.sock"
        await stack.enter_async_context(haproxy(render(f"127.0.0.1:{port}", names, sock), tmp_path))
        await _until(sock, lambda v: list(v.values()) == ["UP"] * FRONTS, "every front UP")
        yield fronts, agents, f"ws://127.0.0.1:{port}/audio", sock


def _opened(front: InProcess) -> int:
    return int(front.service.metrics.streams_total._value.get())


async def _live(url: str, seconds: float) -> StreamRun:
    """A live stream sending ``seconds`` of audio in real time (100 ms frames), then stop."""
    run = StreamRun()
    async with websockets.connect(url + "?sample_rate=16000") as ws:
        reader = asyncio.create_task(collect(ws, run))
        t0 = time.monotonic()
        for i in range(round(seconds * 10)):
            await ws.send(tone(100))
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.1 - time.monotonic()))
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 10_000 * MS)
    return run


async def _agent(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(2):
            return (await reader.read()).decode().strip()
    finally:
        writer.close()


async def test_twelve_live_streams_spread_within_one_of_even(tmp_path: Path) -> None:
    async with _cluster(tmp_path) as (fronts, agents, url, _):
        assert [await _agent(a) for a in agents] == ["up ready 100%"] * FRONTS
        runs = await asyncio.gather(*(_live(url, 2.0) for _ in range(12)))
        counts = [_opened(f) for f in fronts]
    assert all(r.close_code == 1000 and r.of("result") for r in runs)
    assert sum(counts) == 12 and all(3 <= c <= 5 for c in counts), counts


async def test_a_full_front_gets_no_new_stream_until_it_has_room(tmp_path: Path) -> None:
    async with (
        _cluster(tmp_path, max_streams=4) as (fronts, agents, url, sock),
        contextlib.AsyncExitStack() as held,
    ):
        busy = fronts[1]
        direct = [await held.enter_async_context(websockets.connect(busy.ws_url + "?sample_rate=16000"))
                  for _ in range(4)]  # fmt: skip
        assert await _agent(agents[1]) == "up drain #full 1.00"
        await _until(sock, lambda v: not v["front2"].startswith("UP"), "front2 drained")
        # A client that reaches the full front anyway is told when to try again.
        async with websockets.connect(busy.ws_url + "?sample_rate=16000") as extra:
            refused = json.loads(await extra.recv())
            await extra.wait_closed()
        assert (refused["code"], refused["retry_after_ms"]) == ("too_many_streams", 1000)
        assert extra.close_code == 1013
        before = [_opened(f) for f in fronts]
        through = [await held.enter_async_context(websockets.connect(url + "?sample_rate=16000"))
                   for _ in range(6)]  # fmt: skip
        for ws in through:  # each was admitted: ready comes once the format is known
            assert json.loads(await ws.recv())["type"] == "ready"
        assert [_opened(f) - b for f, b in zip(fronts, before, strict=True)] == [3, 0, 3]
        for ws in direct:  # room again: the agent says ready, HAProxy takes it back
            await ws.close()
        await _until(sock, lambda v: v["front2"] == "UP", "front2 UP again")
        assert (await _agent(agents[1])).startswith("up ready")
        more = [await held.enter_async_context(websockets.connect(url + "?sample_rate=16000"))
                for _ in range(3)]  # fmt: skip
        for ws in more:
            assert json.loads(await ws.recv())["type"] == "ready"
        # leastconn by weight: the empty front takes all three (the others hold 3 of 4 each)
        assert [_opened(f) - b for f, b in zip(fronts, before, strict=True)] == [3, 3, 3]


async def test_sigterm_says_drain_at_once_and_no_new_stream_goes_there(tmp_path: Path) -> None:
    async with _cluster(tmp_path, last_in_a_process=True) as (fronts, agents, url, sock):
        stopping = fronts[2].process
        stopping.send_signal(signal.SIGTERM)
        lines = []  # the agent's answers from the signal until it stops answering
        with contextlib.suppress(OSError):
            async with asyncio.timeout(10):
                while True:
                    lines.append(await _agent(agents[2]))
                    await asyncio.sleep(2 * MS)
        after = [line for line in lines if not line.startswith("up ready")]
        assert after and set(after) == {"up drain #stopping"}, lines  # drain, then gone
        await _until(sock, lambda v: not v["front3"].startswith("UP"), "front3 out")
        before = [_opened(f) for f in fronts[:2]]
        runs = await asyncio.gather(*(_live(url, 1.0) for _ in range(6)))
        assert all(r.close_code == 1000 and r.of("result") for r in runs)
        assert sum(_opened(f) - b for f, b in zip(fronts[:2], before, strict=True)) == 6
        # drained and stopped: uvicorn re-raises the SIGTERM it caught once it is done
        assert await asyncio.to_thread(stopping.wait, 10) in (0, -signal.SIGTERM)


async def test_make_cluster_starts_haproxy_and_the_fronts_and_cluster_stop_stops_them(
    tmp_path: Path,
) -> None:
    """scripts/cluster.sh, what `make cluster` and `make cluster-stop` run."""
    base = free_port()  # HAProxy here, fronts on base+1…, agents on base+101…
    env = {**os.environ, "FRONTS": "2", "MODEL": "pitch", "PORT": str(base),
           "RUN_DIR": str(tmp_path / "run"), "BIN": str(Path(sys.executable).parent)}  # fmt: skip
    script = str(ROOT / "scripts/cluster.sh")
    try:
        started = await asyncio.to_thread(
            subprocess.run, [script, "start"], env=env, capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, started.stdout + started.stderr
        pids = sorted(p.name for p in (tmp_path / "run").glob("*.pid"))
        assert pids == ["front1.pid", "front2.pid", "haproxy.pid"]
        assert await _agent(base + 101) == "up ready 100%"
        run = await _live(f"ws://127.0.0.1:{base}/audio", 1.0)
        assert run.close_code == 1000 and run.of("result")
    finally:
        stopped = await asyncio.to_thread(
            subprocess.run, [script, "stop"], env=env, capture_output=True, text=True, timeout=60
        )
    assert stopped.returncode == 0 and not list((tmp_path / "run").glob("*.pid"))
    with pytest.raises(OSError):
        await _agent(base + 101)
