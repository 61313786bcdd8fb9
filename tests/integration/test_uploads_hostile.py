"""POST /classify against hostile clients (#23), on a real server on loopback: bodies that
trickle, files priced by their work, clients that leave mid-body or mid-decode, foreign pages.
Each test is bounded to a few seconds and closes what it opens."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.helpers import DATA, MS, eventually, running_server
from voxlive.audio import decode

HONEST = (DATA / "female_speech.wav").read_bytes()


def _flac(seconds: float, rate: int, channels: int) -> bytes:
    """``seconds`` of silence at ``rate`` × ``channels``: a small file that is a lot of work."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, channels, format="FLAC") as f:
        block = np.zeros((rate, channels), np.float32)
        for _ in range(int(seconds)):
            f.write(block)
    return buf.getvalue()


@contextlib.asynccontextmanager
async def _raw(
    url: str, head: bytes
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw connection to the server that has sent ``head``; closed when the block ends."""
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _post_head(length: int) -> bytes:
    return (f"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n\r\n"
            ).encode()  # fmt: skip


async def _trickle(url: str, period_s: float) -> bytes:
    """The attack: a head and 4 bytes, then one byte per ``period_s``; returns the answer, once
    the server has closed the socket."""
    async with _raw(url, _post_head(1_000_000) + b"RIFF") as (reader, writer):
        while True:
            try:
                first = await asyncio.wait_for(reader.read(1), period_s)
            except TimeoutError:
                writer.write(b"x")
                await writer.drain()
                continue
            # the answer, then the server closes the socket (Connection: close): read to the end
            return first + await asyncio.wait_for(reader.read(), 1_000 * MS)


async def test_trickling_bodies_hold_no_slot_and_are_cut_after_the_grace() -> None:
    """Two clients trickle a byte every 0.5 s (the attack held both --max-uploads slots for the
    60 s upload timeout). An honest upload is served at once, /healthz answers within 100 ms,
    and each trickler gets 408 about 2 s after its head."""
    async with (
        running_server(gate="none") as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=10_000 * MS) as client,
    ):
        started = time.monotonic()
        tricklers = [asyncio.create_task(_trickle(srv.url, 500 * MS)) for _ in range(2)]
        await eventually(lambda: srv.service.uploads.receiving.held == 8, "both to trickle")
        assert srv.service.uploads.active == 0
        t0 = time.monotonic()
        health = await client.get("/healthz")
        health_s = time.monotonic() - t0
        honest = await client.post("/classify", content=HONEST)
        honest_s = time.monotonic() - t0
        answers = await asyncio.wait_for(asyncio.gather(*tricklers), 5_000 * MS)
        cut_s = time.monotonic() - started
        assert srv.service.uploads.receiving.held == 0
    assert health.status_code == 200 and health_s < 100 * MS
    assert honest.status_code == 200 and honest.json()["end"]["windows"] > 5
    assert all(a.startswith(b"HTTP/1.1 408") and b"bytes/s or more" in a for a in answers)
    assert all(b"connection: close" in a.lower() for a in answers)
    assert cut_s < 4
    print(f"\nhonest upload during the trickle: {honest_s * 1000:.0f} ms; tricklers cut after "
          f"{cut_s:.1f} s")  # fmt: skip


async def test_a_high_rate_many_channel_file_is_refused_by_its_work_before_decoding() -> None:
    """40 s at 192 kHz × 8 channels (a 60 KB FLAC) is within the 600 s duration limit, but it is
    61,440,000 samples × channels to decode: more than 600 s of 48 kHz stereo."""
    flac = _flac(40, 192_000, 8)
    assert len(flac) < 100_000
    async with (
        running_server(gate="none") as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=10_000 * MS) as client,
    ):
        t0 = time.monotonic()
        r = await client.post("/classify", content=flac)
        took_s = time.monotonic() - t0
        await eventually(lambda: not srv.service.uploads.decoders, "the decode to return")
        assert srv.service.uploads.blocks_decoded == 0
    assert r.status_code == 413 and took_s < 1
    assert r.json()["error"] == {
        "code": "too_much_audio",
        "message": "expected at most 57600000 samples × channels to decode (600 s at 48 kHz "
        "stereo), got 61440000 (40.0 s at 192000 Hz × 8 channels)",
    }


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Decode in blocks of 2048 samples × channels: a file within the limits then takes long
    enough to leave in the middle of."""
    monkeypatch.setattr(decode, "BLOCK_SAMPLES", 2048)
    yield


async def test_a_client_that_leaves_mid_decode_frees_its_slot_and_stops_the_decode(
    small_blocks: None,
) -> None:
    flac = _flac(300, 48_000, 2)  # 28.8 M samples × channels: 14,063 blocks of 2048
    async with (
        running_server(gate="none", max_uploads=1) as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=10_000 * MS) as client,
    ):
        uploads = srv.service.uploads
        async with _raw(srv.url, _post_head(len(flac)) + flac):
            await eventually(lambda: any(c.blocks > 20 for c in uploads.decoders), "a decode")
            [control] = uploads.decoders
        left = time.monotonic()  # the connection is closed: the client left
        await eventually(lambda: uploads.active == 0, "the slot to be free", 500 * MS, 1 * MS)
        freed_s = time.monotonic() - left
        await eventually(control.done.is_set, "the decode thread to stop", 1_000 * MS)
        blocks = control.blocks
        honest = await client.post("/classify", content=HONEST)  # the only slot serves it
    assert control.stopped and blocks < 14_000
    assert honest.status_code == 200
    print(f"\nslot free {freed_s * 1000:.0f} ms after the client left; decode stopped after "
          f"{blocks} of 14063 blocks")  # fmt: skip


