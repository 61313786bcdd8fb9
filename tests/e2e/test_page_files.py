"""End to end in headless Chromium: files (the answer as the headline, the whole file on the
timeline, progress, a stopped file, a bad file), segment boundaries where the speaker changed,
exports a researcher can use, and what a live page costs the main thread."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.async_api import Page, expect

from tests.e2e.test_browser import (
    DESKTOP,
    PHONE,
    WEB_DIST,
    assert_accessible,
    launch,
    mic_file,
    open_page,
    shoot,
)
from tests.e2e.test_browser import (
    _needs_build_and_browser as _needs_build_and_browser,
)
from tests.e2e.test_browser import pw as pw
from tests.helpers import load, running_server

pytestmark = pytest.mark.e2e

RATE = 16_000
HOP_MS = 500  # the default hop


def long_file(tmp: Path) -> tuple[Path, float, float]:
    """Over a minute of audio: female speech (10 times), a second of silence, male speech (3
    times). Returns the path, the female and the male seconds."""
    female, rate = load("female_speech.wav")
    male, _ = load("male_speech.wav")
    assert rate == RATE
    parts = [*[female] * 10, np.zeros(RATE, np.float32), *[male] * 3]
    path = tmp / "long-talk.wav"
    sf.write(path, np.concatenate(parts), RATE, subtype="PCM_16")
    return path, 10 * len(female) / RATE, 3 * len(male) / RATE


async def download(page: Page, testid: str) -> str:
    async with page.expect_download() as info:
        await page.get_by_test_id(testid).click()
    return Path(await (await info.value).path()).read_text()


def csv_rows(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The `#` config block as a dict, and the data rows (what pandas' comment="#" reads)."""
    config = {}
    data = []
    for line in text.splitlines():
        if line.startswith("# "):
            key, _, value = line[2:].partition(",")
            config[key] = value
        else:
            data.append(line)
    return config, list(csv.DictReader(io.StringIO("\n".join(data))))


async def test_a_long_file_is_answered_whole_and_shown_whole(pw: object, tmp_path: Path) -> None:
    wav, female_s, male_s = long_file(tmp_path)
    duration_ms = (female_s + male_s + 1) * 1000
    browser = await launch(pw, None)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            for name, viewport in (("1280x800", DESKTOP), ("390x844", PHONE)):
                page = await open_page(browser, srv.url, grant=False, viewport=viewport)
                await page.get_by_test_id("file").set_input_files(str(wav))
                await expect(page.get_by_test_id("file-progress")).to_contain_text(
                    "Classifying all 1:", timeout=10_000
                )
                await expect(page.get_by_test_id("summary")).to_be_visible(timeout=60_000)
                # The headline is the file's answer, not its last seconds (which are male).
                await expect(page.get_by_test_id("label")).to_have_text("female")
                await expect(page.get_by_test_id("answer-of")).to_contain_text("whole file")
                parts = page.get_by_test_id("answer-part")
                assert await parts.first.get_attribute("data-label") == "female"
                await expect(page.get_by_test_id("answer")).to_contain_text("male")
                # The latest window's class bars are not the file's: they wait in the details.
                await expect(page.get_by_test_id("class-bars")).to_be_hidden()
                # The timeline holds the whole file (more than a minute), then zooms and scrolls.
                timeline = page.get_by_test_id("timeline")
                start = int(await timeline.get_attribute("data-view-start") or -1)
                end = int(await timeline.get_attribute("data-view-end") or 0)
                assert start == 0 and end >= duration_ms - 1500, (start, end, duration_ms)
                await expect(page.get_by_test_id("timeline-scroll")).to_have_count(0)
                await page.get_by_test_id("zoom-in").click()
                await page.get_by_test_id("zoom-in").click()
                scroll = page.get_by_test_id("timeline-scroll")
                await expect(scroll).to_be_visible()
                zoomed = int(await timeline.get_attribute("data-view-end") or 0) - int(
                    await timeline.get_attribute("data-view-start") or 0
                )
                assert zoomed < (end - start) / 3
                await scroll.fill("0")
                await expect(timeline).to_have_attribute("data-view-start", "0")
                await assert_accessible(page, f"a long file, zoomed, at {name}")
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"]
                await shoot(page, f"long-file-{name}")
                await page.get_by_test_id("zoom-reset").click()
                await expect(timeline).to_have_attribute("data-view-start", "0")
                await page.context.close()
    finally:
        await browser.close()


