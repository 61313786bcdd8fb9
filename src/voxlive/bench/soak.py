"""Soak: many short streams, then a long run at load; prints resource use, asserts nothing.

Runs a real voxlive server in this process on a free loopback port and real WebSocket clients:

1. ``--cycles`` connect / stream / disconnect cycles (``--concurrency`` at a time; every other
   one stops politely, the rest vanish), checking that every window is accounted for (result,
   gated, failed or dropped) and that each client got only its own stream's results;
2. ``--streams`` streams at real-time pace for ``--minutes``, sampling RSS, open file
   descriptors, threads and asyncio tasks every ``--every`` seconds.

    .venv/bin/python -m voxlive.bench.soak --cycles 1000 --streams 8 --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from voxlive.audio.decode import decode_file
from voxlive.bench.load import RATE, pcm16
from voxlive.bench.serving import serve_in_process
from voxlive.settings import Settings

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"  # the recordings, in a checkout


def usage() -> dict[str, float]:
    rss_kib = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    return {
        "rss_mib": rss_kib / 1024,
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "tasks": len(asyncio.all_tasks()),
    }


def show(label: str, u: dict[str, float]) -> None:
    print(f"{label:>14}  rss {u['rss_mib']:7.1f} MiB  fds {u['fds']:4.0f}  "
          f"threads {u['threads']:3.0f}  tasks {u['tasks']:4.0f}", flush=True)  # fmt: skip


async def cycle(url: str, audio: bytes, duration_ms: float, polite: bool) -> dict[str, Any]:
    import websockets

    got: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:
        await ws.send(audio)
        if polite:
            await ws.send(json.dumps({"type": "stop"}))
            with contextlib.suppress(websockets.ConnectionClosed):
                async for raw in ws:
                    got.append(json.loads(raw))
    ready = [m for m in got if m["type"] == "ready"]
    results = [m for m in got if m["type"] == "result"]
    end = [m for m in got if m["type"] == "end"]
    problems = []
    if polite:
        e = end[0] if end else None
        if e is None:
            problems.append("no end")
        else:
            if e["windows"] != e["results"] + e["gated"] + e["failed"] + e["dropped_windows"]:
                problems.append(f"unaccounted windows: {e}")
            if len(results) != e["results"] + e["gated"]:
                problems.append(f"{len(results)} results received, end says {e}")
            if e["stream_id"] != ready[0]["stream_id"]:
                problems.append("end of another stream")
        if any(r["end_ms"] > duration_ms + 1 for r in results):
            problems.append("a result beyond this stream's audio (misrouted)")
    return {"problems": problems, "results": len(results)}


async def main(args: argparse.Namespace) -> None:
    rate = RATE
    female = decode_file(str(args.data / "female_speech.wav"), rate)
    male = decode_file(str(args.data / "male_speech.wav"), rate)
    clip = female[: int(1.6 * rate)]
    audio = pcm16(clip)
    duration_ms = 1000 * len(clip) / rate
    settings = Settings(model=args.model, web_dir="/nonexistent", resume_grace_ms=0)
    async with serve_in_process(settings) as srv:
        show("start", usage())
        sem = asyncio.Semaphore(args.concurrency)
        problems: list[str] = []
        results = 0
        t0 = time.monotonic()

        async def one(i: int) -> None:
            nonlocal results
            async with sem:
                r = await cycle(srv.ws_url, audio, duration_ms, polite=i % 2 == 0)
                problems.extend(r["problems"])
                results += r["results"]

        await asyncio.gather(*(one(i) for i in range(args.cycles)))
        await asyncio.sleep(0.5)
        print(f"{args.cycles} cycles in {time.monotonic() - t0:.1f} s: {results} results to polite "
              f"clients, {len(problems)} problems {problems[:3]}")  # fmt: skip
        show("after cycles", usage())

        speech = np.concatenate([female, male])
        stop_at = time.monotonic() + args.minutes * 60
        counts = {"results": 0, "dropped": 0}

        async def live(i: int) -> None:
            import websockets

            chunk = rate // 10
            offset = (i * 7919) % len(speech)
            async with websockets.connect(srv.ws_url) as ws:

                async def reader() -> None:
                    with contextlib.suppress(websockets.ConnectionClosed):
                        async for raw in ws:
                            m = json.loads(raw)
                            if m["type"] == "result":
                                counts["results"] += 1
                            if m["type"] == "end":
                                counts["dropped"] += m["dropped_windows"]

                task = asyncio.create_task(reader())
                t = time.monotonic()
                k = 0
                while time.monotonic() < stop_at:
                    pos = (offset + k * chunk) % (len(speech) - chunk)
                    await ws.send(pcm16(speech[pos : pos + chunk]))
                    k += 1
                    await asyncio.sleep(max(0.0, t + k * 0.1 - time.monotonic()))
                await ws.send(json.dumps({"type": "stop"}))
                await task

        async def sampler() -> None:
            while time.monotonic() < stop_at:
                await asyncio.sleep(args.every)
                show(f"{args.minutes * 60 - (stop_at - time.monotonic()):.0f} s", usage())

        await asyncio.gather(sampler(), *(live(i) for i in range(args.streams)))
        print(f"{args.streams} live streams for {args.minutes:g} min: {counts['results']} results, "
              f"{counts['dropped']} dropped windows")  # fmt: skip
        await asyncio.sleep(0.5)
        show("end", usage())


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="pitch")
    p.add_argument("--data", type=Path, default=DATA, help="folder with the test recordings")
    p.add_argument("--cycles", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--every", type=float, default=30.0)
    asyncio.run(main(p.parse_args()))
