"""The parts of ``voxlive bench`` that need no server: options, plan, capacity search, the row
and its JSON, the metrics it reads, the report table, the ceiling's sample rate."""

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import DATA
from voxlive import cli
from voxlive.bench.capacity import find_capacity, passed
from voxlive.bench.ceiling import BatchSpeed, Ceiling, ceiling
from voxlive.bench.options import Options, options
from voxlive.bench.row import Row, median_rows, table
from voxlive.bench.run import Ceilings, judge, plan
from voxlive.bench.scrape import Snapshot, batch_histogram, parse
from voxlive.inference.base import ModelInfo
from voxlive.metrics import Metrics
from voxlive.settings import Settings, build

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "2026-11-28"


def _row(
    n: int, p95: float | None, drops: int = 0, client_p95: float | None = -1.0, **changes: Any
) -> Row:
    row = Row(
        target="t", streams=n, seconds=10.0, flat_out=False, results=40,
        results_per_stream_per_s=2.0, ambient_share=0.0, server_p50_ms=p95, server_p95_ms=p95,
        server_p99_ms=p95, client_p50_ms=None,
        client_p95_ms=p95 if client_p95 == -1.0 else client_p95, client_p99_ms=None,
        model_results=40, gated_results=0, gated_p50_ms=None, gated_p95_ms=None,
        gated_client_p95_ms=None, dropped_windows=drops, shed_windows=drops,
        overwritten_windows=0, gauge_streams=None, gauge_load_streams=None, dropped_audio_s=0.0,
        errors=0, failed_streams=(), audio_s_per_s=float(n), model_calls=20, mean_batch=2.0,
        batch_sizes={"<=2": 20}, server_cpu_pct=50.0, server_rss_mib=300.0, wall_s=10.0,
    )  # fmt: skip
    return dataclasses.replace(row, **changes)


def _options(*argv: str) -> Options:
    full = ["bench", "--audio", "a.wav", *argv]
    args = vars(cli._parser().parse_args(full))
    return options(args, build(args, {}), {"VOXLIVE_TOKEN": "s3cret"}, full)


def _ceiling(audio_s_per_s: float) -> Ceiling:
    return Ceiling(backend="onnx", device="cpu", sample_rate=16_000, window_ms=1000, hop_ms=500,
                   audio_s_per_s=audio_s_per_s, best_batch=2,
                   by_batch=(BatchSpeed(2, 200.0, audio_s_per_s),), measured_s=3.0)  # fmt: skip


