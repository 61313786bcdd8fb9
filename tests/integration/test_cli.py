"""The console script, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import DATA, MS, majority


def voxlive(*args: str, timeout: float = 120_000 * MS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxlive", *args], capture_output=True, text=True, timeout=timeout
    )


def test_classify_prints_a_table_and_json_lines() -> None:
    out = voxlive("classify", "--model", "pitch", str(DATA / "male_speech.wav"))
    assert out.returncode == 0, out.stderr
    assert "start_s" in out.stdout and "male" in out.stdout
    assert "\nsegments\n" in out.stdout and "windows)" in out.stdout
    out = voxlive("classify", "--model", "pitch", "--json", str(DATA / "female_speech.mp3"),
                  str(DATA / "ambient_coffee_shop_24k_stereo.mp3"))  # fmt: skip
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
    out = voxlive("serve", "--model", str(tmp_path / "nope"), "--port", "0", timeout=120_000 * MS)
    assert out.returncode == 1
    assert "could not load model" in out.stderr


def test_bench_starts_servers_and_compares_variants_in_one_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`voxlive bench` against two servers it starts itself (base and --max-batch 1): every
    number the issue asks for is in the JSON, and the table is printed."""
    out_path = tmp_path / "bench.json"
    out = voxlive("bench", "--audio", str(DATA / "female_speech.wav"),
                  str(DATA / "male_speech.wav"), "--streams", "3", "--seconds", "5",
                  "--warmup-s", "1", "--quiet", "--out", str(out_path), "--model", "pitch",
                  "--compare", "--max-batch 1", timeout=180_000 * MS)  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out_path.read_text())
    assert [r["target"] for r in report["runs"]] == ["base", "--max-batch 1"]
    for row in report["runs"]:
        assert row["streams"] == 3 and row["dropped_windows"] == 0 and row["errors"] == 0
        assert row["dropped_audio_s"] == 0 and row["failed_streams"] == []
        # 3 streams × 4 counted seconds at 2 results/s, plus each stream's final tail window
        assert 3 * 8 <= row["results"] <= 3 * 8 + 6
        assert 0 < row["server_p50_ms"] <= row["server_p95_ms"] <= row["server_p99_ms"]
        assert row["client_p95_ms"] > 0 and row["server_rss_mib"] > 50
        assert row["server_cpu_pct"] > 0 and sum(row["batch_sizes"].values()) == row["model_calls"]
    assert set(report["runs"][1]["batch_sizes"]) == {"<=1"}
    assert "p95" in out.stdout and "--max-batch 1" in out.stdout
    made = report["provenance"]  # where the figures came from (bench/provenance.py)
    assert made["started_utc"] <= made["ended_utc"] and len(made["load_before"]) == 3
    assert " bench --audio " in made["command"] and made["cpus"] >= 1
    assert made["settings"]["settings"]["model"] == "pitch"
    assert made["settings"]["compare"] == ["--max-batch 1"]


def test_bench_runs_conversation_streams_beside_continuous_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`--conversation MS` runs each server's capacity search twice, continuous and with MS of
    quiet room noise after each recording, and reports the ratio of the streams held."""
    out_path = tmp_path / "bench.json"
    out = voxlive("bench", "--audio", str(DATA / "female_speech.wav"), "--streams", "1",
                  "--seconds", "6", "--warmup-s", "1", "--quiet", "--out", str(out_path),
                  "--model", "pitch", "--conversation", "3000", "--find-capacity",
                  "--capacity-limit", "2", "--p95-ms", "1000", timeout=180_000 * MS)  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out_path.read_text())
    runs = report["runs"]
    assert {r["target"] for r in runs} == {"base", "base [conversation]"}
    continuous = [r for r in runs if r["target"] == "base"]
    talk = [r for r in runs if r["target"] == "base [conversation]"]
    # the room noise reaches no model: the gate settles it (the recording alone is all speech)
    assert all(r["gated_results"] > 0 for r in talk)
    assert sum(r["model_results"] for r in talk) < sum(r["model_results"] for r in continuous)
    assert report["capacity"] == {"base": 2, "base [conversation]": 2}
    assert report["conversation_ratio"] == {"base": 1.0}
    assert "conversation / continuous [base]: 1.00x" in out.stdout
