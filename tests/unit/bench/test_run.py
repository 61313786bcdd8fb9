"""The pure parts of ``voxlive bench``: capacity search, batch histogram, report table."""

from typing import Any

import pytest

from voxlive.bench.run import batch_histogram, find_capacity, median_rows, passed, table


def _row(
    n: int, p95: float | None, drops: int = 0, client_p95: float | None = -1.0
) -> dict[str, Any]:
    return {"target": "t", "streams": n, "server_p95_ms": p95, "dropped_windows": drops,
            "client_p95_ms": p95 if client_p95 == -1.0 else client_p95,
            "errors": 0, "failed_streams": []}  # fmt: skip


@pytest.mark.parametrize("capacity", [0, 1, 2, 5, 7, 8, 13, 64])
async def test_find_capacity_finds_the_largest_passing_n(capacity: int) -> None:
    tried: list[int] = []

    async def run(n: int) -> dict[str, Any]:
        tried.append(n)
        return _row(n, 100.0 if n <= capacity else 400.0)

    found, rows = await find_capacity(run, 1, 64, 250.0)
    assert found == capacity
    assert len(tried) == len(set(tried)) <= 2 * 7 + 1  # doubling, then bisection
    assert [r["streams"] for r in rows] == tried


def test_a_run_passes_only_within_the_goal_with_no_drops() -> None:
    assert passed(_row(1, 250.0), 250.0)
    assert not passed(_row(1, 251.0), 250.0)
    assert not passed(_row(1, 10.0, drops=1), 250.0)
    assert not passed(_row(1, None), 250.0)  # no results at all is no pass
    assert not passed(_row(1, 200.0, client_p95=260.0), 250.0)  # the client's view counts too


def test_repeated_runs_report_their_median() -> None:
    rows = [_row(4, p95) for p95 in (100.0, 300.0, 120.0)] + [_row(8, 500.0)]
    [median] = median_rows(rows)  # N=8 ran once: no median
    assert median["streams"] == 4 and median["rounds"] == 3
    assert median["server_p95_ms"] == 120.0 and median["dropped_windows"] == 0


def test_batch_histogram_is_the_difference_of_two_scrapes() -> None:
    before = {"batch_buckets": {"1.0": 5.0, "2.0": 5.0, "4.0": 6.0, "+Inf": 6.0}}
    after = {"batch_buckets": {"1.0": 15.0, "2.0": 18.0, "4.0": 20.0, "+Inf": 20.0}}
    assert batch_histogram(before, after) == {"<=1": 10, "<=2": 3, "<=4": 1}


def test_table_lines_up_and_shows_missing_numbers() -> None:
    lines = table([_row(3, 120.4), _row(12, None)]).splitlines()
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1
    assert "120" in lines[1] and " -" in lines[2]
