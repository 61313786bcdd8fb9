"""A load generator in several processes: ``python -m voxlive.bench.fleet --url ws://…``.

One Python process drives a few hundred real-time streams before its own event loop is what is
measured; a GPU server is meant to hold thousands. The fleet spawns ``--procs`` workers, each
running its share of the N streams with :func:`voxlive.bench.load.run_stream` (stream i on
worker i mod P, keeping its index: the offset and phase a single process would give it), all
starting at one instant. Each sends back its streams' raw counts; this process merges them into
one :class:`~voxlive.bench.row.Row` with the server's own figures
(:func:`voxlive.bench.run.measure`), judges it with :func:`~voxlive.bench.capacity.passed` and
with ``--find-capacity`` searches with :func:`~voxlive.bench.capacity.find_capacity`. The JSON
starts with its provenance and has ``voxlive bench``'s keys (``runs``, ``capacity``, ``p95_ms``).

Bounds: :data:`MAX_PROCS` workers of :data:`MAX_STREAMS_PER_PROC` streams, each run and the
workers' start and stop within the limits of :mod:`voxlive.bench.workers` (the workers are
stopped at the end, killed if they do not stop); ``--time-limit-s`` starts no run after it (the
capacity so far is reported, with ``capacity_complete: false``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxlive.bench.capacity import passed
from voxlive.bench.load import LoadSpec
from voxlive.bench.row import Row, table
from voxlive.bench.workers import shares, started
from voxlive.errors import ConfigError

MAX_PROCS = 64
MAX_STREAMS_PER_PROC = 500  # one socket each; a worker keeps within ulimit -n 1024


@dataclass(frozen=True)
class FleetOptions:
    """What the fleet was asked to do (times in the units their names say)."""

    url: str  # ws://HOST:PORT/audio of a running server
    audio: tuple[str, ...]  # recordings every stream loops
    procs: int  # worker processes
    streams: int = 1  # N, or the first N the capacity search tries
    seconds: float = 20.0  # audio each stream sends per run
    warmup_s: float = 2.0  # results for windows ending before this are not counted
    chunk_ms: int = 50  # audio per WebSocket frame
    hop_ms: int = 500  # stream starts are spread over one hop (the server's /readyz hop wins)
    fresh_ms: float = 1000.0  # a result received within this of its last sample is fresh
    pause_ms: int = 0  # quiet noise after each recording
    forwarded_for: bool = False  # each stream names its own client address (X-Forwarded-For)
    find_capacity: bool = False
    capacity_limit: int = 4096  # the largest N tried
    resolution: int = 1  # the search stops when passing and failing N are this close
    p95_ms: float = 250.0  # latency goal of a passing run, server and client side
    time_limit_s: float = 0.0  # no run starts after this long (0: no limit)
    name: str = "server"  # the server's name in the rows
    out: Path = Path("bench-results/fleet.json")
    quiet: bool = False
    token: str = ""  # sent in each stream's start (VOXLIVE_TOKEN)
    command: str = "python -m voxlive.bench.fleet"  # as typed, for the report

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, expected: str) -> None:
            if not ok:
                value = getattr(self, key.removeprefix("--").replace("-", "_"))
                raise ConfigError(f"fleet {key}: expected {expected}, got {value!r}")

        need(self.url.startswith(("ws://", "wss://")), "--url", "ws://HOST:PORT/audio")
        need(bool(self.audio), "--audio", "at least one file")
        need(1 <= self.procs <= MAX_PROCS, "--procs", f"1..{MAX_PROCS}")
        need(self.streams >= 1, "--streams", ">= 1")
        need(self.seconds > 0, "--seconds", "> 0 s")
        need(0 <= self.warmup_s < self.seconds, "--warmup-s", f"0..--seconds ({self.seconds:g})")
        need(10 <= self.chunk_ms <= 1000, "--chunk-ms", "10..1000 ms")
        need(10 <= self.hop_ms <= 30_000, "--hop-ms", "10..30000 ms")
        need(self.fresh_ms > 0, "--fresh-ms", "> 0 ms")
        need(self.pause_ms >= 0, "--pause-ms", ">= 0 ms")
        need(not self.find_capacity or self.capacity_limit >= self.streams, "--capacity-limit",
             f">= --streams ({self.streams})")  # fmt: skip
        most = self.procs * MAX_STREAMS_PER_PROC
        each = f"at most {most} for {self.procs} processes ({MAX_STREAMS_PER_PROC} each)"
        need(
            self.largest_n <= most, "--capacity-limit" if self.find_capacity else "--streams", each
        )
        need(self.resolution >= 1, "--resolution", ">= 1")
        need(self.p95_ms > 0, "--p95-ms", "> 0 ms")
        need(self.time_limit_s >= 0, "--time-limit-s", ">= 0 s (0: no limit)")

    @property
    def largest_n(self) -> int:
        return self.capacity_limit if self.find_capacity else self.streams

    def spec(self, n: int) -> LoadSpec:
        """The load of one run of ``n`` streams."""
        return LoadSpec(
            url=self.url, streams=n, seconds=self.seconds, chunk_ms=self.chunk_ms,
            warmup_s=self.warmup_s, hop_ms=self.hop_ms, token=self.token,
            fresh_ms=self.fresh_ms, forwarded_for=self.forwarded_for,
        )  # fmt: skip


def searched(rows: Sequence[Row], p95_ms: float) -> int:
    """What a search cut short found: the largest passing N below the smallest failing one."""
    bad = min((r.streams for r in rows if not passed(r, p95_ms)), default=None)
    good = [r.streams for r in rows if passed(r, p95_ms) and (bad is None or r.streams < bad)]
    return max(good, default=0)


# ---- the runs, the report --------------------------------------------------------------------
def _server(http: str, token: str) -> dict[str, Any]:
    """What the server says it is (/readyz without its moving figures); empty if unreadable."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with contextlib.suppress(Exception):
        found: dict[str, Any] = httpx.get(http + "/readyz", headers=headers, timeout=5).json()
        return {k: v for k, v in found.items() if k not in ("capacity", "load", "streams_open")}
    return {}


