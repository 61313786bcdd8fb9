"""Tables from ``voxlive bench``'s JSON (bench/tables.py): rounds, lost windows, servers side by
side, medians, the verdict and capacities, each from a small fixture."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from voxlive.bench.markdown import TableError
from voxlive.bench.tables import KINDS


def _table(docs: list[Any], spec: str) -> list[str]:
    """The table a marker's ``kind=… key=value…`` makes of ``docs``."""
    options = dict(w.split("=", 1) for w in shlex.split(spec))
    make, _ = KINDS[options.pop("kind")]
    return make(docs, options).markdown().splitlines()


# ---- voxlive bench's JSON --------------------------------------------------------------------
def _run(
    target: str, n: int, p95: float = 100.0, ceiling: float = 10.0, **more: Any
) -> dict[str, Any]:
    row = {"target": target, "streams": n, "seconds": 20.0, "server_p50_ms": p95 / 2,
           "server_p95_ms": p95, "server_p99_ms": p95 + 10, "client_p95_ms": p95 + 1,
           "model_results": 10 * n, "gated_results": 0, "gated_p95_ms": None,
           "dropped_windows": 0, "shed_windows": 0, "overwritten_windows": 0, "errors": 0,
           "failed_streams": [], "gauge_streams": 4.04, "mean_batch": 1.234,
           "server_cpu_pct": 90.0, "tree_cpu_pct": 90.2, "ceiling_audio_s_per_s": ceiling,
           "pct_of_ceiling": 20.0 * n / ceiling, "drops_reported": True}  # fmt: skip
    return {**row, **more}


