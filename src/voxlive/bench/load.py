"""The load: N WebSocket streams of real recordings, paced in real time or sent flat out.

Each stream plays the given recordings in a loop (optionally with a pause of quiet background
noise after each, to model conversation) from its own offset, and starts at its own phase within
one hop, as independent clients do. It records, for every result, the server's latency and the
client's view: from sending the window's last sample to receiving its result; results the gate
settled without the model (a few ms each) are kept apart, so the latency of windows that reached
the model is not diluted by them. And which results were *fresh* (received within ``fresh_ms`` of
sending their window's last sample: within the server's ``max_lag_ms``, as the client saw it),
with the audio their windows cover: under load a server that degrades (windows further apart)
or sheds (windows skipped) answers less of the audio, and :func:`covered_ms` says how much.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxlive.audio.decode import decode_file
from voxlive.protocol.frames import DEFAULT_FORMAT

# The bench's one sample rate, Hz: the recordings are decoded at it and the load sends it (the
# protocol's default format). The ceiling is measured at the model's own rate instead.
RATE = DEFAULT_FORMAT.sample_rate


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as little-endian 16-bit PCM (clipped)."""
    out: bytes = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    return out


def program(files: Sequence[str], pause_ms: int, rate: int = RATE) -> np.ndarray:
    """The audio every stream loops: the files in order, each followed by ``pause_ms`` of quiet
    noise (about -60 dBFS, like a quiet room)."""
    rng = np.random.default_rng(0)
    parts: list[np.ndarray] = []
    for path in files:
        parts.append(decode_file(path, rate))
        if pause_ms:
            parts.append((0.001 * rng.standard_normal(rate * pause_ms // 1000)).astype(np.float32))
    if not parts:
        raise ValueError("bench: expected at least one --audio file, got none")
    return np.concatenate(parts).astype(np.float32)


@dataclass
class ClientCounts:
    """What one bench client counted and timed on its stream (the server's own counters are in
    its ``end`` message, kept in ``end``, and in /metrics)."""

    server_ms: list[float] = field(default_factory=list)  # windows that reached the model
    client_ms: list[float] = field(default_factory=list)
    gated_server_ms: list[float] = field(default_factory=list)  # settled by the gate
    gated_client_ms: list[float] = field(default_factory=list)
    results: int = 0
    ambient: int = 0
    errors: int = 0
    dropped_windows: int = 0
    dropped_s: float = 0.0  # audio the server dropped because inference fell behind
    sent_s: float = 0.0  # audio sent, seconds
    fresh: int = 0  # counted results received within fresh_ms of their window's last sample
    fresh_spans: list[tuple[float, float]] = field(default_factory=list)  # their windows, ms
    paced: bool = False  # the server cut this stream's windows further apart (a busy pace)
    end: dict[str, Any] | None = None
    close_code: int | None = None
    failure: str | None = None


@dataclass(frozen=True)
class LoadSpec:
    url: str
    streams: int
    seconds: float
    chunk_ms: int = 50
    flat_out: bool = False
    warmup_s: float = 2.0  # results for windows ending before this are not counted
    hop_ms: int = 500  # stream starts are spread over one hop
    token: str = ""
    fresh_ms: float = 1000.0  # a result received within this of its last sample is fresh
    # each stream names its own client address in X-Forwarded-For (:func:`client_address`):
    # many clients behind one proxy, for a server that trusts the load generator's address
    # (--trusted-proxies), so its per-address budgets count each stream as one client
    forwarded_for: bool = False


def client_address(index: int) -> str:
    """The client address stream ``index`` names with ``forwarded_for``: 10.0.0.1 upwards."""
    n = index + 1
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


async def run_stream(
    spec: LoadSpec, index: int, audio: np.ndarray, on_result: Any = None
) -> ClientCounts:
    """Client ``index`` of ``spec.streams``: stream ``audio`` (at :data:`RATE`) from its own
    offset and phase, then stop and read to the end. ``on_result`` is called for each counted
    result. A refused or broken stream is reported in ``failure``, not raised."""
    import websockets

    counts = ClientCounts()
    chunk = RATE * spec.chunk_ms // 1000
    offset = (index * 7919 * chunk) % max(len(audio) - chunk, 1)  # each stream its own place
    total = int(spec.seconds * RATE) // chunk * chunk
    await asyncio.sleep(index * spec.hop_ms / 1000 / max(spec.streams, 1) % (spec.hop_ms / 1000))
    sent_at: list[tuple[int, float]] = []  # (stream sample position after the send, time)
    start: dict[str, Any] = {"type": "start", "sample_rate": RATE}
    if spec.flat_out:  # throughput: a live stream is held to real time; a lossless one is not
        start["lossless"] = True
    if spec.token:
        start["token"] = spec.token

    async def read(ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                now = time.monotonic()
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "result":
                    if msg["end_ms"] < spec.warmup_s * 1000:
                        continue
                    counts.results += 1
                    counts.ambient += msg["label"] == "ambient"
                    gated = bool(msg.get("gated"))
                    server, client = (
                        (counts.gated_server_ms, counts.gated_client_ms) if gated
                        else (counts.server_ms, counts.client_ms)
                    )  # fmt: skip
                    server.append(float(msg["latency_ms"]))
                    end = round(msg["end_ms"] * RATE / 1000)
                    i = bisect.bisect_left(sent_at, (end, 0.0))
                    waited = float(msg["latency_ms"])
                    if i < len(sent_at):
                        waited = (now - sent_at[i][1]) * 1000
                        client.append(waited)
                    if waited <= spec.fresh_ms:
                        counts.fresh += 1
                        counts.fresh_spans.append((float(msg["start_ms"]), float(msg["end_ms"])))
                    if on_result is not None:
                        on_result()
                elif kind == "pace":
                    counts.paced |= msg.get("reason") == "busy"
                elif kind == "error":
                    counts.errors += 1
                elif kind == "end":
                    counts.end = msg

    try:
        headers = {"X-Forwarded-For": client_address(index)} if spec.forwarded_for else None
        async with websockets.connect(spec.url, max_size=None, additional_headers=headers) as ws:
            reader = asyncio.create_task(read(ws))
            await ws.send(json.dumps(start))
            t0 = time.monotonic()
            for i, pos in enumerate(range(0, total, chunk)):
                begin = (offset + pos) % (len(audio) - chunk)
                frame = audio[begin : begin + chunk]
                await ws.send(pcm16(frame))
                sent_at.append((pos + chunk, time.monotonic()))
                if not spec.flat_out:
                    due = t0 + (i + 1) * spec.chunk_ms / 1000
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
            counts.sent_s = total / RATE
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(reader, 120)
            counts.close_code = ws.close_code
    except Exception as exc:  # a refused or broken stream is a result, not a crash
        counts.failure = f"{type(exc).__name__}: {exc}"
    if counts.end is not None:
        counts.dropped_windows = int(counts.end.get("dropped_windows", 0))
        counts.dropped_s = float(counts.end.get("dropped_ms", 0.0)) / 1000
    return counts


def covered_ms(spans: Sequence[tuple[float, float]], from_ms: float, to_ms: float) -> float:
    """Audio time between ``from_ms`` and ``to_ms`` that at least one of the windows ``spans``
    ((start_ms, end_ms), any order, overlapping or not) covers, ms."""
    total, reach = 0.0, from_ms
    for start, end in sorted(spans):
        start, end = max(start, reach), min(end, to_ms)
        if end > start:
            total += end - start
            reach = end
    return total