async def bench(options: FleetOptions) -> dict[str, Any]:
    """The runs (one, or the capacity search) and the JSON report, written to ``--out`` after
    every run (a run cut off by a time limit outside leaves the ones before it, with
    ``capacity_complete: null``); the workers are stopped at the end whatever happens."""
    from voxlive.bench import provenance
    from voxlive.bench.capacity import find_capacity
    from voxlive.bench.run import measure
    from voxlive.bench.serving import Target

    began = await asyncio.to_thread(provenance.begin, {"options": options})
    target = Target(options.name, options.url)
    server = await asyncio.to_thread(_server, target.http, options.token)
    if "hop_ms" in server and server["hop_ms"] != options.hop_ms:
        options = dataclasses.replace(options, hop_ms=int(server["hop_ms"]))  # the server's hop
    runs: list[tuple[Row, dict[str, Any]]] = []
    ends_at = time.monotonic() + (options.time_limit_s or float("inf"))

    def report(capacity: dict[str, int], complete: bool | None) -> dict[str, Any]:
        doc = {
            "provenance": began.end(),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version()},
            "tool": "fleet", "command": options.command, "url": options.url, "server": server,
            "procs": options.procs, "p95_ms": options.p95_ms, "capacity": capacity,
            "capacity_complete": complete, "resolution": options.resolution,
            "runs": [row.to_dict() | extra for row, extra in runs],
        }  # fmt: skip
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(doc, indent=2))
        return doc

    class OutOfTime(Exception):
        pass

    async with started(min(options.procs, options.largest_n), options.audio,
                       options.pause_ms) as fleet:  # fmt: skip

        async def once(n: int) -> Row:
            if time.monotonic() > ends_at:
                raise OutOfTime
            row = await measure(target, options.spec(n), lambda s: asyncio.to_thread(fleet.run, s))
            workers_pct = 100 * fleet.cpu_s / max(row.wall_s, 1e-9)
            row = dataclasses.replace(row, client_cpu_pct=(row.client_cpu_pct or 0) + workers_pct)
            procs = len(shares(n, len(fleet.workers)))
            runs.append((row, {"procs": procs, "start_skew_ms": round(1000 * fleet.late_s, 1)}))
            await asyncio.to_thread(report, {}, None)
            if not options.quiet:
                print(f"{target.name} N={n} ({procs} procs): p95 {row.server_p95_ms or 0:.0f} ms "
                      f"(client {row.client_p95_ms or 0:.0f}), drops {row.dropped_windows}, "
                      f"errors {row.errors}, failed {len(row.failed_streams)}, paced "
                      f"{row.paced_streams} -> {'pass' if passed(row, options.p95_ms) else 'FAIL'}",
                      file=sys.stderr, flush=True)  # fmt: skip
            return row

        if not options.find_capacity:
            await once(options.streams)
            return await asyncio.to_thread(report, {}, None)
        try:
            n, _ = await find_capacity(once, options.streams, options.capacity_limit,
                                       options.p95_ms, options.resolution)  # fmt: skip
            return await asyncio.to_thread(report, {target.name: n}, True)
        except OutOfTime:
            n = searched([row for row, _ in runs], options.p95_ms)
            return await asyncio.to_thread(report, {target.name: n}, False)


