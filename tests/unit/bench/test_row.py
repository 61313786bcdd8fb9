"""A bench report's row (bench/row.py): the JSON of the committed reports, the median of
repeated runs, the table."""

from __future__ import annotations

import json

from tests.fakes import bench_ceiling, bench_row
from tests.helpers import ROOT, bench_options
from voxlive.bench.row import median_rows, table
from voxlive.bench.run import judge

COMMITTED = ROOT / "docs" / "benchmarks" / "2026-11-28"


def test_a_row_is_the_json_of_the_committed_reports() -> None:
    committed = json.loads((COMMITTED / "default-vs-no-shedding.json").read_text())
    row = judge(bench_row(4, 120.0), bench_options(), 10.0, 2.0)
    keys = list(row.to_dict())
    # added since (issue 27): the CPU of the server's processes, by role, the client, the host
    added = ["tree_cpu_pct", "replica_cpu_pct", "ray_cpu_pct", "client_cpu_pct",
             "machine_cpu_pct"]  # fmt: skip
    assert [k for k in keys if k in added] == added
    keys = [k for k in keys if k not in added]
    # added since (issue 25): graded degradation
    for key in ("fresh_results_per_s", "fresh_coverage", "paced_streams"):
        keys.remove(key)
    assert keys == list(committed["runs"][0])  # the same keys, in the same order
    assert json.loads(json.dumps(row.to_dict()))["failed_streams"] == []
    assert row.to_dict()["drops_reported"] is True
    assert not bench_row(4, 120.0, drops=3, shed_windows=1).drops_reported
    ceiling_keys = set(committed["ceiling"]["base"]) | {"sample_rate"}  # the rate is new
    assert set(bench_ceiling(10.0).to_dict()) == ceiling_keys


def test_repeated_runs_report_their_median() -> None:
    rows = [bench_row(4, p95) for p95 in (100.0, 300.0, 120.0)] + [bench_row(8, 500.0)]
    [median] = median_rows(rows)  # N=8 ran once: no median
    assert median["streams"] == 4 and median["rounds"] == 3
    assert median["server_p95_ms"] == 120.0 and median["dropped_windows"] == 0


def test_table_lines_up_and_shows_missing_numbers() -> None:
    lines = table([bench_row(3, 120.4).to_dict(), bench_row(12, None).to_dict()]).splitlines()
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1
    assert "120" in lines[1] and " -" in lines[2]
