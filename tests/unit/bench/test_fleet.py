"""The fleet (bench/fleet.py) without its processes: its bounds, one run merged from several
workers' counts and judged as ``voxlive bench`` judges a run, a search cut short, the summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from tests.fakes import bench_row
from voxlive.bench import run as bench_run
from voxlive.bench.capacity import passed
from voxlive.bench.fleet import FleetOptions, searched, summary
from voxlive.bench.load import ClientCounts, LoadSpec
from voxlive.bench.scrape import Snapshot
from voxlive.bench.serving import Target
from voxlive.bench.workers import merge, shares
from voxlive.errors import ConfigError

URL = "ws://127.0.0.1:9/audio"


def options(**changes: Any) -> FleetOptions:
    return FleetOptions(**{"url": URL, "audio": ("a.wav",), "procs": 2, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"procs": 0}, "fleet --procs: expected 1..64, got 0"),
        ({"procs": 65}, "fleet --procs: expected 1..64, got 65"),
        ({"url": "http://x/audio"}, "fleet --url: expected ws://HOST:PORT/audio, got 'http://x"),
        ({"streams": 1001}, r"--streams: expected at most 1000 for 2 processes \(500 each\), got"),
        ({"find_capacity": True}, r"--capacity-limit: expected at most 1000 for 2 processes"),
        ({"find_capacity": True, "streams": 8, "capacity_limit": 4}, "expected >= --streams"),
        ({"warmup_s": 20.0}, r"--warmup-s: expected 0..--seconds \(20\), got 20.0"),
        ({"resolution": 0}, "fleet --resolution: expected >= 1, got 0"),
        ({"time_limit_s": -1.0}, r"--time-limit-s: expected >= 0 s \(0: no limit\), got -1.0"),
    ],
)
def test_the_bounds_name_the_flag_and_the_value(changes: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        options(**changes)


def test_a_run_of_n_streams_carries_the_load_options() -> None:
    o = options(procs=8, find_capacity=True, capacity_limit=4000, forwarded_for=True, token="t")
    spec = o.spec(300)
    assert (spec.streams, spec.url, spec.forwarded_for, spec.token) == (300, URL, True, "t")
    assert not spec.flat_out and spec.hop_ms == o.hop_ms and spec.fresh_ms == o.fresh_ms


def _counts(server: Sequence[float], client: Sequence[float], **changes: Any) -> ClientCounts:
    return ClientCounts(server_ms=list(server), client_ms=list(client), results=len(server),
                        sent_s=10.0, **changes)  # fmt: skip


async def test_one_row_from_every_workers_raw_latencies_judged_as_bench_judges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Percentiles over every window of every worker (not a mean of the workers' own), the
    losses summed, and the row passes or fails by the same rule as ``voxlive bench``'s."""
    monkeypatch.setattr(bench_run, "scrape", lambda http: Snapshot())
    monkeypatch.setattr(bench_run, "gauge", lambda http: {})
    rng = np.random.default_rng(0)
    spec = LoadSpec(url=URL, streams=6, seconds=10.0)
    per_stream = [rng.uniform(20, 120 if i else 400, 18) for i in range(6)]  # stream 0 slow
    every = [_counts(ms, ms + 5) for ms in per_stream]

    async def drive(s: LoadSpec) -> list[ClientCounts]:  # three workers, answering in any order
        parts = shares(s.streams, 3)[::-1]
        return merge(s.streams, [(p, [every[i] for i in p]) for p in parts])

    row = await bench_run.measure(Target("gpu", URL), spec, drive)
    pooled = np.concatenate(per_stream)
    assert row.server_p95_ms == pytest.approx(np.percentile(pooled, 95))
    assert row.client_p95_ms == pytest.approx(np.percentile(pooled + 5, 95))
    assert row.server_p99_ms == pytest.approx(np.percentile(pooled, 99))
    assert (row.streams, row.results, row.model_results) == (6, 108, 108)
    assert passed(row, 400.0) and not passed(row, float(row.server_p95_ms or 0) - 1)

    every[4] = _counts([30.0], [35.0], dropped_windows=2, paced=True, failure="OSError: x")
    row = await bench_run.measure(Target("gpu", URL), spec, drive)
    assert (row.dropped_windows, row.paced_streams, row.failed_streams) == (2, 1, ("OSError: x",))
    assert not passed(row, 400.0)


def test_a_search_cut_short_reports_the_largest_pass_below_the_first_failure() -> None:
    rows = [bench_row(256, 100.0), bench_row(512, 200.0), bench_row(1024, 400.0),
            bench_row(768, 240.0)]  # fmt: skip
    assert searched(rows, 250.0) == 768
    assert searched([bench_row(256, 100.0), bench_row(512, 900.0), bench_row(640, 90.0)],
                    250.0) == 256  # a pass above a failure is noise, not capacity  # fmt: skip
    assert searched([bench_row(256, 300.0)], 250.0) == 0
    assert searched([], 250.0) == 0


def test_the_summary_is_the_bench_table_and_the_capacity() -> None:
    doc = {"runs": [bench_row(512, 120.0).to_dict()], "capacity": {"h100": 512},
           "capacity_complete": False, "p95_ms": 300.0, "procs": 14}  # fmt: skip
    text = summary(doc)
    assert text.splitlines()[0].split()[:3] == ["target", "N", "res/st/s"]
    assert "capacity[h100]: 512 streams at p95 <= 300 ms with no drops, 14 load processes" in text
    assert "cut short by --time-limit-s" in text
