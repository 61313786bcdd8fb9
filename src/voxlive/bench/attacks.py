"""Attacks on a voxlive server on *this machine*, for the security tests and the README's numbers.

``python -m voxlive.bench.attacks`` starts a server in its own process, measures an honest
live stream alone, then under each attack (run in a child process, so the attacker's CPU is
not the server's), and prints per attack: the honest stream's p95 alone and attacked, the
slowest ``/healthz`` answer during the attack, and the server's RSS growth. Each attack is
bounded in time and count and targets loopback only; the process stops what it starts.

The attacks (what each one tries to make the server spend):

- ``empty-continuations``: a binary message opened with 4 bytes, then empty continuation frames
  as fast as the socket takes them (no payload for size limits to count);
- ``one-byte-fragments``: 256 KiB messages sent as one-byte fragments;
- ``slowloris``: 512 sockets from one address each sending part of a request line, re-opened
  as soon as the server closes them (the connection cap as a lockout);
- ``tiny-messages``: 48 connections from one address each sending valid one-sample audio
  frames as fast as they are read (budgets per connection only);
- ``ping-flood``: pings as fast as the socket takes them, pongs read;
- ``slowloris-8-sources``, ``tiny-messages-8-sources``: the same spread over eight addresses
  (127.0.0.2–9), so no one address's limit applies: the server-wide ones must.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ipaddress
import json
import os
import struct
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxlive.bench import provenance
from voxlive.bench.load import pcm16

ATTACKER_SOURCE = "127.0.0.2"  # another loopback address: a source of its own
SERVER_FLAGS = ("--model", "pitch", "--gate", "none")  # each attack's fresh `voxlive serve`
Attack = Callable[[str, int, str, float], Coroutine[Any, Any, int]]


def frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """One masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    if not n:
        return head + mask
    data = np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)
    return head + mask + data.tobytes()


async def open_ws(
    host: str, port: int, source: str, query: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket on ``/audio`` from ``source`` (raw: the attacks write frames themselves)."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /audio{query} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )  # fmt: skip
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        raise ConnectionError(f"expected 101 Switching Protocols, got {head[:40]!r}")
    return reader, writer


async def _drain_forever(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


async def _until_closed(
    host: str, port: int, source: str, deadline: float, opening: bytes, unit: bytes
) -> int:
    """Open a stream, write ``opening``, then ``unit`` over and over until the server closes it
    or ``deadline``; again until ``deadline``. Returns the connections opened."""
    opened = 0
    while time.monotonic() < deadline:
        try:
            reader, writer = await open_ws(host, port, source, "?sample_rate=16000")
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.05)
            continue
        opened += 1
        drain = asyncio.create_task(_drain_forever(reader))
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                writer.write(opening)
                while not drain.done():
                    writer.write(unit)
                    await writer.drain()  # the server's back-pressure holds the attacker here
        drain.cancel()
        writer.transport.abort()
    return opened


async def empty_continuations(host: str, port: int, source: str, seconds: float) -> int:
    batch = frame(0x0, fin=False) * 4096
    opening = frame(0x2, b"\x00" * 4, fin=False)
    return await _until_closed(host, port, source, time.monotonic() + seconds, opening, batch)


async def one_byte_fragments(host: str, port: int, source: str, seconds: float) -> int:
    message = frame(0x2, b"\x00", fin=False) + frame(0x0, b"\x00", fin=False) * 4094
    return await _until_closed(host, port, source, time.monotonic() + seconds, b"", message)


async def ping_flood(host: str, port: int, source: str, seconds: float) -> int:
    batch = frame(0x9, b"ping") * 1024
    return await _until_closed(host, port, source, time.monotonic() + seconds, b"", batch)


def _sources(source: str, spread: int) -> list[str]:
    """``spread`` loopback addresses from ``source`` on (127.0.0.2, 127.0.0.3, …)."""
    first = ipaddress.ip_address(source)
    return [str(first + i) for i in range(spread)]


async def tiny_messages(host: str, port: int, source: str, seconds: float, spread: int = 1) -> int:
    one = frame(0x2, pcm16(np.full(1, 0.1, np.float32)))
    deadline, addresses = time.monotonic() + seconds, _sources(source, spread)
    runs = [_until_closed(host, port, addresses[i % spread], deadline, b"", one * 256)
            for i in range(48)]  # fmt: skip
    return sum(await asyncio.gather(*runs))


async def tiny_messages_8_sources(host: str, port: int, source: str, seconds: float) -> int:
    return await tiny_messages(host, port, source, seconds, spread=8)


async def slowloris_8_sources(host: str, port: int, source: str, seconds: float) -> int:
    return await slowloris(host, port, source, seconds, spread=8)


async def slowloris(host: str, port: int, source: str, seconds: float, spread: int = 1) -> int:
    deadline, opened, addresses = time.monotonic() + seconds, 0, _sources(source, spread)

    async def hold(i: int) -> None:
        nonlocal opened
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(addresses[i % spread], 0)
                )
            except OSError:
                await asyncio.sleep(0.05)
                continue
            opened += 1
            with contextlib.suppress(ConnectionError, OSError):
                writer.write(b"GET /healthz HT")
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await reader.read(1)  # until the server closes it
            writer.transport.abort()

    with contextlib.suppress(TimeoutError):
        await asyncio.gather(*(hold(i) for i in range(512)))
    return opened


