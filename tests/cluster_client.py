"""A client's side of any-front resume, for the tests (until the CLI's own client replaces it).

``ResumingClient`` is the reference for a client's resume state: it keeps the audio sent since
the newest ``ack`` (bounded), the newest token and the results by ``seq``; after a drop it
reconnects with the token, ``last_seq`` and ``replay_from`` and sends the audio it kept, then
goes on. :func:`stream_live` is the loop around it: a real-time stream through one URL (a load
balancer) that resumes after every drop, ``moving`` (close 1012) or refusal (1013), and records
when each connection opened, closed and got its first result.

16 kHz mono ``pcm_s16le`` only.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets

from tests.helpers import pcm16

RATE = 16_000
CHUNK = RATE // 4  # frames per audio message: 250 ms


@dataclass
class Leg:
    """One connection of a stream: monotonic seconds (``time.monotonic``)."""

    opened_at: float
    resumed: bool = False  # its ready said resumed
    ready_at: float | None = None
    first_result_at: float | None = None
    closed_at: float | None = None
    close_code: int | None = None  # None: the connect itself failed
    moving: bool = False  # it got ``moving`` (its front was shutting down)


@dataclass
class ResumingClient:
    """A client's side of any-front resume."""

    max_buffer: int = 5 * RATE  # input frames kept for a replay (--max-replay-ms on the server)
    kept: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    kept_from: int = 0  # input frame of kept[0]
    token: str | None = None
    stream_id: str | None = None
    windows: dict[int, dict[str, Any]] = field(default_factory=dict)  # results by seq
    repeats: int = 0  # a seq received twice: must stay 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    legs: list[Leg] = field(default_factory=list)

    def start(self) -> dict[str, Any]:
        start: dict[str, Any] = {"type": "start", "sample_rate": RATE, "acks": True}
        if self.token is not None:
            start |= {"resume_token": self.token, "replay_from": self.kept_from}
            if self.windows:
                start["last_seq"] = max(self.windows)
        return start

    def sent(self, samples: np.ndarray) -> None:
        self.kept = np.concatenate([self.kept, samples])
        if len(self.kept) > self.max_buffer:  # the oldest give way: a later replay_from says so
            self.kept_from += len(self.kept) - self.max_buffer
            self.kept = self.kept[-self.max_buffer :]

    def received(self, msg: dict[str, Any]) -> None:
        self.messages.append(msg)
        if msg["type"] == "ready":
            self.stream_id = msg["stream_id"]
        elif "seq" in msg and msg["type"] in ("result", "error"):
            self.repeats += msg["seq"] in self.windows
            self.windows[msg["seq"]] = msg
        elif msg["type"] == "ack":
            self.token = msg["token"]
            drop = min(max(msg["samples"] - self.kept_from, 0), len(self.kept))
            self.kept, self.kept_from = self.kept[drop:], self.kept_from + drop

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def account(self) -> dict[str, Any]:
        """Every window of the stream, once: answered (``seq`` dense from 0, none twice) or
        counted as lost with a reason (the last ``end``'s counters, resume refusals). ``lost``
        sums them; ``None`` counters: no ``end`` came."""
        ends = self.of("end")
        end = ends[-1] if ends else {}
        seqs = sorted(self.windows)
        refused = [e["reason"] for e in self.of("error") if e["code"] == "resume_failed"]
        missing = sorted(set(range(seqs[-1] + 1)) - set(seqs)) if seqs else []
        reasons = {
            "missing_seq": len(missing),
            "failed": end.get("failed"),  # the model failed on it (an error with its seq)
            "dropped_windows": end.get("dropped_windows"),  # shed or overwritten, not classified
            "dropped_results": end.get("dropped_results"),  # classified, not read in time
            "resume_failed": len(refused),
        }
        return {
            "windows": end.get("windows"),
            "answered": len(seqs),
            "repeats": self.repeats,
            "lost": sum(v for v in reasons.values() if v is not None) if end else None,
            **reasons,
            "resume_refusals": refused,
        }


async def _read(ws: Any, client: ResumingClient, leg: Leg) -> None:
    try:
        async for raw in ws:
            if not isinstance(raw, str):
                continue
            msg = json.loads(raw)
            client.received(msg)
            if msg["type"] == "ready":
                leg.resumed, leg.ready_at = bool(msg.get("resumed")), time.monotonic()
            elif msg["type"] == "result" and leg.first_result_at is None:
                leg.first_result_at = time.monotonic()
            elif msg["type"] == "moving":
                leg.moving = True
    except websockets.ConnectionClosed:
        pass
    finally:
        leg.closed_at = time.monotonic()
        leg.close_code = ws.close_code if ws.close_code is not None else 1006


def _retry_after_s(client: ResumingClient, leg: Leg, failures: int) -> float:
    """How long to wait before the next connection: at once after ``moving`` or a first drop;
    ``retry_after_ms`` after a 1013; else a backoff (50 ms, doubling up to 500 ms)."""
    if leg.moving or (leg.close_code not in (None, 1013) and failures <= 1):
        return 0.0
    if leg.close_code == 1013:
        hints = [e["retry_after_ms"] for e in client.of("error") if "retry_after_ms" in e]
        return float(hints[-1] if hints else 250) / 1000
    return min(0.05 * 2.0 ** (failures - 1), 0.5)


async def stream_live(
    url: str, client: ResumingClient, audio: np.ndarray, *, within_s: float = 60.0
) -> ResumingClient:
    """Stream ``audio`` through ``url`` at real-time pace (one ``CHUNK`` every 250 ms), then
    ``stop``, until an ``end`` arrives, resuming after every drop with the newest token and the
    audio kept since its ack (the replay goes at once; the live audio keeps the original
    schedule). Raises TimeoutError after ``within_s`` seconds."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    deadline, sent_upto, failures = began + within_s, 0, 0
    while not client.of("end"):
        if loop.time() > deadline:
            raise TimeoutError(f"expected an end within {within_s} s; legs: {client.legs}")
        leg = Leg(opened_at=time.monotonic())
        client.legs.append(leg)
        try:
            ws = await websockets.connect(url, open_timeout=2.0, close_timeout=1.0)
        except (OSError, TimeoutError, websockets.InvalidHandshake):
            failures += 1
            await asyncio.sleep(_retry_after_s(client, leg, failures))
            continue
        start = client.start()
        replay, client.kept = client.kept, np.zeros(0, np.float32)  # kept again as it is sent
        reader = asyncio.create_task(_read(ws, client, leg))
        try:
            await ws.send(json.dumps(start))
            for at in range(0, len(replay), CHUNK):
                client.sent(replay[at : at + CHUNK])
                await ws.send(pcm16(replay[at : at + CHUNK]))
            while sent_upto < len(audio):
                end = min(sent_upto + CHUNK, len(audio))
                await asyncio.wait({reader}, timeout=max(began + end / RATE - loop.time(), 0.0))
                if reader.done():  # closed: resume at once
                    break
                piece, sent_upto = audio[sent_upto:end], end
                client.sent(piece)  # kept before sending: a failed send is replayed
                await ws.send(pcm16(piece))
            if sent_upto >= len(audio):
                await ws.send(json.dumps({"type": "stop"}))
        except websockets.ConnectionClosed:
            pass
        await asyncio.wait_for(reader, max(deadline - loop.time(), 0.1))
        failures = 0 if leg.first_result_at is not None else failures + 1
        if not client.of("end"):
            await asyncio.sleep(_retry_after_s(client, leg, failures))
    return client