class _Problems(logging.Handler):
    """Records at ERROR or above, or carrying a traceback; and the DEBUG lines of left clients."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.problems: list[str] = []
        self.left: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info or record.levelno >= logging.ERROR or "Traceback" in text:
            self.problems.append(f"{record.name}: {text}")
        elif "the client left" in text:
            self.left.append(text)


async def test_uploads_aborted_mid_body_log_one_debug_line_each_and_no_traceback() -> None:
    handler = _Problems()
    names = ("voxlive", "uvicorn.error", "uvicorn", "starlette", "asyncio")
    loggers = [logging.getLogger(n) for n in names]
    body_log = logging.getLogger("voxlive.server.upload_body")
    level = body_log.level
    for logger in loggers:
        logger.addHandler(handler)
    body_log.setLevel(logging.DEBUG)
    try:
        async with running_server(gate="none") as srv:
            for _ in range(20):
                async with _raw(srv.url, _post_head(len(HONEST)) + HONEST[:1000]):
                    await eventually(lambda: srv.service.uploads.receiving.held > 0, "the body")
            await eventually(lambda: len(handler.left) == 20, "20 left clients", 2_000 * MS)
            async with httpx.AsyncClient(base_url=srv.url) as client:
                assert (await client.post("/classify", content=HONEST)).status_code == 200
            assert srv.service.uploads.receiving.held == 0
    finally:
        body_log.setLevel(level)
        for logger in loggers:
            logger.removeHandler(handler)
    assert handler.problems == []
    assert handler.left == ["upload: the client left after 1000 bytes of its body"] * 20


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example", "Content-Type": "text/plain"}, 403),
        (
            {"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
            403,
        ),
        ({"Content-Type": "text/plain"}, 200),  # no Origin: curl, scripts
        ({"Origin": "http://localhost:5173"}, 200),  # the dev page
    ],
)
async def test_a_foreign_page_cannot_spend_the_server_s_cpu(
    headers: dict[str, str], status: int
) -> None:
    async with (
        running_server(gate="none") as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=10_000 * MS) as client,
    ):
        r = await client.post("/classify", content=HONEST, headers=headers)
        assert srv.service.uploads.blocks_decoded == (0 if status == 403 else 1)
    assert r.status_code == status
    if status == 403:
        assert r.json()["error"]["code"] == "origin_not_allowed"
        assert "'https://evil.example' is not allowed" in r.json()["error"]["message"]
