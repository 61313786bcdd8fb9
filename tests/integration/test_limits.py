"""max_frame_bytes against a real server: a frame of exactly the limit is the largest accepted,
one byte more closes the stream with 1009 before it is assembled."""

from __future__ import annotations

import asyncio
import json

import websockets

from tests.helpers import MS, StreamRun, collect, running_server

LIMIT = 2048


async def _send(url: str, frame: bytes) -> StreamRun:
    run = StreamRun()
    async with websockets.connect(url, max_size=None) as ws:
        reader = asyncio.create_task(collect(ws, run))
        await ws.send(json.dumps({"type": "start", "sample_rate": 16_000}))
        try:
            await ws.send(frame)
            await ws.send(json.dumps({"type": "stop"}))
        except websockets.ConnectionClosed:
            pass
        await asyncio.wait_for(reader, 10_000 * MS)
    return run


async def test_a_frame_of_exactly_max_frame_bytes_is_accepted_and_one_more_byte_is_not() -> None:
    async with running_server(max_frame_bytes=LIMIT) as srv:
        at = await _send(srv.ws_url, b"\x00\x01" * (LIMIT // 2))
        over = await _send(srv.ws_url, b"\x00" * (LIMIT + 1))
    assert at.close_code == 1000 and not at.of("error")
    [end] = at.of("end")
    assert end["duration_ms"] == LIMIT // 2 / 16  # 1024 samples at 16 kHz
    assert over.close_code == 1009 and not over.of("end")
