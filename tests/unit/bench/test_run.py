"""``voxlive bench``'s plan and verdict (bench/run.py): N from the same run's ceiling, one server
per variant; a run judged against this round's ceiling and the staleness bound."""

from __future__ import annotations

import pytest

from tests.fakes import bench_ceiling, bench_row
from tests.helpers import bench_options
from voxlive.bench.run import Ceilings, conversation_ratios, judge, plan
from voxlive.errors import ConfigError


def test_the_plan_takes_n_from_the_same_run_ceiling_and_starts_one_server_per_variant() -> None:
    o = bench_options(
        "--at-ceiling", "0.8", "--times", "2", "--compare", "--max-batch 1", "--gate", "rms"
    )
    p = plan(o, Ceilings(base=bench_ceiling(10.0)))  # 10 audio-s/s = 5 live streams (1 s / 0.5 s)
    assert p.counts == (4, 8) and p.cost == 2.0
    assert p.variants == (("base", ("--gate", "rms")),
                          ("--max-batch 1", ("--gate", "rms", "--max-batch", "1")))  # fmt: skip
    assert plan(bench_options("--streams", "6"), Ceilings()).counts == (6,)


def test_a_run_is_judged_against_this_rounds_ceiling_and_the_staleness_bound() -> None:
    o = bench_options("--seconds", "10", "--warmup-s", "2")  # max_lag_ms 1000 by default
    row = judge(bench_row(4, 120.0, drops=8), o, ceiling_audio_s_per_s=10.0, cost=2.0)
    assert row.vs_ceiling is not None and row.delivered_within_max_lag is True
    assert row.vs_ceiling.model_load_audio_s_per_s == 8.0 and row.vs_ceiling.pct_of_ceiling == 80
    # 40 answered + 8 dropped x 8/10 counted seconds, 1 s windows, over 8 s: 4.8 audio-s/s
    assert row.vs_ceiling.model_pct_of_ceiling == pytest.approx(58.0)
    assert judge(bench_row(4, 1200.0), o, 10.0, 2.0).delivered_within_max_lag is False
    flat = judge(bench_row(4, 120.0), bench_options("--flat-out", "--max-lag-ms", "0"), 10.0, 2.0)
    assert flat.vs_ceiling is None and flat.delivered_within_max_lag is None
    assert {"pct_of_ceiling", "delivered_within_max_lag"}.isdisjoint(flat.to_dict())


def test_conversation_capacity_is_reported_as_a_ratio_to_the_same_servers_continuous_one() -> None:
    found = {"base": 4, "base [conversation]": 7, "--engine ray": 0,
             "--engine ray [conversation]": 2, "--max-batch 1": 3}  # fmt: skip
    assert conversation_ratios(found) == {"base": 1.75}  # no continuous capacity: no ratio


def test_conversation_streams_need_continuous_ones_beside_them() -> None:
    assert bench_options("--conversation", "5000").conversation == 5000
    with pytest.raises(ConfigError, match="--pause-ms: expected 0 with --conversation"):
        bench_options("--conversation", "5000", "--pause-ms", "100")
    with pytest.raises(ConfigError, match="--conversation: expected >= 0 ms, got -1"):
        bench_options("--conversation", "-1")
