"""The fleet's workers (bench/workers.py), their pure parts: which worker runs which streams,
and their counts merged back in stream order, refusing a stream missing or counted twice."""

from __future__ import annotations

import pytest

from voxlive.bench.load import ClientCounts
from voxlive.bench.workers import merge, shares


@pytest.mark.parametrize(("streams", "procs"), [(1, 1), (1, 4), (5, 2), (14, 14), (2000, 14)])
def test_every_stream_runs_on_one_worker_round_robin(streams: int, procs: int) -> None:
    parts = shares(streams, procs)
    assert len(parts) == min(streams, procs) and all(parts)  # no worker idles with nothing
    assert sorted(i for part in parts for i in part) == list(range(streams))
    for w, part in enumerate(parts):  # i mod P: each worker's streams spread over the hop
        assert all(i % procs == w for i in part)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_counts_come_back_in_stream_order_from_workers_in_any_order() -> None:
    counts = [ClientCounts(results=i) for i in range(5)]
    parts = [([1, 3], [counts[1], counts[3]]), ([0, 2, 4], [counts[0], counts[2], counts[4]])]
    assert merge(5, parts) == counts
    assert merge(0, []) == []


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([([0], [ClientCounts()])], r"expected the counts of 2 streams, got 1 \(missing \[1\]\)"),
        ([([0, 1], [ClientCounts()])], "expected 2 streams' counts from a worker, got 1"),
        ([([0, 1], [ClientCounts()] * 2), ([1], [ClientCounts()])], "got stream 1 again"),
        ([([0, 2], [ClientCounts()] * 2)], "expected each of streams 0..1 once, got stream 2 as"),
    ],
)
def test_a_stream_missing_or_counted_twice_is_refused(parts: list, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        merge(2, parts)