ATTACKS: dict[str, Attack] = {
    "empty-continuations": empty_continuations,
    "one-byte-fragments": one_byte_fragments,
    "slowloris": slowloris,
    "tiny-messages": tiny_messages,
    "ping-flood": ping_flood,
    # the same from eight addresses: the server's own budgets, not one address's
    "slowloris-8-sources": slowloris_8_sources,
    "tiny-messages-8-sources": tiny_messages_8_sources,
}


def loopback(host: str) -> str:
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"attacks: expected a loopback address, got {host!r}")
    return host


@dataclass
class Outcome:
    attack: str
    connections: int
    honest_p95_alone_ms: float
    honest_p95_attacked_ms: float
    honest_results: int
    honest_results_alone: int
    slowest_probe_ms: float
    median_probe_ms: float
    failed_probes: int
    rss_growth_mib: float


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def rss_bytes(pid: int | str = "self") -> int:
    """The resident memory of process ``pid`` (this one by default), bytes."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _honest(url: str, seconds: float) -> tuple[float, int]:
    """One live stream, a 220 Hz tone at real time: the p95 of the server's latency (NaN when
    the stream was refused or broke before any result) and the results it got."""
    from voxlive.bench.load import LoadSpec, run_stream

    rate = 16_000
    t = np.arange(rate * 4) / rate
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    spec = LoadSpec(url=url, streams=1, seconds=seconds, warmup_s=0.0)
    counts = await run_stream(spec, 0, audio)  # refused or broken: no results (and NaN)
    return _p95(counts.server_ms + counts.gated_server_ms), counts.results


async def measure(name: str, target_http: str, pid: int, seconds: float) -> Outcome:
    """The honest stream alone, then beside attack ``name`` (a child process), on the server
    at ``target_http`` (process ``pid``)."""
    import httpx

    url = target_http.replace("http://", "ws://") + "/audio"
    host, port = target_http.removeprefix("http://").rsplit(":", 1)
    alone, alone_n = await _honest(url, seconds)
    rss0, probes, failed = rss_bytes(pid) / 2**20, [0.0], 0
    child = await asyncio.create_subprocess_exec(  # niced: an attacker's CPU is not ours
        "nice", "-n", "19", sys.executable, "-m", "voxlive.bench.attacks", "--run", name,
        "--host", host, "--port", port, "--seconds", str(seconds + 1),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip

    async def probe() -> None:  # a liveness probe every 200 ms, on a new connection each time
        nonlocal failed
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                t0 = time.monotonic()
                try:
                    r = await client.get(target_http + "/healthz", headers={"Connection": "close"})
                    failed += r.status_code != 200
                except httpx.HTTPError:
                    failed += 1
                probes.append((time.monotonic() - t0) * 1000)
                await asyncio.sleep(0.2)

    try:  # probed from the attacker's start: its first burst is when fresh buckets are full
        prober, t0 = asyncio.create_task(probe()), time.monotonic()
        await asyncio.sleep(0.5)  # the attack under way
        attacked, attacked_n = await _honest(url, seconds)
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - t0)))  # probes for as long
        prober.cancel()
        rss = rss_bytes(pid) / 2**20
        out, _ = await asyncio.wait_for(child.communicate(), seconds + 30)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    return Outcome(name, int(out or b"0"), alone, attacked, attacked_n, alone_n, max(probes),
                   float(np.median(probes[1:] or [0.0])), failed, rss - rss0)  # fmt: skip


async def _suite(names: list[str], seconds: float, log_dir: Path) -> list[Outcome]:
    from voxlive.bench.serving import serve_subprocess

    outcomes = []
    for name in names:  # a fresh server for each: one attack's leftovers are not the next's
        async with serve_subprocess(
            name, list(SERVER_FLAGS), log_dir / f"serve-{name}.log"
        ) as target:
            assert target.process is not None
            outcomes.append(await measure(name, target.http, target.process.pid, seconds))
    return outcomes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m voxlive.bench.attacks", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("attacks", nargs="*", default=list(ATTACKS), help="default: all")
    parser.add_argument("--seconds", type=float, default=10.0, help="each attack's length")
    parser.add_argument(
        "--json",
        default="",
        help="also write the outcomes (and their provenance: bench/provenance.py) here",
    )
    parser.add_argument("--run", default="", help=argparse.SUPPRESS)  # the child's one attack
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:  # the attacker process: run it, print the connections it opened
        attack = ATTACKS[args.run]
        print(asyncio.run(attack(loopback(args.host), args.port, ATTACKER_SOURCE, args.seconds)))
        return
    unknown = [a for a in args.attacks if a not in ATTACKS]
    if unknown:
        parser.error(f"expected attacks among {', '.join(ATTACKS)}, got {', '.join(unknown)}")
    began = provenance.begin({"server_flags": SERVER_FLAGS, "attacks": args.attacks,
                              "seconds": args.seconds,
                              "attacker_source": ATTACKER_SOURCE})  # fmt: skip
    outcomes = asyncio.run(_suite(args.attacks, args.seconds, Path("artifacts/attacks")))
    print("| attack | connections | honest p95 alone | attacked | results | slowest /healthz "
          "| failed probes | RSS growth |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for o in outcomes:
        print(
            f"| {o.attack} | {o.connections} | {o.honest_p95_alone_ms:.0f} ms | "
            f"{o.honest_p95_attacked_ms:.0f} ms | {o.honest_results}/{o.honest_results_alone} | "
            f"{o.slowest_probe_ms:.0f} ms | {o.failed_probes} | {o.rss_growth_mib:+.0f} MiB |"
        )
    if args.json:
        doc = {"provenance": began.end(), "outcomes": [asdict(o) for o in outcomes]}
        Path(args.json).write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
