"""End to end in real headless Chromium (Debian's), microphone faked from the test recordings,
against the real server with the pitch backend serving the built web app."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.helpers import DATA, load, running_server

ROOT = Path(__file__).resolve().parents[2]
WEB_DIST = ROOT / "web" / "dist"
ARTIFACTS = ROOT / "artifacts" / "e2e"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CHROMIUM = os.environ.get("VOXLIVE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def _needs_build_and_browser() -> None:
    if not (WEB_DIST / "index.html").is_file():
        pytest.fail(f"expected the built web app in {WEB_DIST}: run `make web` (make test does)")
    if not AXE.is_file():
        pytest.fail(f"expected axe-core at {AXE}: run `make web` (npm ci in web/)")
    if not shutil.which(CHROMIUM):
        pytest.fail(f"expected Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


def mic_file(name: str, tmp: Path, repeats: int = 1) -> Path:
    """The recording padded with silence (0.5 s before, 1 s after), 16-bit PCM, as Chromium needs."""
    x, rate = load(name)
    silence = np.zeros(rate // 2, np.float32)
    padded = np.concatenate([silence, *([x, silence] * repeats), silence])
    path = tmp / f"mic-{name}"
    sf.write(path, padded, rate, subtype="PCM_16")
    return path


async def launch(pw: object, wav: Path | None, loop: bool = False) -> Browser:
    args = list(FLAGS)
    if wav is not None:
        suffix = "" if loop else "%noloop"
        args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={wav}{suffix}"]  # fmt: skip
    else:
        args += ["--use-fake-device-for-media-stream", "--deny-permission-prompts"]
    return await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
async def pw() -> AsyncIterator[object]:
    async with async_playwright() as p:
        yield p


async def open_page(
    browser: Browser, url: str, grant: bool = True, viewport: dict[str, int] = DESKTOP
) -> Page:
    context = await browser.new_context(
        permissions=["microphone"] if grant else [], viewport=viewport,  # type: ignore[arg-type]
        is_mobile=viewport["width"] < 500, accept_downloads=True,
    )  # fmt: skip
    page = await context.new_page()
    await page.goto(url)
    return page


async def assert_accessible(page: Page, where: str) -> None:
    """axe-core finds no serious or critical violation on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    violations = await page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))"""
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe-core, {where}: {json.dumps(bad, indent=1)}"


def contrast(css_a: str, css_b: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours."""

    def luminance(css: str) -> float:
        r, g, b = (float(x) / 255 for x in css[css.index("(") + 1 : -1].split(",")[:3])
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(css_a), luminance(css_b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


async def shoot(page: Page, name: str) -> None:
    """A full-page screenshot under artifacts/e2e (looked at by people, not compared)."""
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def two_speakers(tmp: Path) -> Path:
    """The female recording, then the male one (with silence around them), as a WAV."""
    female, rate = load("female_speech.wav")
    male, rate_m = load("male_speech.wav")
    assert rate == rate_m
    gap = np.zeros(rate // 2, np.float32)
    path = tmp / "female-then-male.wav"
    sf.write(path, np.concatenate([gap, female, gap, male, gap]), rate, subtype="PCM_16")
    return path


@pytest.mark.parametrize(
    ("name", "label"), [("female_speech.wav", "female"), ("male_speech.wav", "male")]
)
async def test_live_label_follows_the_recording(
    pw: object, tmp_path: Path, name: str, label: str
) -> None:
    browser = await launch(pw, mic_file(name, tmp_path))
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url)
            await page.get_by_test_id("start").click()
            await expect(page.get_by_test_id("connection")).to_have_text(
                "Connected", timeout=10_000
            )
            await expect(page.get_by_test_id("label")).to_have_text(label, timeout=30_000)
            await expect(page.get_by_test_id("model")).to_contain_text("pitch")
            timeline = page.get_by_test_id("timeline")
            await page.wait_for_function(
                "n => Number(document.querySelector('[data-testid=timeline]').dataset.points) >= n",
                arg=5, timeout=15_000,
            )  # fmt: skip
            assert int(await timeline.get_attribute("data-points") or 0) >= 5
            await expect(page.get_by_test_id("mic")).to_contain_text("Microphone on")
            # One headline: the smoothed label with its own confidence, how long it held, and
            # the latency a person sees; the raw window behind Details.
            await expect(page.get_by_test_id("confidence")).to_contain_text("confidence")
            await expect(page.get_by_test_id("held")).to_contain_text(" s")
            await expect(page.get_by_test_id("latency")).to_contain_text("follows a voice")
            await expect(page.get_by_test_id("announce")).to_have_text(label)
            await expect(page.get_by_test_id("raw-label")).to_be_hidden()  # inside closed details
            await expect(page.get_by_test_id("label-card")).to_have_attribute("data-stale", "false")
            status = page.get_by_role("status").filter(has=page.get_by_test_id("connection"))
            await expect(status).not_to_contain_text(" ms")  # no chatter on every latency change
            await expect(page.get_by_test_id("announce")).to_have_attribute("aria-live", "polite")
            stop_width = (await page.get_by_test_id("stop").bounding_box() or {})["width"]
            await assert_accessible(page, "live")
            await shoot(page, f"live-{label}-1280x800")
            await page.get_by_test_id("stop").click()
            await expect(page.get_by_test_id("start")).to_be_visible(timeout=10_000)
            await expect(page.get_by_test_id("connection")).to_have_text("Stopped")
            start_width = (await page.get_by_test_id("start").bounding_box() or {})["width"]
            assert start_width == stop_width  # Start and Stop take the same room
            # After Stop: the label is marked stale with its age, and the totals are shown.
            await expect(page.get_by_test_id("label-card")).to_have_attribute("data-stale", "true")
            await expect(page.get_by_test_id("stale")).to_contain_text("Not live (stopped)")
            await expect(page.get_by_test_id("stale")).to_contain_text("ago")
            await expect(page.get_by_test_id("summary")).to_contain_text(label)
            await expect(page.get_by_test_id("segments")).to_contain_text(label)
            await assert_accessible(page, "stopped")
            await shoot(page, f"stopped-{label}-1280x800")
            assert srv.service.metrics.streams_total._value.get() == 1
    finally:
        await browser.close()


async def test_denied_microphone_shows_a_plain_error(pw: object) -> None:
    browser = await launch(pw, None)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url, grant=False)
            await page.get_by_test_id("start").click()
            await expect(page.get_by_test_id("errors")).to_contain_text(
                "Microphone access was denied", timeout=10_000
            )
            await page.screenshot(path=str(ARTIFACTS / "mic-denied.png"), full_page=True)
            await expect(page.get_by_test_id("start")).to_be_visible()
    finally:
        await browser.close()


