"""End to end in real headless Chromium (Debian's), microphone faked from the test recordings,
against the real server with the pitch backend serving the built web app."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.async_api import Browser, Page, async_playwright, expect

from helpers import load, running_server

ROOT = Path(__file__).resolve().parents[2]
WEB_DIST = ROOT / "web" / "dist"
ARTIFACTS = ROOT / "artifacts" / "e2e"
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


async def open_page(browser: Browser, url: str, grant: bool = True) -> Page:
    context = await browser.new_context(
        permissions=["microphone"] if grant else [], viewport={"width": 900, "height": 900}
    )
    page = await context.new_page()
    await page.goto(url)
    return page


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
            await page.screenshot(path=str(ARTIFACTS / f"live-{label}.png"), full_page=True)
            await page.get_by_test_id("stop").click()
            await expect(page.get_by_test_id("start")).to_be_visible(timeout=10_000)
            await expect(page.get_by_test_id("connection")).to_have_text("Disconnected")
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
        await page.screenshot(path=str(ARTIFACTS / "reconnecting.png"), full_page=True)
        async with running_server(web_dir=str(WEB_DIST), port=port) as srv2:
            await expect(page.get_by_test_id("connection")).to_have_text(
                "Connected", timeout=20_000
            )
            await page.wait_for_function(
                "() => Number(document.querySelector('[data-testid=timeline]').dataset.points) >= 2",
                timeout=15_000,
            )
            assert srv2.service.metrics.streams_total._value.get() == 1
            await expect(page.get_by_test_id("label")).to_have_text("female", timeout=15_000)
            await page.screenshot(path=str(ARTIFACTS / "reconnected.png"), full_page=True)
            await page.get_by_test_id("stop").click()
    finally:
        await browser.close()


async def test_file_mode_streams_a_file_through_the_same_pipeline(pw: object) -> None:
    browser = await launch(pw, None)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url, grant=False)
            await page.get_by_test_id("file").set_input_files(
                str(load.__globals__["DATA"] / "male_speech.wav")
            )
            await expect(page.get_by_test_id("label")).to_have_text("male", timeout=20_000)
            await expect(page.get_by_test_id("connection")).to_have_text(
                "Disconnected", timeout=20_000
            )
            async with page.expect_download() as info:
                await page.get_by_test_id("export-csv").click()
            csv = Path(await (await info.value).path()).read_text()
            assert csv.startswith("seq,start_ms,end_ms,label") and csv.count("\n") >= 8
            await page.screenshot(path=str(ARTIFACTS / "file-mode.png"), full_page=True)
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
            for _ in range(5):  # keyboard-usable: Tab reaches Start, Enter presses it
                await page.keyboard.press("Tab")
                if await page.evaluate("document.activeElement?.dataset?.testid") == "start":
                    break
            await expect(page.get_by_test_id("start")).to_be_focused()
            await page.keyboard.press("Enter")
            await expect(page.get_by_test_id("fallback")).to_contain_text(
                "hub unreachable", timeout=15_000
            )
            await expect(page.get_by_test_id("label")).to_have_text("male", timeout=30_000)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390  # no horizontal scrolling on a phone
            await page.screenshot(path=str(ARTIFACTS / "phone-fallback.png"), full_page=True)
    finally:
        await browser.close()
