"""Attacks on a real server on loopback, each bounded in count and time: what one hostile
client can cost (sockets, memory, logs) stays within stated bounds, and honest clients go on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.helpers import (
    MS,
    StreamRun,
    collect,
    eventually,
    load,
    pcm16,
    running_server,
    stream_audio,
)
from voxlive.bench.attacks import frame, rss_bytes
from voxlive.bench.serving import serve_subprocess
from voxlive.settings import Settings


async def _closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    """True once the server closes (EOF or reset) within ``within_s``."""
    try:
        async with asyncio.timeout(within_s):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def test_idle_and_trickling_sockets_are_closed_after_the_header_timeout() -> None:
    async with running_server(header_timeout_ms=300) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
        slow_r, slow_w = await asyncio.open_connection("127.0.0.1", port)
        slow_w.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()

        async def trickle() -> None:  # one header byte every 50 ms: never completes in time
            with contextlib.suppress(ConnectionError):
                for _ in range(100):
                    slow_w.write(b"X")
                    await slow_w.drain()
                    await asyncio.sleep(50 * MS)

        task = asyncio.create_task(trickle())
        assert await _closed_by_server(idle_r, 5_000 * MS)
        assert await _closed_by_server(slow_r, 5_000 * MS)
        assert time.monotonic() - t0 < 3  # the deadline, not the trickle's 5 s, ended it
        task.cancel()
        for w in (idle_w, slow_w):
            w.close()
        async with httpx.AsyncClient() as client:  # honest requests are unaffected
            assert (await client.get(srv.url + "/healthz")).status_code == 200


async def test_an_oversized_request_head_is_refused_not_buffered() -> None:
    async with running_server() as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 64 * 1024)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        head = await asyncio.wait_for(reader.read(200), 5_000 * MS)
        assert head.startswith(b"HTTP/1.1 400")
        writer.close()


async def test_sockets_past_the_budget_are_refused_and_the_server_recovers() -> None:
    async with running_server(max_connections=8, max_streams=4, header_timeout_ms=500) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        extra_r, extra_w = await asyncio.open_connection("127.0.0.1", port)
        assert await _closed_by_server(extra_r, 2_000 * MS)  # over the budget: closed at once
        extra_w.close()
        for reader, writer in held:  # the idle ones are reaped by the header deadline
            assert await _closed_by_server(reader, 5_000 * MS)
            writer.close()
        async with httpx.AsyncClient() as client:
            assert (await client.get(srv.url + "/healthz")).status_code == 200


def _ws_handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /audio HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 101"), response[:100]
    return sock


async def test_a_ping_flood_that_never_reads_is_dropped_with_bounded_memory() -> None:
    async with running_server() as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        sock = await asyncio.to_thread(_ws_handshake, port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # read nothing, hold little
        burst = frame(0x9, b"p" * 125) * 512  # 66 KB of pings per send
        rss_before = rss_bytes()

        def flood() -> int:
            sent = 0
            with contextlib.suppress(OSError):
                sock.settimeout(10_000 * MS)
                while sent < 200 * 1024 * 1024:  # bounded: 200 MB at most
                    sock.sendall(burst)
                    sent += len(burst)
            return sent

        sent = await asyncio.to_thread(flood)
        sock.close()
        # The server dropped the client long before the bound (its unread pongs passed 1 MiB
        # plus what the kernel buffers hold), and its memory grew by far less than what was sent.
        assert sent < 50 * 1024 * 1024
        assert rss_bytes() - rss_before < 32 * 1024 * 1024
        async with httpx.AsyncClient() as client:
            assert (await client.get(srv.url + "/healthz")).status_code == 200


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_tokens_in_query_strings_never_reach_the_log() -> None:
    import websockets

    records = _Records()
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn.access", "voxlive")]
    async with running_server(token="sekrit-token-123") as srv:
        for logger in loggers:  # uvicorn's loggers do not propagate to the root
            logger.setLevel(logging.DEBUG)
            logger.addHandler(records)
        try:
            async with websockets.connect(srv.ws_url + "?token=sekrit-token-123") as ws:
                await ws.send('{"type": "stop"}')
                async for _ in ws:
                    pass
            async with httpx.AsyncClient() as client:
                await client.get(srv.url + "/healthz?token=sekrit-token-123")
        finally:
            for logger in loggers:
                logger.removeHandler(records)
    assert any("/audio" in line for line in records.lines)  # the requests were logged…
    assert any("/healthz" in line for line in records.lines)
    assert not any("sekrit" in line for line in records.lines)  # …without the token


async def test_dns_rebinding_is_refused_on_a_loopback_server() -> None:
    """A page at rebound.example whose name now resolves to 127.0.0.1 sends Host and Origin of
    its own name: they match each other, so the same-origin check alone would let it in."""
    import websockets

    async with running_server() as srv:
        port = srv.url.rsplit(":", 1)[1]
        evil = {"Host": f"rebound.example:{port}", "Origin": f"http://rebound.example:{port}"}
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(srv.ws_url, additional_headers=evil):
                pass
        assert refused.value.response.status_code == 400
        async with httpx.AsyncClient() as client:
            page = await client.get(srv.url + "/readyz", headers={"Host": "rebound.example"})
            local = await client.get(srv.url + "/readyz", headers={"Host": f"localhost:{port}"})
        assert page.status_code == 400 and local.status_code == 200
    async with running_server(allowed_hosts=("voice.example", "127.0.0.1")) as srv:
        async with httpx.AsyncClient() as client:
            listed = await client.get(srv.url + "/healthz", headers={"Host": "voice.example"})
            other = await client.get(srv.url + "/healthz", headers={"Host": "localhost"})
        assert listed.status_code == 200 and other.status_code == 400  # the list replaces


async def _open(url: str) -> tuple[Any, StreamRun, asyncio.Task[None]]:
    import websockets

    ws = await websockets.connect(url)
    run = StreamRun()
    return ws, run, asyncio.create_task(collect(ws, run))


async def test_a_client_without_the_token_holds_no_stream_slot() -> None:
    female, rate = load("female_speech.wav")
    async with running_server(token="s3cret", max_streams=1, auth_timeout_ms=1000) as srv:
        lurker, lurker_run, lurking = await _open(srv.ws_url)  # connects, never authenticates
        honest = await stream_audio(
            srv.ws_url, female[: 2 * rate], rate, speed=0,
            start={"type": "start", "sample_rate": rate, "token": "s3cret"},
        )  # fmt: skip
        await asyncio.wait_for(lurking, 5_000 * MS)  # the lurker is closed by the auth deadline
        await lurker.close()
    assert honest.close_code == 1000 and honest.results  # admitted although one socket lurked
    assert lurker_run.close_code == 1008
    assert lurker_run.of("error")[0]["code"] == "unauthorized"
    assert "within 1 s" in lurker_run.of("error")[0]["message"]


async def test_junk_before_authentication_closes_after_three_errors() -> None:
    async with running_server(token="s3cret", max_streams=1) as srv:
        ws, run, reading = await _open(srv.ws_url)
        with contextlib.suppress(Exception):
            for _ in range(10):
                await ws.send("not json")
        await asyncio.wait_for(reading, 5_000 * MS)
        assert srv.service.registry.connections == set()  # it never took a slot
    assert [m["code"] for m in run.of("error")] == ["bad_json"] * 3 + ["too_many_errors"]
    assert run.close_code == 1008


async def test_a_stream_of_bad_frames_is_closed_and_honest_streams_go_on() -> None:
    female, rate = load("female_speech.wav")
    async with running_server() as srv:
        ws, run, reading = await _open(srv.ws_url)
        honest_task = asyncio.create_task(stream_audio(srv.ws_url, female, rate, speed=4))
        with contextlib.suppress(Exception):
            for _ in range(200):  # bounded: odd-length s16 frames, each one an error
                await ws.send(b"\x00")
        await asyncio.wait_for(reading, 5_000 * MS)
        honest = await honest_task
    codes = [m["code"] for m in run.of("error")]
    assert codes == ["bad_frame"] * 21 + ["too_many_errors"]  # 20 allowed within 10 s
    assert run.close_code == 1008
    assert honest.close_code == 1000 and len(honest.results) >= 8


async def test_vanished_streams_are_kept_only_with_audio_and_never_past_capacity() -> None:
    female, rate = load("female_speech.wav")
    async with running_server(max_streams=2, resume_grace_ms=60_000) as srv:
        registry = srv.service.registry
        for _ in range(5):  # connect, vanish without audio: nothing is kept
            ws, _, _ = await _open(srv.ws_url)
            await ws.send('{"type": "start"}')
            ws.transport.abort()
        await eventually(lambda: not registry.connections, "the connections to close")
        assert registry.detached == {}
        for _ in range(5):  # connect, send audio, vanish: kept for resume, at most max_streams
            ws, _, _ = await _open(srv.ws_url)
            await ws.send(pcm16(female[:rate]))
            await asyncio.sleep(50 * MS)
            ws.transport.abort()
            await eventually(lambda: not registry.connections, "the connection to close")
        assert 1 <= len(registry.detached) <= 2
        honest = await stream_audio(srv.ws_url, female[: 2 * rate], rate, speed=0)
        assert honest.close_code == 1000  # a live client pushes detached streams out
        assert len(registry.connections) + len(registry.detached) <= 2


# README "Limits", with the default 256 KiB max_frame_bytes: a one-off cost for the first
# streams (thread pools, first allocations), then at most this much per flooding connection.
FIRST_STREAMS_MIB, PER_CONNECTION_BOUND_MIB = 16, 2


async def test_flooding_connections_stay_within_the_per_connection_memory_bound(
    tmp_path: Path,
) -> None:
    """16 clients send the largest frames allowed as fast as the server takes them and never read: the
    server process's memory grows by at most the documented bound per connection while they
    flood. The server runs in its own process, so only its memory is counted."""
    import websockets

    n, frame = 16, pcm16(np.full(128 * 1024, 0.1, np.float32))  # 256 KiB: the largest allowed
    assert len(frame) == Settings().max_frame_bytes
    flags = ["--model", "pitch", "--gate", "none"]
    async with serve_subprocess("flooded", flags, tmp_path / "serve.log") as target:
        assert target.process is not None
        pid = target.process.pid
        before, peak = rss_bytes(pid), 0

        async def flood() -> None:
            with contextlib.suppress(websockets.ConnectionClosed, OSError, TimeoutError):
                async with websockets.connect(target.url, max_size=None) as ws:
                    async with asyncio.timeout(6_000 * MS):
                        for _ in range(64):
                            await ws.send(frame)
                    ws.transport.abort()

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_bytes(pid))
                await asyncio.sleep(20 * MS)

        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(flood() for _ in range(n)))
        watcher.cancel()
        async with httpx.AsyncClient() as client:  # still serving
            assert (await client.get(target.http + "/healthz")).status_code == 200
    mib = 1024 * 1024
    print(f"\nserver RSS {before / mib:.0f} MiB, peak {peak / mib:.0f} MiB under {n} floods")
    assert peak - before < (FIRST_STREAMS_MIB + n * PER_CONNECTION_BOUND_MIB) * mib


async def test_the_per_address_tables_hold_open_connections_only() -> None:
    female, rate = load("female_speech.wav")
    async with running_server() as srv:
        http = srv.server.config.http
        runs = await asyncio.gather(
            *(stream_audio(srv.ws_url, female[:rate], rate, speed=0) for _ in range(3))
        )
        async with httpx.AsyncClient() as client:
            await client.get(srv.url + "/healthz")
            refused = await client.get(
                srv.url + "/audio", headers={"Origin": "https://evil.example", "Upgrade": "websocket",
                                             "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                                             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
            )  # fmt: skip
        assert all(r.close_code == 1000 for r in runs) and refused.status_code == 403
        await eventually(lambda: not http.per_source, "every socket uncounted")
        assert srv.service.sources.tracked == 0
