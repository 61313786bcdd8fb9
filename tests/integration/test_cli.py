"""The console script, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import SHARED, majority


def voxlive(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxlive", *args], capture_output=True, text=True, timeout=timeout
    )


def test_classify_prints_a_table_and_json_lines() -> None:
    out = voxlive("classify", "--model", "pitch", str(SHARED / "male_speech.wav"))
    assert out.returncode == 0, out.stderr
    assert "start_s" in out.stdout and "male" in out.stdout
    out = voxlive("classify", "--model", "pitch", "--json", str(SHARED / "female_speech.mp3"),
                  str(SHARED / "ambient_coffee_shop_24k_stereo.mp3"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    female = [r["label"] for r in rows if r["file"].endswith("female_speech.mp3")]
    ambient = [r["label"] for r in rows if "ambient" in r["file"]]
    assert majority([x for x in female if x != "ambient"]) == "female"
    assert ambient.count("ambient") >= 0.9 * len(ambient)


def test_bad_setting_is_a_one_line_error() -> None:
    out = voxlive("serve", "--hop-ms", "5000")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "voxlive: bad setting: hop_ms: expected 10..window_ms (1000) ms, got 5000"
    )


def test_unreadable_file_is_reported_without_a_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"nope")
    out = voxlive("classify", "--model", "pitch", str(bad))
    assert out.returncode == 1 and "Traceback" not in out.stderr and "libsndfile" in out.stderr


def test_a_named_model_that_cannot_load_stops_serve(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = voxlive("serve", "--model", str(tmp_path / "nope"), "--port", "0", timeout=120)
    assert out.returncode == 1
    assert "could not load model" in out.stderr