async def test_segment_boundaries_on_the_page_lie_where_the_speaker_changed(
    pw: object, tmp_path: Path
) -> None:
    """Female then male with no pause: the page's segments (the server's) change within one
    hop of the real change, and the export says so, with its config block."""
    female, _ = load("female_speech.wav")
    male, _ = load("male_speech.wav")
    wav = tmp_path / "female-male.wav"
    sf.write(wav, np.concatenate([female, male]), RATE, subtype="PCM_16")
    onset_ms = len(female) / RATE * 1000
    browser = await launch(pw, None)
    try:
        async with running_server(web_dir=str(WEB_DIST), gate="rms") as srv:
            page = await open_page(browser, srv.url, grant=False)
            await page.get_by_test_id("file").set_input_files(str(wav))
            await expect(page.get_by_test_id("summary")).to_be_visible(timeout=30_000)
            config, segments = csv_rows(await download(page, "export-segments-csv"))
            assert config["model"] == "pitch" and config["hop_ms"] == "500"
            assert config["smoothing_windows"] == "4" and config["gate"] == "rms"
            assert config["segment_boundary_resolution_ms"] == "250"
            assert config["voxlive_version"] and config["source"] == "female-male.wav"
            speech = [s for s in segments if s["label"] != "ambient"]
            assert [s["label"] for s in speech] == ["female", "male"], segments
            male_start = int(speech[1]["start_ms"])
            assert abs(male_start - onset_ms) <= HOP_MS, (male_start, onset_ms)
            assert all(s["stream_id"].startswith("file-") for s in segments)
            # Windows: stream id, both time bases, whole milliseconds, fixed decimals, class.
            _, windows = csv_rows(await download(page, "export-csv"))
            first = windows[0]
            assert first["stream_id"] == segments[0]["stream_id"]
            assert first["start_ms"] == first["page_start_ms"] == "0"
            assert all(w["end_ms"].isdigit() and w["latency_ms"].isdigit() for w in windows)
            assert all(len(w["confidence"].split(".")[1]) == 4 for w in windows)
            assert all(w["class"] == w["label"] for w in windows)
            # Listen back: a segment plays from the page's own copy of the file, and stops.
            listen = page.get_by_test_id("listen").first
            await expect(listen).to_have_attribute("aria-pressed", "false")
            await listen.click()
            await expect(listen).to_have_attribute("aria-pressed", "true")
            await expect(listen).to_have_text("■ Stop")
            await listen.click()
            await expect(listen).to_have_attribute("aria-pressed", "false")
            exported = json.loads(await download(page, "export-json"))
            assert exported["config"]["window_ms"] == 1000
            assert [s["stream_id"] for s in exported["streams"]] == [first["stream_id"]]
            assert exported["segments"][-1]["start_ms"] == int(speech[1]["start_ms"])
    finally:
        await browser.close()


async def test_a_stopped_file_says_where_and_a_bad_file_leaves_no_old_results(
    pw: object, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    browser = await launch(pw, None)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url, grant=False)
            await page.get_by_test_id("realtime").check()
            wav, _, _ = long_file(tmp_path)
            await page.get_by_test_id("file").set_input_files(str(wav))
            await expect(page.get_by_test_id("file-progress")).to_contain_text(
                "left", timeout=10_000
            )
            await expect(page.get_by_test_id("label")).not_to_have_text("—", timeout=15_000)
            await page.get_by_test_id("stop").click()
            progress = page.get_by_test_id("file-progress")
            await expect(progress).to_contain_text("stopped at 0:0")
            await expect(progress).to_contain_text("of 1:")
            await expect(page.get_by_test_id("answer-of")).to_contain_text("first 0:0")
            await assert_accessible(page, "a stopped file")
            # A file that is not audio: its error, and none of the last file's results.
            await page.get_by_test_id("file").set_input_files(str(bad))
            await page.get_by_test_id("discard").click()
            await expect(page.get_by_test_id("errors")).to_contain_text(
                '"notes.wav" could not be decoded'
            )
            await expect(page.get_by_test_id("label")).to_have_text("—")
            await expect(page.get_by_test_id("segments")).to_have_count(0)
            await expect(page.get_by_test_id("timeline")).to_have_attribute("data-points", "0")
            await expect(page.get_by_test_id("export-csv")).to_be_disabled()
    finally:
        await browser.close()


