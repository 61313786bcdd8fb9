"""End to end in headless Chromium: the page moves its microphone stream to another front when
its front is lost (issue #24, item 2). Two fronts share a ``cluster_secret``; the page reaches
them through one URL, a TCP proxy in this test (standing in for the load balancer) that forwards
to front A until it is told to cut A's connections and forward to front B. With the fake
microphone, the page resumes on B by its newest ack's token, replays the audio sent since that
ack, and its results go on: one stream, no duplicate and no missing ``seq``, no "new stream"
notice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, WebSocket, async_playwright, expect

from tests.e2e.test_browser import (  # noqa: F401 (_needs_build_and_browser: an autouse fixture)
    DESKTOP,
    WEB_DIST,
    _needs_build_and_browser,
    launch,
    mic_file,
)
from tests.helpers import running_server

pytestmark = pytest.mark.e2e
SECRET = "e2e-failover-secret-0123456789"
POINTS = "Number(document.querySelector('[data-testid=timeline]')?.dataset.points ?? 0)"


@pytest.fixture
async def pw() -> AsyncIterator[object]:
    async with async_playwright() as p:
        yield p


class Balancer:
    """A TCP proxy on a free loopback port: every new connection goes to ``target`` (a port);
    :meth:`cut` closes the open ones at once, as a front that died would."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.connections = 0  # accepted so far
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Balancer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut(self.target)
        await self._server.wait_closed()

    def cut(self, to: int) -> None:
        """Drop every open connection (both ends, no FIN: a reset) and send new ones to ``to``."""
        self.target = to
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()  # the other side ended: so does this one

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._open -= {writer, up_writer}


def watch(page: Page) -> list[dict[str, Any]]:
    """Every text message the page's WebSockets receive, with the index of its socket."""
    seen: list[dict[str, Any]] = []
    sockets = 0

    def on_socket(ws: WebSocket) -> None:
        nonlocal sockets
        index = sockets
        sockets += 1

        def on_frame(payload: str | bytes) -> None:
            if isinstance(payload, str):
                seen.append({**json.loads(payload), "_socket": index})

        ws.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    return seen


@pytest.mark.parametrize("after", ["front-b", "front-a"])
async def test_the_page_resumes_on_another_front_without_duplicates_or_a_new_stream(
    pw: object, tmp_path: Path, after: str
) -> None:
    """``front-b``: front A is lost, B rebuilds the stream from the token. ``front-a``: only the
    connection is lost, and the page comes back to A, which still holds the stream (a
    same-front resume, by the same token)."""
    browser = await launch(pw, mic_file("female_speech.wav", tmp_path, repeats=3), loop=True)
    try:
        async with (
            running_server(web_dir=str(WEB_DIST), cluster_secret=SECRET) as front_a,
            running_server(cluster_secret=SECRET) as front_b,
        ):
            port_a = int(front_a.url.rsplit(":", 1)[1])
            port_b = int(front_b.url.rsplit(":", 1)[1])
            async with Balancer(port_a) as lb:
                context = await browser.new_context(permissions=["microphone"], viewport=DESKTOP)  # type: ignore[arg-type]
                page = await context.new_page()
                # The deployment's config.json points the page at the balancer.
                ws_url = f"ws://127.0.0.1:{lb.port}/audio"
                await page.route("**/config.json", lambda r: r.fulfill(json={"wsUrl": ws_url}))
                seen = watch(page)
                await page.goto(front_a.url)
                await page.get_by_test_id("start").click()
                await page.wait_for_function(f"n => {POINTS} >= n", arg=8, timeout=30_000)
                acks = [m for m in seen if m["type"] == "ack"]
                assert acks and acks[-1]["token"].startswith("v1."), "the page asks for acks"
                on_a = sum(1 for m in seen if m["type"] == "result")

                # The connection is lost; the balancer sends the page to B (or A again).
                lb.cut(to=port_b if after == "front-b" else port_a)
                cut_at = time.monotonic()
                await expect(page.get_by_test_id("connection")).to_contain_text(
                    "Reconnecting", timeout=5_000
                )
                await expect(page.get_by_test_id("connection")).to_have_text(
                    "Connected", timeout=10_000
                )
                connected_s = time.monotonic() - cut_at
                before = await page.evaluate(POINTS)
                await page.wait_for_function(f"n => {POINTS} > n", arg=before, timeout=10_000)
                first_s = time.monotonic() - cut_at
                await page.wait_for_function(f"n => {POINTS} >= n + 6", arg=before, timeout=20_000)
                await expect(page.get_by_test_id("new-stream")).to_have_count(0)
                readies = [m for m in seen if m["type"] == "ready"]
                assert [r["resumed"] for r in readies] == [False, True]
                assert readies[0]["stream_id"] == readies[1]["stream_id"]
                assert "replay_from" in readies[1]
                assert not [m for m in seen if m.get("code") == "resume_failed"]
                on_b = front_b.service.metrics.streams_total._value.get()
                assert on_b == (1 if after == "front-b" else 0)

                await page.get_by_test_id("stop").click()
                await expect(page.get_by_test_id("connection")).to_have_text(
                    "Stopped", timeout=10_000
                )
                async with page.expect_download() as info:
                    await page.get_by_test_id("export-json").click()
                exported = json.loads(Path(await (await info.value).path()).read_text())
                results = exported["results"]
                seqs = [r["seq"] for r in results]
                replayed = sum(1 for m in seen if m["type"] == "result" and m["_socket"] == 1) - (
                    len(results) - on_a
                )
                print(
                    f"{after}: connected again {connected_s:.2f} s after the cut, next window on "
                    f"screen {first_s:.2f} s after it; results before the cut {on_a}, after {len(results) - on_a}, resent "
                    f"and dropped "
                    f"by the page {replayed}; last ack before the cut: samples "
                    f"{acks[-1]['samples']}, seq {acks[-1]['seq']}; replay_from "
                    f"{readies[1]['replay_from']}"
                )
                # One stream, every window once: seq 0, 1, 2… with no repeat and no hole.
                assert {r["stream_id"] for r in results} == {readies[0]["stream_id"]}
                assert seqs == list(range(len(seqs))), seqs
                assert exported["end"]["stream_id"] == readies[0]["stream_id"]
                assert len(results) > on_a
    finally:
        await browser.close()
