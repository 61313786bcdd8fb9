"""Fuzz over the wire: thousands of generated messages from hostile connections against a real
server, bounded in count and time. Zero tracebacks, the server stays healthy, and an honest
stream beside them gets its results at a latency close to its own baseline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import struct
import time

import httpx
import numpy as np
import websockets

from tests.helpers import MS, eventually, load, pcm16, running_server, stream_audio
from voxlive.protocol.frames import encode_wav_s16

MESSAGES = 3000  # in all, over as many connections as the server closes
TIME_LIMIT_S = 60.0


def _value(rng: random.Random) -> object:
    return rng.choice([
        None, True, -1, 0, 16_000, 2**63, 10**4000 if rng.random() < 0.05 else 7, 1e308, -0.0,
        "", "pcm_s16le", "pcm_f32le", "x" * rng.randint(0, 5000), "😀" * rng.randint(0, 1500),
        [], [1, 2], {"a": [{}]}, [[[[[]]]]] * 3,
    ])  # fmt: skip


def _wav(rng: random.Random) -> bytes:
    rate = rng.choice([8_000, 16_000, 44_100, 1, 192_001])
    wav = bytearray(encode_wav_s16(np.zeros(rng.randint(0, 400), np.float32), max(rate, 8_000)))
    if rate < 8_000 or rate > 192_000:
        struct.pack_into("<I", wav, 24, rate)
    for _ in range(rng.randint(0, 4)):  # flip header bytes
        if len(wav) > 1:
            wav[rng.randrange(min(len(wav), 44))] = rng.randrange(256)
    if rng.random() < 0.2:  # junk chunks before the data
        wav[36:36] = b"JUNK\x00\x00\x00\x00" * rng.randint(1, 40)
    return bytes(wav)


def message(rng: random.Random) -> str | bytes:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 3000))
    if kind == 1:
        return pcm16(np.zeros(rng.randint(1, 800), np.float32))  # valid audio
    if kind == 2:
        return np.full(
            rng.randint(1, 200), rng.choice([3.4e38, np.nan, -1e9, 0.5]), "<f4"
        ).tobytes()
    if kind == 3:
        return _wav(rng)
    if kind == 4:
        keys = [
            "type",
            "sample_rate",
            "encoding",
            "channels",
            "token",
            "stream_id",
            "last_seq",
            "zz",
        ]
        obj = {k: _value(rng) for k in rng.sample(keys, rng.randint(0, len(keys)))}
        if rng.random() < 0.7:
            obj["type"] = rng.choice(["start", "stop", "START", 1, None])
        with contextlib.suppress(ValueError):
            return json.dumps(obj, ensure_ascii=rng.random() < 0.5)
        return "{}"
    if kind == 5:
        return rng.choice(["", "{", "[]", "null", '"start"', "\x00", "{" * 2000, "1" * 5000])
    if kind == 6:
        return '{"type": "stop"}'
    if kind == 7:
        return '{"type": "start", "sample_rate": ' + str(rng.choice([8000, 48000, 4])) + "}"
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 7)))


class _Problems(logging.Handler):
    """Records that carry a traceback, or are errors: none may appear."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(f"{record.name}: {record.getMessage()}")


async def _hostile(
    url: str, rng: random.Random, budget: list[int], deadline: float, source: str
) -> int:
    connections = 0
    while budget[0] > 0 and time.monotonic() < deadline:
        connections += 1
        try:  # from an address of their own: the server counts sources apart
            async with websockets.connect(url, max_size=None, local_addr=(source, 0)) as ws:
                drain = asyncio.create_task(_swallow(ws))
                for _ in range(rng.randint(1, 60)):
                    if budget[0] <= 0:
                        break
                    budget[0] -= 1
                    await ws.send(message(rng))
                drain.cancel()
        except websockets.InvalidMessage:  # refused at once: past the address's connect rate
            await asyncio.sleep(50 * MS)
        except (websockets.ConnectionClosed, OSError, websockets.InvalidStatus):
            pass
    return connections


async def _swallow(ws: websockets.ClientConnection) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in ws:
            pass


def _p95(run_results: list[dict[str, object]]) -> float:
    lat = sorted(float(r["latency_ms"]) for r in run_results)  # type: ignore[arg-type]
    return lat[int(0.95 * (len(lat) - 1))]


async def test_thousands_of_generated_messages_raise_no_traceback_and_spare_honest_streams() -> (
    None
):
    female, rate = load("female_speech.wav")
    problems = _Problems()
    loggers = [logging.getLogger(n) for n in ("voxlive", "uvicorn.error", "uvicorn", "starlette")]
    for logger in loggers:
        logger.addHandler(problems)
    try:
        async with running_server(gate="none") as srv:
            baseline = await stream_audio(srv.ws_url, female, rate, speed=1.0)
            budget, deadline = [MESSAGES], time.monotonic() + TIME_LIMIT_S
            attackers = [
                asyncio.create_task(
                    _hostile(
                        srv.ws_url, random.Random(seed), budget, deadline, f"127.0.0.{2 + seed}"
                    )
                )
                for seed in range(4)
            ]
            attacked = await stream_audio(srv.ws_url, female, rate, speed=1.0)
            connections = sum(await asyncio.gather(*attackers))
            await eventually(
                lambda: not srv.service.registry.connections, "hostile streams to close", 10
            )
            async with httpx.AsyncClient() as client:
                assert (await client.get(srv.url + "/readyz")).status_code == 200
    finally:
        for logger in loggers:
            logger.removeHandler(problems)
    assert budget[0] <= 0, f"only {MESSAGES - budget[0]} messages sent in {TIME_LIMIT_S} s"
    assert problems.records == []
    for run in (baseline, attacked):
        assert run.close_code == 1000 and len(run.results) == len(baseline.results)
    base_p95, attacked_p95 = _p95(baseline.results), _p95(attacked.results)
    print(f"\n{MESSAGES} messages over {connections} connections; honest p95 {base_p95:.0f} ms "
          f"alone, {attacked_p95:.0f} ms under attack")  # fmt: skip
    # within 2x of its own baseline (plus 50 ms, for a baseline of a few ms on a noisy machine)
    assert attacked_p95 <= 2 * base_p95 + 50