SECONDS = 10  # of live microphone audio measured


async def test_a_live_page_renders_on_new_data_not_on_every_audio_frame(
    pw: object, tmp_path: Path
) -> None:
    """With the fake microphone, over 10 s: the page renders about twice a second (a result per
    500 ms hop), the meter about 20 times; layouts stay few (measured with the CDP's
    Performance.getMetrics; before #26 the page rendered 20 times and laid out ~54 times a second)."""
    browser = await launch(pw, mic_file("female_speech.wav", tmp_path, repeats=3), loop=True)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url)
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("Performance.enable")
            await page.get_by_test_id("start").click()
            await expect(page.get_by_test_id("connection")).to_have_text(
                "Connected", timeout=10_000
            )
            await expect(page.get_by_test_id("label")).not_to_have_text("—", timeout=10_000)
            # Live, the latest window's class bars show without opening anything.
            await expect(page.get_by_test_id("class-bars").locator(".bar-row")).to_have_count(2)

            async def sample() -> tuple[dict[str, float], dict[str, int]]:
                metrics = (await cdp.send("Performance.getMetrics"))["metrics"]
                renders = await page.evaluate("({...window.__voxliveRenders})")
                return {m["name"]: m["value"] for m in metrics}, renders

            m0, r0 = await sample()
            await page.wait_for_timeout(SECONDS * 1000)
            m1, r1 = await sample()
            per_s = {k: (r1.get(k, 0) - r0.get(k, 0)) / SECONDS for k in r1}
            layouts = (m1["LayoutCount"] - m0["LayoutCount"]) / SECONDS
            busy = (m1["TaskDuration"] - m0["TaskDuration"]) / SECONDS
            print(f"renders/s {per_s}, layouts/s {layouts:.1f}, main thread busy {busy:.1%}")
            assert per_s["meter"] >= 5  # the meter moves with the audio...
            assert per_s["app"] <= 5  # ...the page does not: a result every 500 ms, a clock
            assert per_s.get("timeline", 0) <= 3 and per_s.get("segments", 0) <= 3
            assert layouts <= 10
    finally:
        await browser.close()


async def test_the_segment_log_follows_the_newest_row_until_the_reader_scrolls_back(
    pw: object, tmp_path: Path
) -> None:
    female, _ = load("female_speech.wav")
    male, _ = load("male_speech.wav")
    quiet = np.zeros(RATE, np.float32)
    path = tmp_path / "turns.wav"  # twelve turns: more segments than the log shows at once
    sf.write(path, np.concatenate([female, quiet, male, quiet] * 6), RATE, subtype="PCM_16")
    browser = await launch(pw, None)
    try:
        async with running_server(web_dir=str(WEB_DIST)) as srv:
            page = await open_page(browser, srv.url, grant=False, viewport=DESKTOP)
            await page.get_by_test_id("file").set_input_files(str(path))
            log = page.get_by_test_id("segments")
            await expect(page.get_by_test_id("summary")).to_be_visible(timeout=30_000)
            assert await log.locator("li").count() >= 10  # more than the log shows at once
            at_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 8"
            assert await log.evaluate(at_bottom)  # it followed the newest row
            await expect(page.get_by_test_id("jump-latest")).to_have_count(0)
            await log.evaluate("el => { el.scrollTop = 0; }")  # the reader scrolls back
            jump = page.get_by_test_id("jump-latest")
            await expect(jump).to_be_visible()
            assert await log.evaluate("el => el.scrollTop") == 0  # and stays where they are
            await jump.click()
            await expect(jump).to_have_count(0)
            assert await log.evaluate(at_bottom)
            await assert_accessible(page, "segment log held")
    finally:
        await browser.close()