async def test_reconnects_when_the_server_comes_back(pw: object, tmp_path: Path) -> None:
    browser = await launch(pw, mic_file("female_speech.wav", tmp_path, repeats=3), loop=True)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            port = int(srv.url.rsplit(":", 1)[1])
            page = await open_page(browser, srv.url)
            await page.get_by_test_id("start").click()
            await expect(page.get_by_test_id("label")).to_have_text("female", timeout=30_000)
        # The server is gone mid-stream.
        await expect(page.get_by_test_id("connection")).to_contain_text(
            "Reconnecting", timeout=10_000
        )
        await expect(page.get_by_test_id("errors")).to_contain_text("Cannot reach the server")
        # During the outage the last label is not shown as live.
        await expect(page.get_by_test_id("label-card")).to_have_attribute("data-stale", "true")
        await expect(page.get_by_test_id("stale")).to_contain_text("connection lost")
        await expect(page.get_by_test_id("retry")).to_be_visible()
        await shoot(page, "reconnecting-1280x800")
        async with running_server(web_dir=str(WEB_DIST), port=port) as srv2:
            # Ready again: the page is back within the 2 s backoff ceiling (plus a margin).
            await expect(page.get_by_test_id("connection")).to_have_text("Connected", timeout=4_000)
            await page.wait_for_function(
                "() => Number(document.querySelector('[data-testid=timeline]').dataset.points) >= 2",
                timeout=15_000,
            )
            assert srv2.service.metrics.streams_total._value.get() == 1
            await expect(page.get_by_test_id("label")).to_have_text("female", timeout=15_000)
            await expect(page.get_by_test_id("errors")).to_be_hidden()  # cleared on reconnect
            await expect(page.get_by_test_id("label-card")).to_have_attribute("data-stale", "false")
            await shoot(page, "reconnected-1280x800")
            await page.get_by_test_id("stop").click()
    finally:
        await browser.close()


