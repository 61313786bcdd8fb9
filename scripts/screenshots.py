"""Regenerate the page's screenshot set at 1280x800 and 390x844 in artifacts/screenshots/.

Runs the real server (pitch model) on a free loopback port serving web/dist, and Debian's
headless Chromium with a fake microphone, through the same helpers as the end-to-end tests:

    make web && .venv/bin/python scripts/screenshots.py [OUT_DIR]

Shots per size: the page before anything starts, a live microphone (female speech), a file's
answer (female then male), and that file's timeline zoomed in. Full-page PNGs, for people to
look at; nothing is compared.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from playwright.async_api import Page, async_playwright, expect  # noqa: E402
from tests.e2e.test_browser import (  # noqa: E402
    DESKTOP,
    PHONE,
    WEB_DIST,
    launch,
    mic_file,
    open_page,
    two_speakers,
)
from tests.helpers import running_server  # noqa: E402


async def shoot(page: Page, out: Path, name: str) -> None:
    path = out / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(path)


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wav = two_speakers(tmp)
        async with async_playwright() as pw:
            browser = await launch(pw, mic_file("female_speech.wav", tmp, repeats=2), loop=True)
            try:
                async with running_server(web_dir=str(WEB_DIST)) as srv:
                    for size, viewport in (("1280x800", DESKTOP), ("390x844", PHONE)):
                        page = await open_page(browser, srv.url, viewport=viewport)
                        await shoot(page, out, f"idle-{size}")
                        await page.get_by_test_id("start").click()
                        await expect(page.get_by_test_id("label")).to_have_text(
                            "female", timeout=15_000
                        )
                        await page.wait_for_timeout(3000)
                        await shoot(page, out, f"live-{size}")
                        await page.get_by_test_id("stop").click()
                        await page.get_by_test_id("export-json").wait_for()
                        await page.get_by_test_id("file").set_input_files(str(wav))
                        if await page.get_by_test_id("discard").count():
                            await page.get_by_test_id("discard").click()
                        await expect(page.get_by_test_id("summary")).to_be_visible(timeout=30_000)
                        await shoot(page, out, f"file-answer-{size}")
                        await page.get_by_test_id("zoom-in").click()
                        await shoot(page, out, f"file-zoomed-{size}")
                        await page.context.close()
            finally:
                await browser.close()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "artifacts" / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(target))
