"""What bench reads from a server's /metrics (bench/scrape.py): batch sizes and window
outcomes, the difference of two scrapes."""

from __future__ import annotations

from voxlive.bench.scrape import Snapshot, batch_histogram, parse
from voxlive.metrics import Metrics


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