def _bench(runs: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {"p95_ms": 250.0, "ceiling": {"base": {"audio_s_per_s": 10.0}}, "capacity": {},
            "runs": runs, "medians": [], **more}  # fmt: skip


def test_runs_find_their_round_by_its_ceiling_and_say_how_windows_were_lost() -> None:
    doc = _bench(
        [_run("base", 4, ceiling=8.0), _run("base", 8, 900, ceiling=8.0, dropped_windows=30,
              shed_windows=30),
         _run("base", 4, ceiling=5.0, dropped_windows=9, shed_windows=5, overwritten_windows=4),
         _run("base", 8, ceiling=5.0, dropped_windows=3, overwritten_windows=1,
              drops_reported=False)],
        ceiling={"rounds": [{"audio_s_per_s": 8.0}, {"audio_s_per_s": 5.0}]},
    )  # fmt: skip
    lines = _table([doc], "kind=runs cols=round_ceiling,streams,pct,p95,lost,gauge bold=p95")
    assert lines == [
        "| round (ceiling, audio-s/s) | N | % of ceiling | p95 | lost windows | gauge (streams) |",
        "|---|---:|---:|---:|---|---:|",
        "| 1 (8.00) | 4 | 10 | **100** | 0 | 4.0 |",
        "| 1 | 8 | 20 | **900** | 30 shed | 4.0 |",
        "| 2 (5.00) | 4 | 16 | **100** | 9 (5 shed, 4 overwritten) | 4.0 |",
        "| 2 | 8 | 32 | **100** | 3 (1 overwritten), not all reported | 4.0 |",
    ]


def test_without_recorded_rounds_a_server_and_n_seen_again_start_the_next() -> None:
    doc = _bench([_run("base", 1), _run("x", 1), _run("base", 1), _run("x", 1)])
    lines = _table([doc], "kind=runs cols=round,server,streams base=mine")
    assert lines[2:] == [
        "| 1 | mine | 1 |",
        "| 1 | `x` | 1 |",
        "| 2 | mine | 1 |",
        "| 2 | `x` | 1 |",
    ]


def test_compare_puts_each_servers_run_side_by_side() -> None:
    doc = _bench([_run("base", 2, 100), _run("--max-lag-ms 0", 2, 300, dropped_windows=5,
                  overwritten_windows=5)])  # fmt: skip
    lines = _table([doc], 'kind=compare cols=streams side=latency,lost base="default"')
    assert lines == [
        "| N | default: p50 / p95 / client p95 | default: lost windows | "
        "`--max-lag-ms 0`: p50 / p95 / client p95 | `--max-lag-ms 0`: lost windows |",
        "|---:|---|---|---|---|",
        "| 2 | 50 / 100 / 101 | 0 | 150 / 300 / 301 | 5 overwritten |",
    ]
    lonely = _bench([_run("base", 2), _run("v", 2), _run("base", 4)])
    with pytest.raises(TableError, match=r"expected a run of each of \['base', 'v'\]"):
        _table([lonely], "kind=compare")


def test_medians_and_the_tree_cpu_beside_the_front() -> None:
    medians = [_run("base", 7.0, 174.4), _run("--engine ray", 7.0, 177.6, server_cpu_pct=19.2,
               tree_cpu_pct=160.3)]  # fmt: skip
    lines = _table([_bench([], medians=medians)], "kind=medians cols=server,streams,p95,batch,"
                   "tree_cpu base=in-process")  # fmt: skip
    assert lines[2:] == ["| in-process | 7 | 174 | 1.23 | 90 |",
                         "| `--engine ray` | 7 | 178 | 1.23 | 160 (front 19) |"]  # fmt: skip
    with pytest.raises(TableError, match="expected medians"):
        _table([_bench([_run("base", 1)])], "kind=medians")


def test_the_verdict_and_the_share_that_reached_the_model() -> None:
    doc = _bench([_run("base", 6, 403), _run("base", 3, 169), _run("base", 4, 120, dropped_windows=9)],
                 capacity={"base": 3})  # fmt: skip
    lines = _table([doc], "kind=runs cols=streams,windows,model_pct,verdict")
    # no model_pct_of_ceiling in the JSON: (60 windows + 0 lost) / 18 counted s / 10 audio-s/s
    assert lines[0].endswith("| verdict (p95 ≤ 250 ms) |")
    assert lines[2:] == ["| 6 | 60 / 0 | 33 | fail |", "| 3 | 30 / 0 | 17 | pass: capacity 3 |",
                         "| 4 | 40 / 0 | 27 | fail |"]  # fmt: skip
    # with --warmup-s 5: 15 counted seconds; recorded figures win over derived ones
    doc = {**doc, "command": "voxlive bench --audio a.wav --warmup-s 5 --find-capacity",
           "runs": [doc["runs"][0], {**doc["runs"][1], "model_pct_of_ceiling": 12.5}]}  # fmt: skip
    assert _table([doc], "kind=runs cols=model_pct")[2:] == ["| 40 |", "| 13 |"]


def test_capacity_per_server_with_the_next_n_that_failed() -> None:
    runs = [_run("base", 2, 80), _run("base", 4, 250), _run("base", 8, 900, dropped_windows=3,
            shed_windows=3), _run("base", 6, 400), _run("ray", 2, 90), _run("ray", 4, 500)]  # fmt: skip
    doc = _bench(runs, p95_ms=300.0, capacity={"base": 4, "ray": 2},
                 capacity_pct_of_ceiling={"base": 80.0, "ray": 40.0})  # fmt: skip
    lines = _table([doc], "kind=capacity base=in-process")
    assert lines[0] == ("| server | capacity (p95 ≤ 300 ms, nothing lost) | % of ceiling | "
                        "p95 / client p95 there | next N tried: p95 / client p95 |")  # fmt: skip
    assert lines[2:] == ["| in-process | 4 | 80 | 250 / 251 | 6: 400 / 401 |",
                         "| `ray` | 2 | 40 | 90 / 91 | 4: 500 / 501 |"]  # fmt: skip


def test_cpu_by_role_degradation_figures_and_conversation_runs_have_columns() -> None:
    doc = _bench(
        [_run("base", 4, ray_cpu_pct=None, machine_cpu_pct=150.4, client_cpu_pct=6.0,
              results_per_stream_per_s=2.056, fresh_results_per_s=8.04, fresh_coverage=0.987,
              paced_streams=0),
         _run("base [conversation]", 4, ray_cpu_pct=8.4, machine_cpu_pct=120.0,
              client_cpu_pct=5.0, results_per_stream_per_s=1.06, fresh_results_per_s=4.2,
              fresh_coverage=1.0, paced_streams=4)],
    )  # fmt: skip
    cols = "server,streams,per_stream,fresh,covered,paced,ray_cpu,client_cpu,host_cpu,verdict"
    lines = _table([doc], f"kind=runs cols={cols} base=in-process")
    assert lines[2:] == [
        "| in-process | 4 | 2.06 | 8.0 | 99 | 0 | — | 6 | 150 | pass |",
        "| conversation | 4 | 1.06 | 4.2 | 100 | 4 | 8 | 5 | 120 | fail |",
    ]  # a paced run is not held in full: it fails, as the capacity search judges it