def summary(doc: dict[str, Any]) -> str:
    """The runs as ``voxlive bench``'s table, then the capacity found."""
    lines = [table(doc["runs"])]
    for name, n in doc["capacity"].items():
        cut = "" if doc["capacity_complete"] else " (the search was cut short by --time-limit-s)"
        lines.append(f"capacity[{name}]: {n} streams at p95 <= {doc['p95_ms']:g} ms with no "
                     f"drops, {doc['procs']} load processes{cut}")  # fmt: skip
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m voxlive.bench.fleet", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add = p.add_argument
    add("--url", required=True, help="the server to drive, ws://HOST:PORT/audio")
    add("--audio", nargs="+", required=True, metavar="FILE", help="recordings every stream loops")
    add("--streams", type=int, default=1, help="N (the first N tried by --find-capacity)")
    add("--procs", type=int, default=max(1, (os.cpu_count() or 1) - 2),
        help="worker processes (default: cores - 2, leaving two to the server)")  # fmt: skip
    add("--seconds", type=float, default=20.0, help="audio each stream sends per run, s")
    add("--warmup-s", type=float, default=2.0, help="results before this are not counted, s")
    add("--chunk-ms", type=int, default=50, help="audio per frame, ms")
    add("--hop-ms", type=int, default=500, help="starts spread over it, ms (/readyz's wins)")
    add("--fresh-ms", type=float, default=1000.0, help="a result within this is fresh, ms")
    add("--pause-ms", type=int, default=0, help="quiet noise after each recording, ms")
    add("--forwarded-for", action="store_true",
        help="each stream names its own client address in X-Forwarded-For (the server must "
        "trust this machine: --trusted-proxies 127.0.0.1), so per-address budgets count it "
        "as one client")  # fmt: skip
    add("--find-capacity", action="store_true", help="search the largest N that passes")
    add("--capacity-limit", type=int, default=4096, help="the largest N tried")
    add("--resolution", type=int, default=1,
        help="stop the search once passing and failing N are this close")  # fmt: skip
    add("--p95-ms", type=float, default=250.0, help="latency goal of a pass, ms")
    add("--time-limit-s", type=float, default=0.0, help="start no run after this long (0: none)")
    add("--name", default="server", help="the server's name in the rows")
    add("--out", type=Path, default=Path("bench-results/fleet.json"), help="the JSON report")
    add("--quiet", action="store_true", help="no per-run lines")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        options = FleetOptions(
            url=a.url, audio=tuple(a.audio), procs=a.procs, streams=a.streams,
            seconds=a.seconds, warmup_s=a.warmup_s, chunk_ms=a.chunk_ms, hop_ms=a.hop_ms,
            fresh_ms=a.fresh_ms, pause_ms=a.pause_ms, forwarded_for=a.forwarded_for,
            find_capacity=a.find_capacity, capacity_limit=a.capacity_limit,
            resolution=a.resolution, p95_ms=a.p95_ms, time_limit_s=a.time_limit_s,
            name=a.name, out=a.out, quiet=a.quiet, token=os.environ.get("VOXLIVE_TOKEN", ""),
            command="python -m voxlive.bench.fleet " + shlex.join(words),
        )  # fmt: skip
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        doc = asyncio.run(bench(options))
    except RuntimeError as exc:  # the workers: what failed, said
        print(exc, file=sys.stderr)
        return 1
    except Exception as exc:  # the server gone (/metrics unreadable), the output unwritable
        print(f"fleet: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(summary(doc))
    print(f"wrote {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
