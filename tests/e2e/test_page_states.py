"""End to end in headless Chromium: the page in the states a person meets besides a good stream
(issue #26): the server restarting mid-stream, the server down when the page loads, no
microphone, how long a label takes, gaps and "no speech", Stop, dark mode. Against the real
server with the pitch backend and the built page, as in test_browser.py."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.e2e.test_browser import (  # noqa: F401 (_needs_build_and_browser: an autouse fixture)
    CHROMIUM,
    DESKTOP,
    FLAGS,
    WEB_DIST,
    _needs_build_and_browser,
    assert_accessible,
    contrast,
    launch,
    shoot,
)
from tests.helpers import free_port, load, running_server

# To show a test fails without the change: VOXLIVE_E2E_DIST=/path/to/another/build/dist.
DIST = Path(os.environ.get("VOXLIVE_E2E_DIST", str(WEB_DIST)))
pytestmark = pytest.mark.e2e


@pytest.fixture
async def pw() -> AsyncIterator[object]:
    async with async_playwright() as p:
        yield p


POINTS = "Number(document.querySelector('[data-testid=timeline]')?.dataset.points ?? 0)"


def quiet_then_female(tmp: Path) -> Path:
    """3 s of silence (the gate hears no speech), then the female recording, then 1 s of silence."""
    female, rate = load("female_speech.wav")
    path = tmp / "quiet-then-female.wav"
    parts = [np.zeros(rate * 3, np.float32), female, np.zeros(rate, np.float32)]
    sf.write(path, np.concatenate(parts), rate, subtype="PCM_16")
    return path


async def points(page: Page) -> int:
    return int(await page.evaluate(POINTS))


async def test_after_a_server_restart_new_windows_show_within_2_s_as_a_new_stream(
    pw: object, tmp_path: Path
) -> None:
    """Items 1, 4, 7, 10 of #26: a new stream's results (seq from 0 again) are shown, not dropped
    as replays; the outage is a "no data" row, counted in the summary; the label's delay is
    what a person waits; ambient reads "no speech" without a confidence; a tentative label
    leads the headline; Stop reads Stopped."""
    browser = await launch(pw, quiet_then_female(tmp_path), loop=True)
    try:
        async with running_server(web_dir=str(DIST)) as srv:
            port = int(srv.url.rsplit(":", 1)[1])
            context = await browser.new_context(permissions=["microphone"], viewport=DESKTOP)  # type: ignore[arg-type]
            page = await context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            await page.goto(srv.url)
            await expect(page.get_by_test_id("model")).to_contain_text("pitch")
            assert console == []  # no 404 for config.json or favicon.ico (nor anything else)
            await expect(page.get_by_test_id("about")).to_contain_text("sent to the server")
            await page.get_by_test_id("start").click()
            # Silence first: "no speech", with no confidence (the gate decided, not the model).
            await expect(page.get_by_test_id("label")).to_have_text("no speech", timeout=15_000)
            await expect(page.get_by_test_id("confidence")).to_have_count(0)
            # The raw windows flip first: a faint tentative label, which the headline then commits.
            await expect(page.get_by_test_id("tentative")).to_have_text(
                re.compile(r"→ (fe)?male\?"), timeout=30_000
            )
            await expect(page.get_by_test_id("label")).to_have_text("female", timeout=30_000)
            # What a person waits for a label, in tenths of seconds; server ms under Details.
            latency = page.get_by_test_id("latency")
            await expect(latency).to_have_text(
                re.compile(r"follows a voice about \d\.\d(–\d\.\d)? s")
            )
            await expect(latency).not_to_contain_text("ms")
            await expect(page.get_by_test_id("delivery")).to_have_text(re.compile(r"^\d+ ms$"))
            await page.wait_for_function(f"n => {POINTS} >= n", arg=20, timeout=30_000)
        # The server is gone; it comes back on the same port, knowing nothing of the stream.
        await expect(page.get_by_test_id("connection")).to_contain_text(
            "Reconnecting", timeout=10_000
        )
        # A restart takes a while: more audio than the page holds to replay (5 s once acked).
        await asyncio.sleep(6)
        async with running_server(web_dir=str(DIST), port=port) as srv2:
            await expect(page.get_by_test_id("connection")).to_have_text("Connected", timeout=5_000)
            connected = time.monotonic()
            before = await points(page)
            await page.wait_for_function(f"n => {POINTS} > n", arg=before, timeout=2_000)
            print(f"first window of the new stream {time.monotonic() - connected:.2f} s after open")
            assert srv2.service.metrics.streams_total._value.get() == 1
            await expect(page.get_by_test_id("new-stream")).to_contain_text("A new stream began")
            # The restarted server has another secret: it cannot take the old stream's token.
            await expect(page.get_by_test_id("new-stream")).to_have_attribute(
                "data-reason", "forged"
            )
            await expect(page.get_by_test_id("no-data")).to_contain_text("were not classified")
            gap = page.get_by_test_id("segments").locator("li[data-label=no-data]")
            await expect(gap).to_have_count(1)
            await expect(gap).to_contain_text("no data")
            # The timeline shows the same stretch as a "no data" band.
            await expect(page.get_by_test_id("timeline-gap")).to_have_count(1)
            await expect(page.get_by_test_id("label-card")).to_have_attribute("data-stale", "false")
            await assert_accessible(page, "after a restart")
            await shoot(page, "restarted-new-stream-1280x800")
            await page.get_by_test_id("stop").click()
            await expect(page.get_by_test_id("connection")).to_have_text("Stopped", timeout=10_000)
            await expect(page.get_by_test_id("summary-no-data")).to_contain_text("no data for")
            await expect(page.get_by_test_id("errors")).to_have_count(0)
            await shoot(page, "restarted-stopped-1280x800")
    finally:
        await browser.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(65_536):
        dst.write(data)
        await dst.drain()


class FrontDoor:
    """The page's origin on a port of its own, as a front end (nginx) is: it serves the built
    page itself and passes the API and the WebSocket, byte for byte, to the back end's port
    while one listens there; while none does it drops those connections unanswered."""

    API = ("/readyz", "/healthz", "/audio", "/classify")

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.open: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> FrontDoor:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for writer in self.open:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode().split("?")[0]
            if not path.startswith(self.API):
                file = DIST / (path.lstrip("/") or "index.html")
                found = file.is_file() and DIST in file.resolve().parents
                body = file.read_bytes() if found else b""
                kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                writer.write(
                    f"HTTP/1.1 {'200 OK' if found else '404 Not Found'}\r\nContent-Type: {kind}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
            except OSError:
                return  # the back end is down: the browser sees the connection dropped
            up_writer.write(head)
            pipes = [
                asyncio.create_task(_pipe(reader, up_writer)),
                asyncio.create_task(_pipe(up_reader, writer)),
            ]
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            for task in pipes:
                task.cancel()
            up_writer.close()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open.discard(writer)
            writer.close()


async def test_server_down_at_load_says_unreachable_and_counts_the_audio_it_missed(
    pw: object, tmp_path: Path
) -> None:
    """Item 2 of #26, and the ticking countdown of item 10: before Start the page says the server
    is unreachable (and keeps asking /readyz); Start says the same, not "connection lost
    (code 1006)"; once the server is up the audio it never got is counted, and the latency is
    timed from the right samples."""
    port = free_port()  # the back end's, down at first
    browser = await launch(pw, quiet_then_female(tmp_path), loop=True)
    try:
        async with FrontDoor(port) as door:
            context = await browser.new_context(permissions=["microphone"], viewport=DESKTOP)  # type: ignore[arg-type]
            page = await context.new_page()
            await page.goto(door.url + "/")
            await expect(page.get_by_test_id("server-unreachable")).to_contain_text(
                f"Server unreachable at ws://127.0.0.1:{door.port}/audio, retrying", timeout=10_000
            )
            await assert_accessible(page, "server unreachable before start")
            await page.get_by_test_id("start").click()
            connection = page.get_by_test_id("connection")
            await expect(connection).to_have_text("Server unreachable", timeout=10_000)
            await expect(page.get_by_test_id("errors")).to_contain_text("Server unreachable at")
            await expect(page.get_by_test_id("errors")).not_to_contain_text("1006")
            # The countdown ticks (while Chromium itself holds a try back it says "trying now…").
            js = "document.querySelector('[data-testid=countdown]')?.textContent"
            seen = []
            for _ in range(40):
                seen.append(await page.evaluate(js))
                await asyncio.sleep(0.1)
            ticks = {t for t in seen if t and t.startswith("next try in")}
            assert len(ticks) >= 3, seen
            await expect(connection).to_have_text("Server unreachable")  # the same words throughout
            await shoot(page, "server-unreachable-1280x800")
            async with running_server(web_dir=str(DIST), port=port):
                await expect(connection).to_have_text("Connected", timeout=5_000)
                await expect(page.get_by_test_id("server-unreachable")).to_have_count(
                    0, timeout=5_000
                )
                missed = page.get_by_test_id("no-data")
                await expect(missed).to_contain_text(re.compile(r"The first \d+\.\d s were not"))
                seconds = float(re.findall(r"first (\d+\.\d) s", await missed.inner_text())[0])
                assert seconds >= 2.0, seconds
                await expect(page.get_by_test_id("label")).to_have_text("female", timeout=30_000)
                # The send clock starts at the stream's first sample: a label is timed in
                # hundreds of ms, not seconds too late by the audio that was never sent.
                delivery = await page.get_by_test_id("delivery").text_content()
                print(f"first {seconds} s not classified; audio end to screen {delivery}")
                assert delivery and int(delivery.removesuffix(" ms")) < 1_500, delivery
                await expect(page.get_by_test_id("errors")).to_have_count(0)
                await assert_accessible(page, "connected after the server came up")
                await shoot(page, "server-came-up-1280x800")
                await page.get_by_test_id("stop").click()
                await expect(connection).to_have_text("Stopped", timeout=10_000)
                await expect(page.get_by_test_id("summary-no-data")).to_contain_text("no data")
    finally:
        await browser.close()


async def no_microphone_browser(pw: object) -> Browser:
    """Chromium that lets the page ask for a microphone but has none to give."""
    args = [*FLAGS, "--use-fake-ui-for-media-stream"]
    return await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)  # type: ignore[attr-defined, no-any-return]


async def test_a_microphone_failure_shows_only_the_microphone_problem(pw: object) -> None:
    """Item 3 of #26 (no device, and permission denied), and dark mode (item 10): the page
    does not blame the server for a microphone it could not open."""
    for why, browser_of, grant, text in (
        ("no device", no_microphone_browser, True, "No microphone was found"),
        ("denied", lambda p: launch(p, None), False, "Microphone access was denied"),
    ):
        browser = await browser_of(pw)
        try:
            async with running_server(web_dir=str(DIST)) as srv:
                context = await browser.new_context(
                    permissions=["microphone"] if grant else [],
                    viewport=DESKTOP,  # type: ignore[arg-type]
                    color_scheme="dark",
                )  # fmt: skip
                page = await context.new_page()
                await page.goto(srv.url)
                await page.get_by_test_id("start").click()
                errors = page.get_by_test_id("errors")
                await expect(errors).to_contain_text(text, timeout=10_000)
                await asyncio.sleep(1)  # a late close of the connection would show by now
                await expect(errors).not_to_contain_text("server")
                assert await errors.locator("div").count() == 1, await errors.inner_text()
                await expect(page.get_by_test_id("connection")).to_have_text("Not connected")
                await expect(page.get_by_test_id("start")).to_be_visible()
                bg, fg = await page.evaluate(
                    """() => [getComputedStyle(document.documentElement).backgroundColor,
                              getComputedStyle(document.documentElement).color]"""
                )
                assert contrast(bg, "rgb(0, 0, 0)") < 2 and contrast(bg, fg) >= 7, (bg, fg)
                await assert_accessible(page, f"dark, microphone {why}")
                await shoot(page, f"dark-mic-{why.replace(' ', '-')}-1280x800")
        finally:
            await browser.close()
