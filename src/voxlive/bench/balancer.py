"""HAProxy in front of several fronts: rendering deploy/haproxy's config, running Debian's
haproxy, reading its view of the fronts, and what the balancer adds to a result's latency.

``python -m voxlive.bench.balancer [--fronts 3] [--streams 6] [--seconds 12] [--json FILE]``
starts N ``voxlive serve`` fronts (pitch model, each with its agent), HAProxy in front of them
with agent-check, then runs the same live streams twice in one run, straight to the fronts
(spread evenly) and through HAProxy, and prints the client-side latency of each (p50/p95, ms:
from the send of a window's last frame to its result), beside the pitch model's ceiling measured
first in the same run (and the share of it the streams ask for). It prints numbers; it asserts
nothing.
Loopback only: on a small machine this shows the mechanism's cost, not a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxlive.bench import provenance

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
ROOT = Path(__file__).resolve().parents[3]  # a source checkout: deploy/ sits beside src/
RENDER = ROOT / "deploy/haproxy/render.sh"


def render(bind: str, fronts: Sequence[str], stats_socket: Path | None = None) -> str:
    """deploy/haproxy's config for ``fronts`` (``HOST:PORT[:AGENT_PORT]``), with an admin
    stats socket at ``stats_socket`` when given (to read HAProxy's view of the fronts)."""
    cfg = subprocess.run(
        [str(RENDER), bind, *fronts], capture_output=True, text=True, check=True
    ).stdout
    if stats_socket is not None:
        cfg = cfg.replace("global\n", f"global\n    stats socket {stats_socket} level admin\n", 1)
    return cfg


@contextlib.asynccontextmanager
async def haproxy(cfg: str, workdir: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """HAProxy running ``cfg`` (checked first: a bad config raises with HAProxy's words) until
    the block ends."""
    path = workdir / "haproxy.cfg"
    path.write_text(cfg)
    check = await asyncio.to_thread(
        subprocess.run, [HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True
    )
    if check.returncode != 0:
        raise RuntimeError(f"haproxy -c failed: {check.stdout}{check.stderr}")
    proc = await asyncio.create_subprocess_exec(
        HAPROXY, "-f", str(path), stderr=asyncio.subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        proc.terminate()
        await proc.wait()


def parse_stat(csv: str, backend: str = "fronts") -> dict[str, str]:
    """``show stat``'s CSV → each server of ``backend`` and its status (``UP``, ``DRAIN``,
    ``DOWN``, ``MAINT``, with HAProxy's ``UP 1/2``-style transitions as they come)."""
    lines = csv.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    head = lines[0][2:].split(",")
    name, kind, status = head.index("svname"), head.index("pxname"), head.index("status")
    out: dict[str, str] = {}
    for line in lines[1:]:
        row = line.split(",")
        if len(row) > status and row[kind] == backend and row[name] not in ("BACKEND",):
            out[row[name]] = row[status]
    return out


async def states(stats_socket: Path) -> dict[str, str]:
    """HAProxy's status of each front, read from its stats socket now."""
    reader, writer = await asyncio.open_unix_connection(str(stats_socket))
    try:
        writer.write(b"show stat\n")
        await writer.drain()
        return parse_stat((await reader.read()).decode())
    finally:
        writer.close()


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50 and p95 in ms (None without values)."""
    if not values:
        return {"p50_ms": None, "p95_ms": None, "n": 0}
    arr = np.asarray(values, dtype=float)
    p50, p95 = np.percentile(arr, [50, 95])
    return {"p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1), "n": len(values)}


SPEECH = [str(ROOT / "tests/data/female_speech.wav"), str(ROOT / "tests/data/male_speech.wav")]
# Each front's `voxlive serve` flags, beside an `--agent-port` of its own.
FRONT_FLAGS = ("--model", "pitch", "--trusted-proxies", "127.0.0.1")


def same_run_ceiling(streams: int) -> dict[str, Any]:
    """The pitch model's flat-out ceiling measured now, in this process, and the share of it
    that ``streams`` live streams (every window to the model) ask for: the figures' scale."""
    from voxlive.bench.ceiling import ceiling, stream_cost
    from voxlive.settings import Settings

    settings = Settings(model="pitch")
    top = ceiling(settings, SPEECH, pause_ms=500)
    demand = streams * stream_cost(settings)  # audio-s of model work per second
    return {**top.to_dict(), "load_pct_of_ceiling": round(100 * demand / top.audio_s_per_s, 2)}


async def _streams(urls: Sequence[str], seconds: float, audio: np.ndarray) -> dict[str, Any]:
    from voxlive.bench.load import LoadSpec, run_stream

    specs = [LoadSpec(url=u, streams=len(urls), seconds=seconds, warmup_s=2.0) for u in urls]
    counts = await asyncio.gather(*(run_stream(s, i, audio) for i, s in enumerate(specs)))
    latencies = [ms for c in counts for ms in c.client_ms]
    return {**percentiles(latencies), "failures": [c.failure for c in counts if c.failure]}


async def measure(fronts: int, streams: int, seconds: float, workdir: Path) -> dict[str, Any]:
    """Start ``fronts`` fronts and HAProxy; run ``streams`` live streams straight to the fronts,
    then through HAProxy, then straight again; return both latencies."""
    from voxlive.bench.load import program
    from voxlive.bench.serving import free_port, serve_subprocess

    audio = program(SPEECH, pause_ms=500)
    top = await asyncio.to_thread(same_run_ceiling, streams)  # before the fronts take the cores
    async with contextlib.AsyncExitStack() as stack:
        targets, names = [], []
        for i in range(fronts):
            agent = free_port()
            flags = [*FRONT_FLAGS, "--agent-port", str(agent)]
            t = await stack.enter_async_context(
                serve_subprocess(f"front{i + 1}", flags, workdir / f"front{i + 1}.log", 120)
            )
            targets.append(t)
            names.append(f"{t.http.removeprefix('http://')}:{agent}")
        port = free_port()
        sock = workdir / "haproxy.sock"
        await stack.enter_async_context(haproxy(render(f"127.0.0.1:{port}", names, sock), workdir))
        for _ in range(100):  # until every front is UP in HAProxy's eyes
            with contextlib.suppress(OSError):
                if list((await states(sock)).values()) == ["UP"] * fronts:
                    break
            await asyncio.sleep(0.1)
        lb = f"ws://127.0.0.1:{port}/audio"
        direct = [targets[i % fronts].url for i in range(streams)]
        runs = {
            "direct_1": await _streams(direct, seconds, audio),
            "haproxy": await _streams([lb] * streams, seconds, audio),
            "direct_2": await _streams(direct, seconds, audio),
        }
    return {"fronts": fronts, "streams": streams, "seconds": seconds, "model": "pitch",
            "ceiling": top, **runs}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voxlive.bench.balancer", description=__doc__)
    parser.add_argument("--fronts", type=int, default=3)
    parser.add_argument("--streams", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    began = provenance.begin({"fronts": args.fronts, "streams": args.streams,
                              "seconds": args.seconds, "front_flags": FRONT_FLAGS})  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="voxlive-lb-") as tmp:
        out = asyncio.run(measure(args.fronts, args.streams, args.seconds, Path(tmp)))
    out = {"provenance": began.end(), **out}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
