"""Failover, run for real (#24): three ``voxlive serve`` fronts (pitch model, child processes
sharing ``--cluster-secret``, each with its agent) behind Debian's HAProxy with deploy/haproxy's
config, on loopback. Live streams with acks go through HAProxy with the resuming client
(tests/cluster_client.py); one front is killed (``kill -9``) or stopped (SIGTERM) mid-stream.

Every stream on it resumes on another front within 2 s (the p95 of signal → first result on
the new front is printed), every window of every stream is answered exactly once or counted as
lost with a reason, and at this moderate load none is lost. Printed, one JSON line each, for
BENCHMARKS.md ("Failover"); set ``VOXLIVE_FAILOVER_JSON=DIR`` to also append them to
``DIR/failover-sigkill.jsonl`` and ``DIR/failover-sigterm.jsonl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cluster_client import RATE, ResumingClient, stream_live
from tests.helpers import load
from voxlive.bench import provenance
from voxlive.bench.balancer import (
    HAPROXY,
    haproxy,
    percentiles,
    render,
    same_run_ceiling,
    states,
)
from voxlive.bench.serving import Target, free_port, serve_subprocess

FRONTS = 3
STREAMS = 6  # two a front: a moderate load for 2 shared cores
SECONDS = 10  # of audio per stream, sent in real time: 19 windows (1 s, hop 0.5 s)
WINDOWS = 19
SIGNAL_AT_S = 4.0  # after the first stream began
SECRET = "failover-test-secret-0123456789"
WITHIN_S = 2.0  # every moved stream's first result on its new front, after the signal
# each front's flags, beside an --agent-port of its own
FRONT_FLAGS = ("--model", "pitch", "--cluster-secret", SECRET, "--trusted-proxies", "127.0.0.1")


@contextlib.asynccontextmanager
async def _cluster(tmp_path: Path) -> AsyncIterator[tuple[list[Target], str, Path]]:
    if not Path(HAPROXY).exists():
        pytest.fail("expected Debian's haproxy: apt-get install haproxy (.ci/run does)")
    async with contextlib.AsyncExitStack() as stack:
        fronts, names = [], []
        for i in range(FRONTS):
            agent = free_port()
            flags = [*FRONT_FLAGS, "--agent-port", str(agent)]
            log = tmp_path / f"front{i + 1}.log"
            front = await stack.enter_async_context(
                serve_subprocess(f"front{i + 1}", flags, log, 60)
            )
            fronts.append(front)
            names.append(f"{front.http.removeprefix('http://')}:{agent}")
        port, sock = free_port(), tmp_path / "haproxy.sock"
        await stack.enter_async_context(haproxy(render(f"127.0.0.1:{port}", names, sock), tmp_path))
        for _ in range(100):
            with contextlib.suppress(OSError):
                if list((await states(sock)).values()) == ["UP"] * FRONTS:
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("expected HAProxy to see every front UP within 5 s")
        yield fronts, f"ws://127.0.0.1:{port}/audio", sock


def _audio() -> np.ndarray:
    female, _ = load("female_speech.wav")
    male, _ = load("male_speech.wav")
    return np.concatenate([female, male])[: SECONDS * RATE]


async def _streams_opened(front: Target) -> int:
    """Streams open on ``front`` now (its /readyz)."""
    reader, writer = await asyncio.open_connection(*front.http.removeprefix("http://").split(":"))
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        body = (await reader.read()).split(b"\r\n\r\n", 1)[1]
        return int(json.loads(body)["streams_open"])
    finally:
        writer.close()


def _append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line)


async def _failover(tmp_path: Path, sig: signal.Signals) -> dict[str, Any]:
    """Run the streams, send ``sig`` to the front holding the most of them at SIGNAL_AT_S, and
    return what happened (and assert the failover's promises)."""
    began = provenance.begin({"fronts": FRONTS, "streams": STREAMS, "seconds": SECONDS,
                              "signal": sig.name, "signal_at_s": SIGNAL_AT_S,
                              "front_flags": FRONT_FLAGS})  # fmt: skip
    audio = _audio()
    async with _cluster(tmp_path) as (fronts, url, _):
        clients = [ResumingClient() for _ in range(STREAMS)]
        runs = []
        for client in clients:  # staggered a little, as real clients would be
            runs.append(asyncio.create_task(stream_live(url, client, audio, within_s=40)))
            await asyncio.sleep(0.1)
        await asyncio.sleep(SIGNAL_AT_S - 0.1 * STREAMS)
        held = [await _streams_opened(f) for f in fronts]
        victim = fronts[int(np.argmax(held))]
        assert victim.process is not None
        signalled = time.monotonic()
        victim.process.send_signal(sig)
        code = await asyncio.to_thread(victim.process.wait, 10)  # SIGTERM: drained, by itself
        exit_s = round(time.monotonic() - signalled, 2)
        assert code in ((-signal.SIGKILL,) if sig == signal.SIGKILL else (0, -signal.SIGTERM))
        await asyncio.gather(*runs)
    moved, after_ms, ready_ms = 0, [], []
    for client in clients:
        later = [leg for leg in client.legs if leg.opened_at >= signalled]
        if not later:
            continue
        moved += 1
        first = next(leg for leg in later if leg.first_result_at is not None)
        assert first.resumed, f"expected a resumed stream, got {client.of('ready')[-1]}"
        assert first.first_result_at is not None
        after_ms.append((first.first_result_at - signalled) * 1000)
        assert first.ready_at is not None
        ready_ms.append((first.ready_at - signalled) * 1000)
    accounts = [client.account() for client in clients]
    moving = sum(leg.moving for client in clients for leg in client.legs)
    out = {
        "signal": sig.name, "fronts": FRONTS, "streams": STREAMS, "seconds": SECONDS,
        "model": "pitch", "held_at_signal": held, "moved_streams": moved,
        "moving_messages": moving, "signal_to_first_result": percentiles(after_ms),
        "signal_to_first_result_ms": [round(ms, 1) for ms in sorted(after_ms)],
        "signal_to_ready": percentiles(ready_ms),
        "signal_to_ready_ms": [round(ms, 1) for ms in sorted(ready_ms)],
        "lost_windows": sum(a["lost"] or 0 for a in accounts), "repeats":
        sum(a["repeats"] for a in accounts), "exit_s": exit_s, "accounts": accounts,
        "provenance": began.end(),
    }  # fmt: skip
    print(json.dumps(out))
    if where := os.environ.get("VOXLIVE_FAILOVER_JSON"):  # one line a run, appended
        out["ceiling"] = await asyncio.to_thread(same_run_ceiling, STREAMS)  # the scale
        path = Path(where, f"failover-{sig.name.lower()}.jsonl")
        await asyncio.to_thread(_append, path, json.dumps(out) + "\n")
    assert moved == max(held) >= 1, out
    for account in accounts:  # each window once, or lost with its reason; none lost here
        assert account["repeats"] == 0, account
        assert account["windows"] == account["answered"] == WINDOWS, account
        assert account["lost"] == 0, account
    assert max(after_ms) <= WITHIN_S * 1000, out
    return out


async def test_kill_9_every_stream_resumes_on_another_front_none_lost(tmp_path: Path) -> None:
    out = await _failover(tmp_path, signal.SIGKILL)
    assert out["moving_messages"] == 0  # nobody said goodbye


async def test_sigterm_moves_every_stream_with_ack_and_1012_none_lost(tmp_path: Path) -> None:
    out = await _failover(tmp_path, signal.SIGTERM)
    assert out["moving_messages"] == out["moved_streams"]  # each was told, then closed 1012
    assert out["exit_s"] is not None and out["exit_s"] < 5.0  # empty at once: no drain wait