async def test_fast_file_mode_is_lossless_and_exports_its_source(pw: object) -> None:
    browser = await launch(pw, None)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url, grant=False)
            await expect(page.get_by_test_id("realtime")).not_to_be_checked()  # fast by default
            await page.get_by_test_id("file").set_input_files(str(DATA / "male_speech.wav"))
            await expect(page.get_by_test_id("label")).to_have_text("male", timeout=20_000)
            await expect(page.get_by_test_id("file-progress")).to_contain_text("all 0:0")
            await expect(page.get_by_test_id("summary-dropped")).to_have_text("0 dropped")
            await expect(page.get_by_test_id("stale")).to_contain_text("file finished")
            async with page.expect_download() as info:
                await page.get_by_test_id("export-json").click()
            exported = json.loads(Path(await (await info.value).path()).read_text())
            assert exported["model"] == "pitch" and exported["fallback"] is False
            assert exported["source"] == "male_speech.wav" and exported["startedAt"].endswith("Z")
            assert exported["end"]["dropped_windows"] == 0
            results = exported["results"]
            hop_ms = exported["ready"]["hop_ms"]
            duration_ms = exported["end"]["duration_ms"]
            # Every window of the file is there: one per hop, nothing skipped.
            assert [r["seq"] for r in results] == list(range(len(results)))
            assert len(results) >= duration_ms // hop_ms - 1
            # ...and the ready and end are the server's own, for the stream that classified it.
            assert exported["ready"]["stream_id"] == exported["end"]["stream_id"]
            assert exported["ready"]["stream_id"].startswith("file-")
            assert exported["end"]["windows"] == len(results)
            assert [s["label"] for s in exported["segments"]][-1] == "male"
            async with page.expect_download() as info:
                await page.get_by_test_id("export-csv").click()
            csv = Path(await (await info.value).path()).read_text()
            assert csv.startswith("# format,") and "\n# model,pitch\n" in csv
            assert "\n# source,male_speech.wav\n" in csv
            assert "\nstream_id,seq,start_ms,end_ms,page_start_ms,page_end_ms,label" in csv
            assert csv.count("\n") >= 8 + 4
            await shoot(page, "file-fast-1280x800")
            # A new session does not silently replace this one... (it was exported: no question)
            await page.get_by_test_id("file").set_input_files(str(DATA / "male_speech.wav"))
            await expect(page.get_by_test_id("confirm-discard")).to_be_hidden()
            await expect(page.get_by_test_id("summary")).to_be_visible(timeout=20_000)
            # ...but asks when the results were not exported.
            await page.get_by_test_id("file").set_input_files(str(DATA / "female_speech.wav"))
            await expect(page.get_by_test_id("confirm-discard")).to_be_visible()
            await assert_accessible(page, "confirm discard")
            await page.get_by_test_id("discard").click()
            await expect(page.get_by_test_id("label")).to_have_text("female", timeout=20_000)
    finally:
        await browser.close()


async def test_segments_in_order_for_a_female_then_male_recording(
    pw: object, tmp_path: Path
) -> None:
    wav = two_speakers(tmp_path)
    browser = await launch(pw, None)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            for name, viewport in (("1280x800", DESKTOP), ("390x844", PHONE)):
                page = await open_page(browser, srv.url, grant=False, viewport=viewport)
                await page.get_by_test_id("file").set_input_files(str(wav))
                await expect(page.get_by_test_id("summary")).to_be_visible(timeout=30_000)
                rows = page.get_by_test_id("segments").locator("li")
                labels = [
                    x for x in await rows.evaluate_all("els => els.map(e => e.dataset.label)")
                ]
                speech = [x for x in labels if x != "ambient"]
                assert speech == ["female", "male"], labels
                texts = await rows.all_inner_texts()
                assert all("–" in t for t in texts)  # "0:01–0:05 female …"
                # The timeline: a band per window on a seconds axis, one probability line.
                timeline = page.get_by_test_id("timeline")
                assert int(await timeline.get_attribute("data-points") or 0) >= 15
                assert await timeline.locator("rect.band[data-label=female]").count() > 3
                assert await timeline.locator("rect.band[data-label=male]").count() > 3
                await expect(page.get_by_test_id("prob-line")).to_have_count(1)
                await expect(page.locator(".x-axis span").first).to_have_text("0:00")
                await expect(page.get_by_test_id("details")).to_be_visible()
                await page.get_by_test_id("details").locator("summary").click()
                await expect(page.get_by_test_id("raw-label")).to_be_visible()
                await assert_accessible(page, f"segments at {name}")
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"]
                await shoot(page, f"segments-{name}")
                await page.context.close()
    finally:
        await browser.close()


