"""Tables from the other bench tools' JSON (bench/tool_tables.py): ceilings, the attack suite
before and after, the balancer, the failover runs and the Ray hop, each from a small
fixture."""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

import pytest

from voxlive.bench.markdown import TableError
from voxlive.bench.tool_tables import ATTACK_MEDIAN_PROBE_MS, ATTACK_PROBE_MS, ATTACK_RSS_MIB, KINDS

ROOT = Path(__file__).resolve().parents[3]


def _table(docs: list[Any], spec: str) -> list[str]:
    """The table a marker's ``kind=… key=value…`` makes of ``docs``."""
    options = dict(w.split("=", 1) for w in shlex.split(spec))
    make, _ = KINDS[options.pop("kind")]
    return make(docs, options).markdown().splitlines()


def test_ceilings_by_round_with_ratios() -> None:
    rounds = [{k: {"audio_s_per_s": v} for k, v in (("torch", 2.575), ("onnx", 6.98),
               ("onnx-int8", 14.32))}]  # fmt: skip
    lines = _table([{"rounds": rounds}], "kind=ceilings ratios=onnx/torch")
    assert lines[0] == "| round | PyTorch fp32 | ONNX fp32 | ONNX int8 | ONNX fp32 / PyTorch fp32 |"
    assert lines[2] == "| 1 | 2.58 | 6.98 | 14.32 | 2.7× |"
    with pytest.raises(TableError, match="ratios: expected a/b with a and b among"):
        _table([{"rounds": rounds}], "kind=ceilings ratios=onnx/gpu")


def _outcome(attack: str, **more: Any) -> dict[str, Any]:
    return {"attack": attack, "connections": 1, "honest_p95_alone_ms": 8.0,
            "honest_p95_attacked_ms": 9.0, "honest_results": 15, "honest_results_alone": 15,
            "slowest_probe_ms": 10.0, "median_probe_ms": 3.0, "failed_probes": 0,
            "rss_growth_mib": 2.0, **more}  # fmt: skip


def test_attacks_before_and_after_bold_past_what_ci_asserts() -> None:
    before = [
        _outcome("ping-flood", slowest_probe_ms=5020.0, failed_probes=1),
        _outcome("slowloris", honest_p95_attacked_ms=math.nan, honest_results=0),
        _outcome("tiny-messages", honest_p95_attacked_ms=90.0, rss_growth_mib=185.0),
    ]
    after = {"provenance": {}, "outcomes": [_outcome("slowloris"), _outcome("tiny-messages"),
                                            _outcome("ping-flood"), _outcome("new-one")]}  # fmt: skip
    lines = _table([before, after], "kind=attacks labels=before,after")
    assert lines[2:] == [
        "| slowloris: 512 partial request lines, re-opened at once | 8 ms → **refused**; 8 → 9 ms "
        "| **0/15**; 15/15 | 10 ms; 10 ms | +2 MiB; +2 MiB |",
        "| 48 connections of one-sample frames, flat out | **8 → 90 ms**; 8 → 9 ms | 15/15; 15/15 "
        "| 10 ms; 10 ms | **+185 MiB**; +2 MiB |",
        "| ping flood, pongs read | 8 → 9 ms; 8 → 9 ms | 15/15; 15/15 | **5020 ms (1 failed)**; "
        "10 ms | +2 MiB; +2 MiB |",
        "| new-one | —; 8 → 9 ms | —; 15/15 | —; 10 ms | —; +2 MiB |",
    ]
    with pytest.raises(TableError, match="expected labels=… naming each of the 2 JSON files"):
        _table([before, after], "kind=attacks")


def test_the_attack_bounds_are_the_ones_the_ci_suite_asserts() -> None:
    suite = (ROOT / "tests/integration/test_attack_suite.py").read_text()
    assert "o.median_probe_ms <= ATTACK_MEDIAN_PROBE_MS" in suite
    assert "o.slowest_probe_ms <= ATTACK_PROBE_MS" in suite
    assert "o.rss_growth_mib <= ATTACK_RSS_MIB" in suite
    readme = (ROOT / "README.md").read_text()  # its security section states the same bounds
    assert (
        f"the median within {ATTACK_MEDIAN_PROBE_MS} ms, the slowest within {ATTACK_PROBE_MS} ms"
        in readme
    )
    assert f"RSS growth under {ATTACK_RSS_MIB} MiB" in readme
    assert "o.honest_p95_attacked_ms <= 2 * o.honest_p95_alone_ms + 50" in suite


def test_balancer_failover_and_ray_hop() -> None:
    passes = {k: {"p50_ms": 4.9, "p95_ms": 7.25, "n": 126, "failures": []}
              for k in ("direct_1", "haproxy", "direct_2")}  # fmt: skip
    lb = {"streams": 6, "ceiling": {"audio_s_per_s": 237.54, "load_pct_of_ceiling": 5.05}, **passes}
    assert _table([lb], "kind=balancer")[2] == (
        "| 6 | 237.5 | 5.1 | 4.9 / 7.3 ms | 4.9 / 7.3 ms | 4.9 / 7.3 ms | 126 | 0 |"
    )

    def run(signal: str, moved: int, exit_s: float) -> dict[str, Any]:  # as the test appends
        return {"signal": signal, "moved_streams": moved, "lost_windows": 0, "repeats": 0,
                "signal_to_ready_ms": [60.0 + 10 * i for i in range(moved)],
                "signal_to_first_result_ms": [400.0 + 100 * i for i in range(moved)],
                "exit_s": exit_s, "accounts": [{"windows": 19}] * 3}  # fmt: skip

    kill = [run("SIGKILL", 1, 0.02), run("SIGKILL", 2, 0.03)]  # a .jsonl file: a list of runs
    term = {"summary": {}, "runs": [run("SIGTERM", 1, 0.21), run("SIGTERM", 2, 0.16)]}  # older
    lines = _table([kill, term], "kind=failover")
    assert lines[2:] == [  # pooled: ready 60, 60, 70 ms; first result 400, 400, 500 ms
        "| `kill -9` | 3 (1–2 a run) | 60 / 69 ms | 400 / 490 ms (500) | 0 of 114 | 0 | — (killed) |",
        "| SIGTERM | 3 (1–2 a run) | 60 / 69 ms | 400 / 490 ms (500) | 0 of 114 | 0 | 0.16–0.21 s |",
    ]
    row = {"size": 1, "local_ms": 55.64, "ray_ms": 91.84, "added_ms": 35.95, "hop_ms": None}
    before, after = {"rows": [row]}, {"rows": [{**row, "ray_ms": 60.35, "hop_ms": 4.98}]}
    lines = _table([before, after], "kind=ray_hop labels=before,after")
    assert lines[0] == ("| batch | in-process ms | Ray before ms | added before ms | Ray after ms "
                        "| added after ms | hop after ms (round trip − replica's call) |")  # fmt: skip
    assert lines[2] == "| 1 | 55.6 | 91.8 | 36.0 | 60.4 | 36.0 | 5.0 |"