# ---- options and plan ------------------------------------------------------------------------
def test_options_are_built_once_with_the_server_settings_they_were_given() -> None:
    o = _options("--streams", "3", "--max-batch", "4", "--compare", "--max-batch 1")
    assert (o.streams, o.audio, o.compare, o.token) == (3, ("a.wav",), ("--max-batch 1",), "s3cret")
    assert o.settings.max_batch == 4 and o.server_flags == ("--max-batch", "4")
    assert (
        o.command
        == "voxlive bench --audio a.wav --streams 3 --max-batch 4 --compare '--max-batch 1'"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.streams = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--url", "ws://h/audio", "--at-ceiling", "0.8"],
         "bench --at-ceiling: expected a ceiling to measure (no --url, no --no-ceiling), got 0.8"),
        (["--seconds", "2", "--warmup-s", "2"], "bench --warmup-s: expected 0..--seconds (2), got 2.0"),
        (["--times", "2"], "bench --times: expected --at-ceiling with it, got [2.0]"),
        (["--streams", "0"], "bench --streams: expected >= 1, got 0"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_naming_the_flag_and_the_value(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", "--audio", "a.wav", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"voxlive: bad setting: {message}"


def test_the_plan_takes_n_from_the_same_run_ceiling_and_starts_one_server_per_variant() -> None:
    o = _options(
        "--at-ceiling", "0.8", "--times", "2", "--compare", "--max-batch 1", "--gate", "rms"
    )
    p = plan(o, Ceilings(base=_ceiling(10.0)))  # 10 audio-s/s = 5 live streams (1 s / 0.5 s)
    assert p.counts == (4, 8) and p.cost == 2.0
    assert p.variants == (("base", ("--gate", "rms")),
                          ("--max-batch 1", ("--gate", "rms", "--max-batch", "1")))  # fmt: skip
    assert plan(_options("--streams", "6"), Ceilings()).counts == (6,)


# ---- a run: pass or fail, judged against the ceiling, as JSON --------------------------------
@pytest.mark.parametrize("capacity", [0, 1, 2, 5, 7, 8, 13, 64])
async def test_find_capacity_finds_the_largest_passing_n(capacity: int) -> None:
    tried: list[int] = []

    async def run(n: int) -> Row:
        tried.append(n)
        return _row(n, 100.0 if n <= capacity else 400.0)

    found, rows = await find_capacity(run, 1, 64, 250.0)
    assert found == capacity
    assert len(tried) == len(set(tried)) <= 2 * 7 + 1  # doubling, then bisection
    assert [r.streams for r in rows] == tried


def test_a_run_passes_only_within_the_goal_with_no_drops() -> None:
    assert passed(_row(1, 250.0), 250.0)
    assert not passed(_row(1, 251.0), 250.0)
    assert not passed(_row(1, 10.0, drops=1), 250.0)
    assert not passed(_row(1, None), 250.0)  # no results at all is no pass
    assert not passed(_row(1, 200.0, client_p95=260.0), 250.0)  # the client's view counts too
    assert not passed(_row(1, 200.0, errors=1), 250.0)
    assert not passed(_row(1, 200.0, failed_streams=("ConnectionClosed",)), 250.0)


def test_a_run_is_judged_against_this_rounds_ceiling_and_the_staleness_bound() -> None:
    o = _options("--seconds", "10", "--warmup-s", "2")  # max_lag_ms 1000 by default
    row = judge(_row(4, 120.0, drops=8), o, ceiling_audio_s_per_s=10.0, cost=2.0)
    assert row.vs_ceiling is not None and row.delivered_within_max_lag is True
    assert row.vs_ceiling.model_load_audio_s_per_s == 8.0 and row.vs_ceiling.pct_of_ceiling == 80
    # 40 answered + 8 dropped x 8/10 counted seconds, 1 s windows, over 8 s: 4.8 audio-s/s
    assert row.vs_ceiling.model_pct_of_ceiling == pytest.approx(58.0)
    assert judge(_row(4, 1200.0), o, 10.0, 2.0).delivered_within_max_lag is False
    flat = judge(_row(4, 120.0), _options("--flat-out", "--max-lag-ms", "0"), 10.0, 2.0)
    assert flat.vs_ceiling is None and flat.delivered_within_max_lag is None
    assert {"pct_of_ceiling", "delivered_within_max_lag"}.isdisjoint(flat.to_dict())


def test_a_row_is_the_json_of_the_committed_reports() -> None:
    committed = json.loads((COMMITTED / "default-vs-no-shedding.json").read_text())
    row = judge(_row(4, 120.0), _options(), 10.0, 2.0)
    assert list(row.to_dict()) == list(committed["runs"][0])  # the same keys, in the same order
    assert json.loads(json.dumps(row.to_dict()))["failed_streams"] == []
    assert row.to_dict()["drops_reported"] is True
    assert not _row(4, 120.0, drops=3, shed_windows=1).drops_reported
    ceiling_keys = set(committed["ceiling"]["base"]) | {"sample_rate"}  # the rate is new
    assert set(_ceiling(10.0).to_dict()) == ceiling_keys


def test_repeated_runs_report_their_median() -> None:
    rows = [_row(4, p95) for p95 in (100.0, 300.0, 120.0)] + [_row(8, 500.0)]
    [median] = median_rows(rows)  # N=8 ran once: no median
    assert median["streams"] == 4 and median["rounds"] == 3
    assert median["server_p95_ms"] == 120.0 and median["dropped_windows"] == 0


def test_table_lines_up_and_shows_missing_numbers() -> None:
    lines = table([_row(3, 120.4).to_dict(), _row(12, None).to_dict()]).splitlines()
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1
    assert "120" in lines[1] and " -" in lines[2]


# ---- the server's metrics --------------------------------------------------------------------
def test_batch_histogram_is_the_difference_of_two_scrapes() -> None:
    before = Snapshot(batch_buckets={"1.0": 5.0, "2.0": 5.0, "4.0": 6.0, "+Inf": 6.0})
    after = Snapshot(batch_buckets={"1.0": 15.0, "2.0": 18.0, "4.0": 20.0, "+Inf": 20.0})
    assert batch_histogram(before, after) == {"<=1": 10, "<=2": 3, "<=4": 1}


def test_batch_sizes_and_outcomes_are_read_from_the_metrics_a_server_exposes() -> None:
    metrics = Metrics()
    for size in (1, 3, 3):
        metrics.batch_size.observe(size)
    metrics.windows.labels(outcome="shed").inc(2)
    snap = parse(metrics.render().decode())
    assert (snap.batch_count, snap.batch_sum) == (3, 7)
    assert batch_histogram(Snapshot(), snap) == {"<=1": 1, "<=3": 2}
    assert snap.windows_since(Snapshot(), "shed") == 2 and snap.rss_mib > 0


# ---- the ceiling -----------------------------------------------------------------------------
class _Model:
    """A classifier at ``rate`` Hz that records the length of the windows it is given."""

    def __init__(self, rate: int) -> None:
        self.info = ModelInfo("fake", "fake", ("a", "b"), rate)
        self.lengths: set[int] = set()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.lengths.add(batch.shape[1])
        return np.zeros((len(batch), 2), np.float32)

    def warmup(self, window_samples: int) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_ceiling_is_measured_at_the_models_own_sample_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _Model(8000)
    monkeypatch.setattr("voxlive.pipeline.assembly.load_classifier", lambda settings: model)
    found = ceiling(Settings(window_ms=500, hop_ms=250), [str(DATA / "male_speech.wav")], min_s=0)
    assert model.lengths == {4000}  # 500 ms at 8 kHz, cut from the recording decoded at 8 kHz
    assert found.sample_rate == 8000 and [b.batch for b in found.by_batch] == [1, 2, 4]
    assert found.streams == found.audio_s_per_s / 2  # a live stream sends 2 windows' audio per s