async def test_fallback_banner_on_a_phone_sized_screen(pw: object, tmp_path: Path) -> None:
    from voxlive.inference.pitch import PitchClassifier

    fallback = PitchClassifier(
        fallback="could not load the default model (OSError: hub unreachable)"
    )
    browser = await launch(pw, mic_file("male_speech.wav", tmp_path))
    try:
        async with running_server(classifier=fallback, web_dir=str(WEB_DIST)) as srv:
            context = await browser.new_context(
                permissions=["microphone"], viewport={"width": 390, "height": 844}, is_mobile=True
            )
            page = await context.new_page()
            await page.goto(srv.url)
            await expect(page.get_by_test_id("start")).to_be_visible()
            # Before Start: one short model line from /readyz, the reason folded away.
            await expect(page.get_by_test_id("model")).to_contain_text("pitch")
            await expect(page.get_by_test_id("fallback")).to_contain_text("fallback")
            await expect(page.get_by_text("hub unreachable")).to_be_hidden()
            await assert_accessible(page, "phone, before start")
            await shoot(page, "phone-before-start-390x844")
            for _ in range(5):  # keyboard-usable: Tab reaches Start, Enter presses it
                await page.keyboard.press("Tab")
                if await page.evaluate("document.activeElement?.dataset?.testid") == "start":
                    break
            await expect(page.get_by_test_id("start")).to_be_focused()
            ring = await page.evaluate(
                """() => { const s = getComputedStyle(document.activeElement);
                           return [s.outlineColor, s.outlineWidth, s.outlineStyle,
                                   getComputedStyle(document.body).backgroundColor,
                                   getComputedStyle(document.documentElement).backgroundColor]; }"""
            )
            assert ring[2] == "solid" and float(ring[1].removesuffix("px")) >= 2, ring
            page_bg = ring[4] if ring[3] in ("rgba(0, 0, 0, 0)", "transparent") else ring[3]
            assert contrast(ring[0], page_bg) >= 3, ring
            assert contrast(ring[0], "rgb(255, 255, 255)") >= 3, ring  # on a card too
            await page.keyboard.press("Enter")
            await expect(page.get_by_test_id("fallback")).to_contain_text(
                "hub unreachable", timeout=15_000
            )
            await expect(page.get_by_test_id("label")).to_have_text("male", timeout=30_000)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390  # no horizontal scrolling on a phone
            # The label comes first: above the controls, high on the screen.
            label_box = await page.get_by_test_id("label").bounding_box()
            stop_box = await page.get_by_test_id("stop").bounding_box()
            assert label_box and stop_box and label_box["y"] < stop_box["y"]
            assert label_box["y"] < 250, label_box
            await assert_accessible(page, "phone, live")
            await shoot(page, "phone-live-390x844")
            # At 320 px: nothing overflows sideways and the label is above the fold.
            await page.set_viewport_size({"width": 320, "height": 568})
            assert await page.evaluate("document.documentElement.scrollWidth") <= 320
            label_box = await page.get_by_test_id("label").bounding_box()
            assert label_box and label_box["y"] + label_box["height"] < 568
            await shoot(page, "phone-live-320x568")
    finally:
        await browser.close()


async def test_model_line_before_start_says_starting_and_degrades_without_readyz(
    pw: object,
) -> None:
    browser = await launch(pw, None)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url, grant=False)
            await expect(page.get_by_test_id("model")).to_contain_text("pitch")
            await expect(page.get_by_test_id("fallback")).to_have_count(0)
            # While the model loads, /readyz answers 503 with its status: "server starting".
            loading = await open_page(browser, srv.url + "?loading", grant=False)
            await loading.route(
                "**/readyz",
                lambda route: route.fulfill(
                    status=503, content_type="application/json", body='{"status": "loading"}'
                ),
            )
            await loading.reload()
            await expect(loading.get_by_test_id("server-starting")).to_contain_text(
                "Server starting"
            )
            await assert_accessible(loading, "server starting")
            # No /readyz (a proxy hides it, or it wants a token): no model line, Start still works.
            hidden = await open_page(browser, srv.url + "?hidden", grant=False)
            await hidden.route("**/readyz", lambda route: route.fulfill(status=404, body="no"))
            await hidden.reload()
            await expect(hidden.get_by_test_id("start")).to_be_visible()
            await expect(hidden.get_by_test_id("model")).to_have_count(0)
            await expect(hidden.get_by_test_id("server-starting")).to_have_count(0)
    finally:
        await browser.close()


