"""The capacity search (bench/capacity.py): the largest passing N found by doubling then
bisection, and what a pass is (within the goal, nothing dropped, no errors)."""

from __future__ import annotations

import pytest

from tests.fakes import bench_row
from voxlive.bench.capacity import find_capacity, passed
from voxlive.bench.row import Row


# ---- a run: pass or fail, judged against the ceiling, as JSON --------------------------------
@pytest.mark.parametrize("capacity", [0, 1, 2, 5, 7, 8, 13, 64])
async def test_find_capacity_finds_the_largest_passing_n(capacity: int) -> None:
    tried: list[int] = []

    async def run(n: int) -> Row:
        tried.append(n)
        return bench_row(n, 100.0 if n <= capacity else 400.0)

    found, rows = await find_capacity(run, 1, 64, 250.0)
    assert found == capacity
    assert len(tried) == len(set(tried)) <= 2 * 7 + 1  # doubling, then bisection
    assert [r.streams for r in rows] == tried


@pytest.mark.parametrize("capacity", [0, 100, 300, 1000, 2100, 4095, 4096])
async def test_a_coarser_resolution_stops_bisecting_sooner(capacity: int) -> None:
    """N is a passing one within ``resolution`` of the smallest failing N (or of the limit)."""
    tried: list[int] = []

    async def run(n: int) -> Row:
        tried.append(n)
        return bench_row(n, 100.0 if n <= capacity else 400.0)

    found, _ = await find_capacity(run, 256, 4096, 250.0, resolution=128)
    assert found <= capacity and capacity - found <= 128
    assert found == 0 or found in tried
    assert len(tried) <= 5 + 5  # doubling 256..4096, then bisecting 2048 down to 128
    coarse = list(tried)
    tried.clear()
    exact, _ = await find_capacity(run, 256, 4096, 250.0)
    assert exact == capacity and len(tried) >= len(coarse)  # resolution 1 bisects to the end


def test_a_run_passes_only_within_the_goal_with_no_drops() -> None:
    assert passed(bench_row(1, 250.0), 250.0)
    assert not passed(bench_row(1, 251.0), 250.0)
    assert not passed(bench_row(1, 10.0, drops=1), 250.0)
    assert not passed(bench_row(1, None), 250.0)  # no results at all is no pass
    assert not passed(bench_row(1, 200.0, client_p95=260.0), 250.0)  # the client's view counts too
    assert not passed(bench_row(1, 200.0, errors=1), 250.0)
    assert not passed(bench_row(1, 200.0, failed_streams=("ConnectionClosed",)), 250.0)
    assert not passed(bench_row(1, 200.0, paced_streams=1), 250.0)  # fewer results: not held