async def test_real_time_file_shows_progress_in_audio_time(pw: object) -> None:
    browser = await launch(pw, None)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url, grant=False)
            await page.get_by_test_id("realtime").check()
            await page.get_by_test_id("file").set_input_files(str(DATA / "male_speech.wav"))
            await expect(page.get_by_test_id("file-progress")).to_contain_text(
                "of 0:05 sent", timeout=10_000
            )
            await expect(page.get_by_test_id("label-card")).to_have_attribute(
                "data-stale", "false", timeout=10_000
            )
            await expect(page.get_by_test_id("label")).to_have_text("male", timeout=20_000)
            await expect(page.get_by_test_id("summary")).to_be_visible(timeout=20_000)
            await expect(page.get_by_test_id("stale")).to_contain_text("file finished")
            await expect(page.get_by_test_id("segments")).to_contain_text("male")
    finally:
        await browser.close()


async def test_a_server_message_the_page_cannot_read_is_shown_and_the_stream_goes_on(
    pw: object,
) -> None:
    """A result that fails the page's parser (a string seq) right after ready: the page says so
    among its errors, names the field, and keeps showing the real results."""
    browser = await launch(pw, None)

    def handler(ws: Any) -> None:
        server = ws.connect_to_server()

        def forward(message: str | bytes) -> None:
            ws.send(message)
            if isinstance(message, str) and '"type":"ready"' in message:
                ws.send('{"type":"result","seq":"seven"}')

        server.on_message(forward)

    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url, grant=False)
            await page.route_web_socket("**/audio", handler)
            await page.get_by_test_id("realtime").check()
            await page.get_by_test_id("file").set_input_files(str(DATA / "male_speech.wav"))
            errors = page.get_by_test_id("errors")
            await expect(errors).to_contain_text("cannot read", timeout=10_000)
            await expect(errors).to_contain_text('result.seq: expected number, got "seven"')
            await expect(page.get_by_test_id("label")).to_have_text("male", timeout=20_000)
            await page.get_by_test_id("stop").click()
    finally:
        await browser.close()


async def test_not_ready_reads_server_starting_and_retry_now_reconnects(
    pw: object, tmp_path: Path
) -> None:
    """The first stream is refused as the server answers while loading (error not_ready, close
    1013); the page says the server is starting, not that it is unreachable, and Retry now
    connects at once."""
    browser = await launch(pw, mic_file("male_speech.wav", tmp_path))
    refused = 0

    async def handler(ws: object) -> None:
        nonlocal refused
        if refused < 3:
            refused += 1
            ws.send(  # type: ignore[attr-defined]
                '{"type":"error","code":"not_ready","message":"expected a ready server"}'
            )
            await ws.close(code=1013, reason="not_ready")  # type: ignore[attr-defined]
            return
        ws.connect_to_server()  # type: ignore[attr-defined]

    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url)
            await page.route_web_socket("**/audio", handler)
            await page.get_by_test_id("start").click()
            await expect(page.get_by_test_id("connection")).to_contain_text(
                "Server starting", timeout=10_000
            )
            await expect(page.get_by_test_id("server-starting")).to_be_visible()
            await expect(page.get_by_test_id("errors")).to_have_count(0)
            await shoot(page, "server-starting-1280x800")
            while refused < 3:  # each Retry now is refused at once, until the server is "ready"
                await page.get_by_test_id("retry").click(timeout=5_000)
            await page.get_by_test_id("retry").click(timeout=5_000)
            await expect(page.get_by_test_id("connection")).to_have_text("Connected", timeout=1_000)
            await expect(page.get_by_test_id("server-starting")).to_have_count(0)
            await expect(page.get_by_test_id("label")).to_have_text("male", timeout=30_000)
    finally:
        await browser.close()
